"""The training loop: play N games, learn, log, checkpoint, resume.

One loop serves every algorithm. An algorithm object has
- `act(x, frames, rng)`: actions (N,) for the N games, given their difference
  frames x (N, 6400) int8 and current binary frames (N, 80, 80) uint8;
- `observe(actions, rewards, dones, x_next, frames_next)`: store the step; returns
  a dict of stats when it has just updated, else None;
- `state()` / `restore(arrays)`: its arrays for checkpoints.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import Config
from .env import PongVecEnv
from .logger import METRIC_COLUMNS, CsvLog, progress_bar, truncate_csv
from .preprocess import D
from .reinforce import Reinforce


class RunError(ValueError):
    """The run folder cannot be used as asked."""


@dataclass
class Counters:
    episodes: int = 0
    env_steps: int = 0
    wall_s: float = 0.0
    running_reward: float | None = None
    last_return: float | None = None


@dataclass
class Run:
    cfg: Config
    algo: Reinforce
    env: PongVecEnv
    rng: np.random.Generator
    counters: Counters = field(default_factory=Counters)
    x: np.ndarray | None = None  # (N, 6400) int8 current inputs


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
def save_run(run: Run, path: Path) -> None:
    arrays = run.algo.state() | {f"env/{k}": v for k, v in run.env.state().items()}
    meta = {"config": run.cfg.to_dict(), "counters": vars(run.counters), "rng": run.rng.bit_generator.state}
    checkpoint.save(path, arrays, meta)


def load_run(path: Path, overrides: dict | None = None) -> Run:
    arrays, meta = checkpoint.load(path)
    try:
        cfg = Config.from_dict({**meta["config"], **(overrides or {})})
        counters = Counters(**meta["counters"])
    except (KeyError, TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{path}: damaged run header ({e})") from None
    checkpoint.check_shapes(arrays, expected_shapes(cfg), path)
    rng = np.random.default_rng(cfg.seed)
    algo = make_algo(cfg, rng)
    env = PongVecEnv(cfg.env_id, cfg.num_envs, cfg.seed)
    try:
        algo.restore(arrays)
        run = Run(cfg, algo, env, rng, counters)
        run.rng.bit_generator.state = meta["rng"]
        run.x = env.restore({k[4:]: v for k, v in arrays.items() if k.startswith("env/")})
    except (KeyError, ValueError, TypeError) as e:
        env.close()
        raise checkpoint.CheckpointError(f"{path}: checkpoint does not fit its config ({e})") from None
    return run


def new_run(cfg: Config) -> Run:
    rng = np.random.default_rng(cfg.seed)
    algo = make_algo(cfg, rng)
    env = PongVecEnv(cfg.env_id, cfg.num_envs, cfg.seed)
    run = Run(cfg, algo, env, rng)
    run.x = env.reset()
    return run


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------ the loop
def open_run(run_dir: Path, cfg: Config | None, resume: bool, targets: dict) -> Run:
    """A fresh run in an empty folder, or the run saved in `run_dir` with new targets."""
    ckpt = run_dir / "checkpoint.npz"
    if resume:
        if not ckpt.exists():
            raise RunError(f"nothing to resume: {ckpt} does not exist")
        run = load_run(ckpt, targets)
        truncate_csv(run_dir / "metrics.csv", "episode", run.counters.episodes)
    else:
        if ckpt.exists():
            raise RunError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        run = new_run(cfg.validate())
    write_json(run_dir / "config.json", run.cfg.to_dict())
    return run


def finished_training(cfg: Config, c: Counters) -> bool:
    return (cfg.episodes is not None and c.episodes >= cfg.episodes) or (
        cfg.steps is not None and c.env_steps >= cfg.steps)


def train(run_dir: str | Path, cfg: Config | None = None, resume: bool = False, targets: dict | None = None,
          progress: bool = True) -> dict:
    """Train until the config's episode/step totals are reached or Ctrl-C; returns a summary.

    On Ctrl-C (SIGINT) the run is checkpointed and the summary says interrupted.
    BLAS runs on one thread: its matrices are small, and its spinning threads
    would fight the emulator's threads for the cores.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _train(Path(run_dir), cfg, resume, targets or {}, progress)


def _train(run_dir: Path, cfg: Config | None, resume: bool, targets: dict, progress: bool) -> dict:
    run = open_run(run_dir, cfg, resume, targets)
    cfg, c = run.cfg, run.counters
    ckpt = run_dir / "checkpoint.npz"
    metrics = CsvLog(run_dir / "metrics.csv", METRIC_COLUMNS)
    stop = {"sigint": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(sigint=True))
    bar = progress_bar(cfg.episodes if cfg.episodes is not None else None, c.episodes, "ep", progress)
    start, steps0 = time.perf_counter(), c.env_steps
    t0 = start - c.wall_s  # wall_s counts resumed time too
    try:
        while not finished_training(cfg, c) and not stop["sigint"]:
            actions = run.algo.act(run.x, run.env.cur, run.rng)
            run.x, rewards, dones, finished = run.env.step(actions)
            run.algo.observe(actions, rewards, dones, run.x, run.env.cur)
            c.env_steps += cfg.num_envs
            before = c.episodes
            for f in finished:
                c.episodes += 1
                c.last_return = f.ret
                c.running_reward = f.ret if c.running_reward is None else 0.99 * c.running_reward + 0.01 * f.ret
                c.wall_s = time.perf_counter() - t0
                metrics.write({"episode": c.episodes, "env_steps": c.env_steps, "return": f.ret,
                               "running_reward": round(c.running_reward, 6), "length": f.length,
                               "wall_s": round(c.wall_s, 3)})
            if finished:
                bar.update(c.episodes - before)
                sps = (c.env_steps - steps0) / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(steps=c.env_steps, sps=f"{sps:.0f}", ret=c.last_return, running=f"{c.running_reward:.2f}")
                every = cfg.checkpoint_every
                if every and c.episodes // every > before // every:
                    c.wall_s = time.perf_counter() - t0
                    save_run(run, ckpt)
        c.wall_s = time.perf_counter() - t0
        save_run(run, ckpt)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
        metrics.close()
        run.env.close()
    return {"run_dir": str(run_dir), "episodes": c.episodes, "env_steps": c.env_steps, "wall_s": c.wall_s,
            "running_reward": c.running_reward, "interrupted": stop["sigint"]}
