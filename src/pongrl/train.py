"""The training loop: play N games, learn, log, checkpoint, resume.

One loop serves every algorithm. An algorithm object has
- `act(x, frames, rng, group)`: actions (n,) for the n games of a group, given
  their difference frames x (n, 6400) int8 and binary frames (n, 80, 80) uint8;
- `observe(actions, rewards, dones, x_next, frames_next, group)`: store the
  group's step; returns a dict of stats when it has just updated, else None;
- `ready(group)`: whether the group may act now (PPO holds a group whose
  rollout is full until every group's is, so no action is taken with stale
  parameters);
- `finish()`: complete any learning in flight (PPO's `ppo_overlap` update)
  and return the stats not yet returned, or None;
- `state()` / `restore(arrays)`: its arrays for checkpoints.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import checkpoint
from .config import Config
from .env import PongVecEnv
from .logger import (EVAL_COLUMNS, METRIC_COLUMNS, CsvLog, TensorBoardLog, progress_bar, record_system,
                     require_tensorboardx, truncate_csv, write_json)
from .preprocess import D
from .reinforce import Reinforce

if TYPE_CHECKING:
    from .ppo import PPO


class RunError(ValueError):
    """The run folder cannot be used as asked."""


class EvalInterrupted(Exception):
    """Ctrl-C arrived while the train loop was playing its evaluation games."""


@dataclass
class Stop:
    """The train loop's SIGINT handler: Ctrl-C asks the loop to checkpoint and stop.

    An evaluation of full games can take a minute or more, so Ctrl-C during one
    also abandons it (EvalInterrupted): nothing of it has been written, and the
    resumed run plays it first, at the same env step."""

    requested: bool = False
    evaluating: bool = False

    def __call__(self, *_) -> None:
        self.requested = True
        if self.evaluating:
            self.evaluating = False  # raise at most once per evaluation
            raise EvalInterrupted


@dataclass
class Counters:
    episodes: int = 0
    env_steps: int = 0
    wall_s: float = 0.0
    running_reward: float | None = None
    last_return: float | None = None
    next_group: int = 0  # the group of games whose turn is next
    evals: int = 0  # evaluations made (Config.eval_every)
    best_eval: float | None = None  # best evaluation mean so far (kept in best.npz)


@dataclass
class Run:
    cfg: Config
    algo: Reinforce | PPO  # any object with act / observe / ready / state / restore
    envs: list[PongVecEnv]  # one per group of games
    rng: np.random.Generator
    counters: Counters = field(default_factory=Counters)
    xs: list = field(default_factory=list)  # per group: (n, 6400) int8 current inputs

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_algo(cfg: Config, rng: np.random.Generator):
    if cfg.algo == "ppo":
        from .ppo import PPO

        return PPO(cfg, rng)
    return Reinforce(cfg, rng)


def expected_shapes(cfg: Config) -> dict[str, tuple]:
    if cfg.algo == "ppo":
        from . import ppo

        return ppo.expected_shapes(cfg)
    h = cfg.hidden
    return {"params/W1": (h, D), "params/W2": (h,), "rmsprop/W1": (h, D), "rmsprop/W2": (h,)}


# ------------------------------------------------------------------ checkpoints of a run
def make_envs(cfg: Config) -> list[PongVecEnv]:
    g = cfg.num_groups
    return [PongVecEnv(cfg.env_id, cfg.num_envs // g, cfg.seed, stream=i, streams=g) for i in range(g)]


def save_run(run: Run, path: Path) -> None:
    if run.cfg.workers:  # games on Ray workers
        from .distributed import save_ray_run

        return save_ray_run(run, path)
    arrays = run.algo.state()
    for g, env in enumerate(run.envs):
        arrays |= {f"env{g}/{k}": v for k, v in env.state().items()}
    meta = {"config": run.cfg.to_dict(), "counters": vars(run.counters), "rng": run.rng.bit_generator.state}
    checkpoint.save(path, arrays, meta)


def load_run(path: Path, overrides: dict | None = None) -> Run:
    arrays, meta = checkpoint.load(path)
    try:
        cfg = Config.from_saved({**meta["config"], **(overrides or {})})
        counters = Counters(**meta["counters"])
    except (KeyError, TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{path}: damaged run header ({e})") from None
    checkpoint.check_shapes(arrays, expected_shapes(cfg), path)
    if cfg.workers:  # games on Ray workers
        from .distributed import load_ray_run

        return load_ray_run(path, cfg, counters, arrays, meta)
    rng = np.random.default_rng(cfg.seed)
    run = Run(cfg, make_algo(cfg, rng), make_envs(cfg), rng, counters)
    try:
        run.algo.restore(arrays)
        run.rng.bit_generator.state = meta["rng"]
        run.xs = [env.restore({k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"env{g}/")})
                  for g, env in enumerate(run.envs)]
    except (KeyError, ValueError, TypeError) as e:
        run.close()
        raise checkpoint.CheckpointError(f"{path}: checkpoint does not fit its config ({e})") from None
    return run


def new_run(cfg: Config, init: dict[str, np.ndarray] | None = None) -> Run:
    """A run from scratch: weights from the seed, or `init` (see init_weights)."""
    if cfg.workers:  # games on Ray workers
        from .distributed import new_ray_run

        run = new_ray_run(cfg)
    else:
        rng = np.random.default_rng(cfg.seed)
        run = Run(cfg, make_algo(cfg, rng), make_envs(cfg), rng)
        run.xs = [env.reset() for env in run.envs]
    for k, v in (init or {}).items():
        run.algo.params[k][...] = v  # in place: keeps the learner's dtype and memory order
    return run


def init_weights(cfg: Config) -> dict[str, np.ndarray] | None:
    """The weights of cfg.init_from, checked against cfg's network (None: random weights)."""
    if cfg.init_from is None:
        return None
    from .evaluate import load_agent

    agent = load_agent(cfg.init_from)
    if agent.cfg.algo != cfg.algo:
        raise RunError(f"init_from {cfg.init_from}: it holds a {agent.cfg.algo} agent, this run trains {cfg.algo}")
    needs = {k.removeprefix("params/"): s for k, s in expected_shapes(cfg).items() if k.startswith("params/")}
    extra, missing = sorted(set(agent.params) - set(needs)), sorted(set(needs) - set(agent.params))
    if extra or missing:
        what = f"has {', '.join(extra)}, which this config's network lacks" if extra else \
            f"lacks {', '.join(missing)}, which this config's network needs"
        raise RunError(f"init_from {cfg.init_from}: its network {what} (match its layers: --ppo-hidden2)")
    for name, shape in needs.items():
        if agent.params[name].shape != shape:
            raise RunError(f"init_from {cfg.init_from}: its {name} is {agent.params[name].shape}, this config's "
                           f"network needs {shape} (match its hidden sizes, obs and actions)")
    return agent.params


# ------------------------------------------------------------------ the loop
def open_run(run_dir: Path, cfg: Config | None, resume: bool, targets: dict) -> Run:
    """A fresh run in an empty folder, or the run saved in `run_dir` with new targets."""
    ckpt = run_dir / "checkpoint.npz"
    if resume:
        if not ckpt.exists():
            raise RunError(f"nothing to resume: {ckpt} does not exist")
        run = load_run(ckpt, targets)
        truncate_csv(run_dir / "metrics.csv", "episode", run.counters.episodes)
        truncate_csv(run_dir / "eval.csv", "env_steps", run.counters.env_steps)
    else:
        if ckpt.exists():
            raise RunError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
        init = init_weights(cfg.validate())  # before the folder is made: a bad file leaves nothing behind
        run_dir.mkdir(parents=True, exist_ok=True)
        run = new_run(cfg, init)
    write_json(run_dir / "config.json", run.cfg.to_dict())
    record_system(run_dir / "system.json", run.counters.env_steps)
    return run


def finished_training(cfg: Config, c: Counters) -> bool:
    return (cfg.episodes is not None and c.episodes >= cfg.episodes) or (
        cfg.steps is not None and c.env_steps >= cfg.steps)


def train(run_dir: str | Path, cfg: Config | None = None, resume: bool = False, targets: dict | None = None,
          progress: bool = True, tensorboard: bool = False) -> dict:
    """Train until the config's episode/step totals are reached or Ctrl-C; returns a summary.

    On Ctrl-C (SIGINT) the run is checkpointed and the summary says interrupted.
    Ctrl-C during an evaluation (Config.eval_every) abandons it at once; the
    resumed run plays it first, so its eval.csv equals an uninterrupted run's.
    With `tensorboard`, scalars are also logged as TensorBoard event files in
    `run_dir` (logger.TensorBoardLog; needs tensorboardX).
    BLAS runs on one thread: its matrices are small, and its spinning threads
    would fight the emulator's threads for the cores.
    """
    from threadpoolctl import threadpool_limits

    if tensorboard:
        require_tensorboardx()  # before the run folder is made
    with threadpool_limits(1):
        return _train(Path(run_dir), cfg, resume, targets or {}, progress, tensorboard)


class Logs:
    """Where a run reports: metrics.csv, eval.csv, TensorBoard (optional) and the progress bar."""

    def __init__(self, run_dir: Path, run: Run, resume: bool, progress: bool, tensorboard: bool):
        cfg, c = run.cfg, run.counters
        self.metrics = CsvLog(run_dir / "metrics.csv", METRIC_COLUMNS)
        self.evals = CsvLog(run_dir / "eval.csv", EVAL_COLUMNS) if cfg.eval_every else None
        self.tb = TensorBoardLog(run_dir, purge_step=c.env_steps if resume else None) if tensorboard else None
        self.bar = progress_bar(cfg.episodes, c.episodes, "ep", progress)
        self.start, self.steps0 = time.perf_counter(), c.env_steps

    def sps(self, c: Counters) -> float:
        return (c.env_steps - self.steps0) / max(time.perf_counter() - self.start, 1e-9)

    def episode(self, c: Counters, length: int) -> None:
        self.metrics.write({"episode": c.episodes, "env_steps": c.env_steps, "return": c.last_return,
                            "running_reward": round(c.running_reward, 6), "length": length,
                            "wall_s": round(c.wall_s, 3)})
        self.scalars({"charts/episodic_return": c.last_return, "charts/episodic_length": length,
                      "charts/running_reward": c.running_reward}, c.env_steps)

    def turn(self, c: Counters, new_episodes: int, stats: dict | None) -> None:
        if new_episodes or stats:
            self.scalars({"charts/SPS": self.sps(c), **(stats or {})}, c.env_steps)
        if new_episodes:
            self.bar.update(new_episodes)
            self.bar.set_postfix(steps=str(c.env_steps), sps=f"{self.sps(c):.0f}", ret=c.last_return,
                                 running=f"{c.running_reward:.2f}")

    def evaluation(self, c: Counters, res: dict) -> None:
        self.evals.write({"env_steps": c.env_steps, "wall_s": round(c.wall_s, 3), "mean": res["mean"],
                          "std": round(res["std"], 6), "win_rate": res["win_rate"]})
        self.scalars({"eval/mean_score": res["mean"], "eval/std_score": res["std"],
                      "eval/win_rate": res["win_rate"]}, c.env_steps)
        self.bar.set_postfix(steps=str(c.env_steps), eval=f"{res['mean']:+.1f}", best=f"{c.best_eval:+.1f}")

    def scalars(self, values: dict, step: int) -> None:
        if self.tb is not None:
            self.tb.write(values, step)

    def close(self) -> None:
        for log in (self.bar, self.metrics, self.evals, self.tb):
            if log is not None:
                log.close()


def _train(run_dir: Path, cfg: Config | None, resume: bool, targets: dict, progress: bool,
           tensorboard: bool = False) -> dict:
    run = open_run(run_dir, cfg, resume, targets)
    cfg, c = run.cfg, run.counters
    ckpt = run_dir / "checkpoint.npz"
    logs = Logs(run_dir, run, resume, progress, tensorboard)
    stop = Stop()
    previous = signal.signal(signal.SIGINT, stop)
    t0 = time.perf_counter() - c.wall_s  # wall_s counts resumed time too

    def evaluate_if_due() -> None:
        nonlocal t0
        if not (cfg.eval_every and c.env_steps >= (c.evals + 1) * cfg.eval_every):
            return
        c.wall_s = time.perf_counter() - t0
        res = evaluate_now(run, run_dir, stop)
        if res is not None:  # None: Ctrl-C abandoned it
            logs.evaluation(c, res)
            save_run(run, ckpt)  # eval.csv and best.npz never run ahead of the checkpoint
        t0 = time.perf_counter() - c.wall_s  # evaluation time is not training time

    try:
        evaluate_if_due()  # one abandoned by Ctrl-C before this resume
        while not finished_training(cfg, c) and not stop.requested:
            before = c.episodes
            finished, stats = turn(run)
            for f in finished:
                count_episode(c, f.ret, time.perf_counter() - t0)
                logs.episode(c, f.length)
            logs.turn(c, c.episodes - before, stats)
            every = cfg.checkpoint_every
            if every and c.episodes // every > before // every:
                c.wall_s = time.perf_counter() - t0
                save_run(run, ckpt)
            evaluate_if_due()
        logs.turn(c, 0, run.algo.finish())  # the last update's stats, if it ran in the background
        c.wall_s = time.perf_counter() - t0
        save_run(run, ckpt)
    finally:
        signal.signal(signal.SIGINT, previous)
        logs.close()
        run.close()
    return {"run_dir": str(run_dir), "episodes": c.episodes, "env_steps": c.env_steps, "wall_s": c.wall_s,
            "updates": run.algo.updates, "running_reward": c.running_reward, "interrupted": stop.requested}


def count_episode(c: Counters, ret: float, wall_s: float) -> None:
    c.episodes += 1
    c.last_return = ret
    c.running_reward = ret if c.running_reward is None else 0.99 * c.running_reward + 0.01 * ret
    c.wall_s = wall_s


def evaluate_now(run: Run, run_dir: Path, stop: Stop) -> dict | None:
    """Score the current policy over cfg.eval_games full games; keep best.npz.
    None if Ctrl-C (`stop`, the loop's SIGINT handler) abandoned the games:
    then nothing has changed."""
    from .evaluate import Agent, evaluate, save_agent, training_eval_seed

    cfg, c = run.cfg, run.counters
    agent = Agent(cfg, run.algo.params)
    try:  # the flag is cleared inside the try: a Ctrl-C just after the games still lands in it
        stop.evaluating = True
        res = evaluate(agent, cfg.eval_games, seed=training_eval_seed(cfg.seed), greedy=cfg.eval_greedy)
        stop.evaluating = False
    except EvalInterrupted:
        return None
    c.evals = c.env_steps // cfg.eval_every
    if c.best_eval is None or res["mean"] > c.best_eval:
        c.best_eval = res["mean"]
        info = {"eval": {"env_steps": c.env_steps, "wall_s": c.wall_s, "seed": training_eval_seed(cfg.seed),
                         "greedy": cfg.eval_greedy,
                         **{k: res[k] for k in ("games", "mean", "std", "win_rate", "scores")}}}
        save_agent(run_dir / "best.npz", agent, info)
    return res


def turn(run: Run) -> tuple[list, dict | None]:
    """One group's turn: collect its step (if one is in flight), learn, and send its next actions.

    While Python works here, the other groups' games are being emulated. Returns
    the episodes that finished, and the algorithm's stats if it has just updated.
    With Ray workers (Config.workers), a turn is a round of every worker's games."""
    if run.cfg.workers:
        from .distributed import ray_turn

        return ray_turn(run)
    g = run.counters.next_group
    env, algo = run.envs[g], run.algo
    finished, stats = [], None
    if env.pending is not None:
        actions = env.pending
        run.xs[g], rewards, dones, finished = env.recv()
        run.counters.env_steps += env.num_envs
        stats = algo.observe(actions, rewards, dones, run.xs[g], env.cur, group=g)
    if algo.ready(g):
        env.send(algo.act(run.xs[g], env.cur, run.rng, group=g))
    elif all(e.pending is None for e in run.envs):
        raise RuntimeError("no group of games can move: the algorithm waits for steps that never come")
    run.counters.next_group = (g + 1) % len(run.envs)
    return finished, stats
