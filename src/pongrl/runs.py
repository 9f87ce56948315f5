"""A run: its config, learner, collector and counters; made new, saved, loaded.

A checkpoint holds one section per part, each saved by the part's own
`state()`: learner/ (parameters, optimizer, buffers), collector/ (the games,
the steps in flight, the random generators), acting/ (the parameters that play,
with ppo_overlap), and the config and counters in its JSON header.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import algos, checkpoint
from .agent import Agent, load_agent, save_agent
from .checkpoint import prefixed, section
from .collector import Collector
from .config import Config
from .distributed import RayCollector
from .env import PongVecEnv, check_env_id
from .errors import RunError, UserError
from .evaluate import evaluate, training_eval_seed
from .logger import record_system, require_tensorboardx, truncate_csv, write_json


@dataclass
class Counters:
    episodes: int = 0
    env_steps: int = 0
    wall_s: float = 0.0
    running_reward: float | None = None
    last_return: float | None = None
    evals: int = 0  # evaluations made (Config.eval_every)
    best_eval: float | None = None  # best evaluation mean so far (kept in best.npz)


class Run:
    """A run being trained. With ppo_overlap, each update runs in a second thread
    while the games play the next rollout with `acting`, a copy of the
    parameters taken when that update started; every result depends on the
    data alone, never on the threads' timing."""

    def __init__(self, cfg: Config, learner, collector, counters: Counters | None = None, acting=None):
        self.cfg, self.learner, self.collector = cfg, learner, collector
        self.counters = counters or Counters()
        self.acting = learner.params if acting is None else acting  # the parameters that play
        self._thread: threading.Thread | None = None
        self._result: tuple[dict | None, BaseException | None] = (None, None)

    def learn(self, rollouts: list, env_steps: int) -> dict | None:
        """Learn from the rollouts (env_steps: the count before them). Returns the
        stats of an update that has finished (with overlap, the previous one)."""
        if not self.cfg.overlap:
            return self.learner.learn(rollouts, env_steps)
        stats = self.settle()
        self.acting = {k: v.copy(order="K") for k, v in self.learner.params.items()}
        self._thread = threading.Thread(target=self._learn, args=(rollouts, env_steps),
                                        name="pongrl-update", daemon=True)
        self._thread.start()
        return stats

    def _learn(self, rollouts: list, env_steps: int) -> None:
        try:
            self._result = (self.learner.learn(rollouts, env_steps), None)
        except BaseException as e:  # re-raised by settle(), in the training thread
            self._result = (None, e)

    def settle(self) -> dict | None:
        """Wait for the update in flight, if any; its stats (once)."""
        if self._thread is None:
            return None
        self._thread.join()
        self._thread = None
        (stats, error), self._result = self._result, (None, None)
        if error is not None:
            raise error
        return stats

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        self.collector.close()


# ------------------------------------------------------------------ making, saving, loading
def make_collector(cfg: Config, rng: np.random.Generator, state: dict | None = None):
    """The collector of a run: its games in groups here, or on Ray workers (cfg.workers)."""
    algo = algos.get(cfg.algo)
    if cfg.workers:
        return RayCollector(cfg, state)
    g = cfg.num_groups
    processes = max(1, (os.cpu_count() or 1) // g)  # the groups step in turn: together, one process a core
    envs = [PongVecEnv(cfg.env_id, cfg.num_envs // g, cfg.seed, processes=processes, stream=i, streams=g)
            for i in range(g)]
    collector = Collector(envs, algo.act, algo.bootstrap, rng)
    try:
        if state is None:
            collector.reset()
        else:
            collector.restore(state)
    except BaseException:
        collector.close()
        raise
    return collector


def new_run(cfg: Config, init: dict[str, np.ndarray] | None = None) -> Run:
    """A run from scratch: weights from the seed, or `init` (see init_weights)."""
    algo = algos.get(cfg.algo)
    rng = np.random.default_rng(cfg.seed)
    learner = algo.learner(cfg, algo.init_params(cfg, rng))
    for k, v in (init or {}).items():
        learner.params[k][...] = v  # in place: keeps the learner's dtype and memory order
    return Run(cfg, learner, make_collector(cfg, rng))


def save_run(run: Run, path: Path) -> None:
    arrays = prefixed("learner/", run.learner.state()) | prefixed("collector/", run.collector.state())
    if run.cfg.overlap:
        arrays |= prefixed("acting/", run.acting)
    checkpoint.save(path, arrays, {"kind": "run", "config": run.cfg.to_dict(), "counters": vars(run.counters)})


def load_run(path: Path, overrides: dict | None = None) -> Run:
    arrays, meta = checkpoint.load(path)
    if not meta.get("resumable", True):
        raise RunError(f"{path} was saved by an older pongrl (checkpoint version {meta.get('saved_version')}), "
                       f"whose runs this version cannot resume; evaluate it, or start a new run from its "
                       f"weights with --init-from {path}")
    try:
        cfg = Config.from_saved({**meta["config"], **(overrides or {})})
        counters = checked_counters(meta["counters"])
    except (KeyError, TypeError, ValueError, UserError) as e:
        raise checkpoint.CheckpointError(f"{path}: damaged run header ({e})") from None
    algo = algos.get(cfg.algo)
    params = section(arrays, "learner/params/")
    checkpoint.check_shapes(params, algo.param_shapes(cfg), path)
    checkpoint.check_params(params, (np.dtype(np.float32),), path)
    checkpoint.check_params(section(arrays, "acting/"), (np.dtype(np.float32),), path)
    rng = np.random.default_rng(cfg.seed)
    learner = algo.learner(cfg, algo.init_params(cfg, rng))
    try:
        learner.restore(section(arrays, "learner/"))
        collector = make_collector(cfg, rng, section(arrays, "collector/"))
    except (KeyError, ValueError, TypeError) as e:
        raise checkpoint.CheckpointError(f"{path}: checkpoint does not fit its config ({e})") from None
    return Run(cfg, learner, collector, counters, section(arrays, "acting/") if cfg.overlap else None)


def checked_counters(d: dict) -> Counters:
    """The counters of a run header, each of its type and in range."""
    c = Counters(**d)
    for name in ("episodes", "env_steps", "evals"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"counter {name} must be an integer >= 0, got {v!r}")
    for name in ("wall_s", "running_reward", "last_return", "best_eval"):
        v = getattr(c, name)
        if not (v is None and name != "wall_s") and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"counter {name} must be a number, got {v!r}")
    return c


def init_weights(cfg: Config) -> dict[str, np.ndarray] | None:
    """The weights of cfg.init_from, checked against cfg's network (None: random weights)."""
    if cfg.init_from is None:
        return None
    agent = load_agent(cfg.init_from)
    if agent.cfg.algo != cfg.algo:
        raise RunError(f"init_from {cfg.init_from}: it holds a {agent.cfg.algo} agent, this run trains {cfg.algo}")
    needs = algos.get(cfg.algo).param_shapes(cfg)
    extra, missing = sorted(set(agent.params) - set(needs)), sorted(set(needs) - set(agent.params))
    if extra or missing:
        what = f"has {', '.join(extra)}, which this config's network lacks" if extra else \
            f"lacks {', '.join(missing)}, which this config's network needs"
        raise RunError(f"init_from {cfg.init_from}: its network {what} (match its layers: --ppo-hidden2, --ppo-conv)")
    for name, shape in needs.items():
        if agent.params[name].shape != shape:
            raise RunError(f"init_from {cfg.init_from}: its {name} is {agent.params[name].shape}, this config's "
                           f"network needs {shape} (match its hidden sizes, filters, obs and actions)")
    return agent.params


def open_run(run_dir: Path, cfg: Config | None, resume: bool, targets: dict, tensorboard: bool = False) -> Run:
    """A fresh run in an empty folder, or the run saved in `run_dir` with new targets."""
    if tensorboard:
        require_tensorboardx()  # before the run folder is made
    ckpt = run_dir / "checkpoint.npz"
    if resume:
        if not ckpt.exists():
            raise RunError(f"nothing to resume: {ckpt} does not exist")
        run = load_run(ckpt, targets)
        truncate_csv(run_dir / "metrics.csv", "episode", run.counters.episodes)
        truncate_csv(run_dir / "eval.csv", "env_steps", run.counters.env_steps)
    else:
        if cfg is None:
            raise RunError("a new run needs a Config (or resume=True to continue the run in its folder)")
        check_new_folder(run_dir)
        check_env_id(cfg.validate().env_id)  # before the folder is made: a bad env or file leaves nothing behind
        init = init_weights(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        run = new_run(cfg, init)
    for stale in run_dir.glob("*.tmp"):  # left by a write that was killed: never a finished file
        stale.unlink()
    write_json(run_dir / "config.json", run.cfg.to_dict())
    record_system(run_dir / "system.json", run.counters.env_steps)
    return run


RUN_FILES = ("checkpoint.npz", "config.json", "metrics.csv", "eval.csv", "best.npz", "system.json")


def check_new_folder(run_dir: Path) -> None:
    """A new run's folder must be free: not a file, and without another run's files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--out {run_dir} is a file, not a folder; choose another --out")
    for parent in run_dir.parents:
        if parent.exists() and not parent.is_dir():
            raise RunError(f"--out {run_dir} is under {parent}, which is a file; choose another --out")
    if (run_dir / "checkpoint.npz").exists():
        raise RunError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        raise RunError(f"{run_dir} holds another run's files ({', '.join(found)}) but no checkpoint to resume; "
                       "choose another --out, or delete them")


# ------------------------------------------------------------------ counting and evaluating
def finished_training(cfg: Config, c: Counters) -> bool:
    return (cfg.episodes is not None and c.episodes >= cfg.episodes) or (
        cfg.steps is not None and c.env_steps >= cfg.steps)


def count_episode(c: Counters, ret: float, wall_s: float) -> None:
    c.episodes += 1
    c.last_return = ret
    c.running_reward = ret if c.running_reward is None else 0.99 * c.running_reward + 0.01 * ret
    c.wall_s = wall_s


def evaluate_now(run: Run, run_dir: Path) -> dict:
    """Score the learner's policy over cfg.eval_games full games; keep best.npz."""
    cfg, c = run.cfg, run.counters
    agent = Agent(cfg, run.learner.params)
    res = evaluate(agent, cfg.eval_games, seed=training_eval_seed(cfg.seed), greedy=cfg.eval_greedy)
    c.evals = c.env_steps // cfg.eval_every
    if c.best_eval is None or res["mean"] > c.best_eval:
        c.best_eval = res["mean"]
        info = {"eval": {"env_steps": c.env_steps, "wall_s": c.wall_s, "seed": training_eval_seed(cfg.seed),
                         "greedy": cfg.eval_greedy,
                         **{k: res[k] for k in ("games", "mean", "std", "win_rate", "scores")}}}
        save_agent(run_dir / "best.npz", agent, info)
    return res
