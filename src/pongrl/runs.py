"""A run: its config, learner, collector and counters; made new, saved, loaded.

A checkpoint holds one section per part, each saved by the part's own
`state()`: learner/ (parameters, optimizer, buffers), collector/ (the games,
the steps in flight, the random generators), acting/ (the parameters that play,
with ppo_overlap), and the config and counters in its JSON header.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from . import algos, checkpoint
from .agent import init_weights
from .checkpoint import prefixed, section
from .collector import Collector
from .config import Config
from .distributed import RayCollector
from .env import MAX_POINTS, PongVecEnv, check_env_id
from .errors import RunError, UserError
from .folders import LOCK_FILE, FolderLock, check_new_folder, check_saved_config, remove_temporaries
from .logger import record_system, require_tensorboardx, truncate_csv, write_json
from .parallel import Pool
from .placement import Placement, place


@dataclass
class Counters:
    """Where a run stands. The training loop (pongrl.train) is the one writer;
    this module makes them new, saves them and loads them."""

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

    def __init__(self, cfg: Config, learner, collector, counters: Counters | None = None, acting=None, pool=None):
        self.cfg, self.learner, self.collector = cfg, learner, collector
        self.pool = pool or Pool(1)  # the learner's threads
        self.counters = counters or Counters()
        self.acting = learner.params if acting is None else acting  # the parameters that play
        self._thread: threading.Thread | None = None
        self.lock: FolderLock | None = None  # the run folder's, while a command trains in it
        self.placement: Placement | None = None  # how the cores were split, when this run was made or loaded
        self._result: tuple[dict | None, BaseException | None] = (None, None)

    def learn(self, rollouts: list, env_steps: int) -> dict | None:
        """Learn from the rollouts (env_steps: the count before them). Returns the
        stats of an update that has finished (with overlap, the previous one)."""
        if not self.cfg.overlap:
            return self.learner.learn(rollouts, env_steps)
        stats = self.settle()
        self.acting = {k: v.copy(order="K") for k, v in self.learner.params.items()}
        self._thread = threading.Thread(
            target=self._learn, args=(rollouts, env_steps), name="pongrl-update", daemon=True
        )
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
        try:
            if self._thread is not None:
                self._thread.join()
            self.collector.close()
        finally:
            self.pool.close()
            if self.lock is not None:
                self.lock.release()


# ------------------------------------------------------------------ making, saving, loading
def make_collector(cfg: Config, rng: np.random.Generator, state: dict | None = None):
    """The collector of a run: its games in groups here, or on Ray workers (cfg.workers)."""
    algo = algos.get(cfg.algo)
    if cfg.workers:
        return RayCollector(cfg, state)
    g = cfg.num_groups
    processes = max(1, min(cfg.emulators // g, cfg.num_envs // g))  # the groups step in turn: cfg.emulators in all
    envs = [
        PongVecEnv(cfg.env_id, cfg.num_envs // g, cfg.seed, processes=processes, stream=i, streams=g) for i in range(g)
    ]
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


def placed(cfg: Config) -> tuple[Config, Placement]:
    """cfg with its emulators and learner_threads placed (pongrl.placement) where they are 0."""
    where = place(cfg)
    return dataclasses.replace(cfg, emulators=where.emulators, learner_threads=where.threads), where


def new_run(cfg: Config, init: dict[str, np.ndarray] | None = None) -> Run:
    """A run from scratch: weights from the seed, or `init` (see init_weights)."""
    algo = algos.get(cfg.algo)
    cfg, where = placed(cfg)
    rng = np.random.default_rng(cfg.seed)
    pool = Pool(cfg.learner_threads)
    learner = algo.learner(cfg, algo.init_params(cfg, rng), pool)
    for k, v in (init or {}).items():
        learner.params[k][...] = v  # in place: keeps the learner's dtype and memory order
    try:
        run = Run(cfg, learner, make_collector(cfg, rng), pool=pool)
    except BaseException:
        pool.close()
        raise
    run.placement = where
    return run


def save_run(run: Run, path: Path) -> None:
    arrays = prefixed("learner/", run.learner.state()) | prefixed("collector/", run.collector.state())
    if run.cfg.overlap:
        arrays |= prefixed("acting/", run.acting)
    checkpoint.save(path, arrays, {"kind": "run", "config": run.cfg.to_dict(), "counters": vars(run.counters)})


def load_run(path: Path, overrides: dict | None = None) -> Run:
    arrays, meta = checkpoint.load(path)
    if not meta.get("resumable", True):
        raise RunError(
            f"{path} was saved by an older pongrl (checkpoint version {meta.get('saved_version')}), "
            f"whose runs this version cannot resume; evaluate it, or start a new run from its "
            f"weights with --init-from {path}"
        )
    try:
        cfg = Config.from_saved({**meta["config"], **(overrides or {})})
        counters = checked_counters(meta["counters"])
    except (KeyError, TypeError, ValueError, UserError) as e:
        raise checkpoint.CheckpointError(f"{path}: damaged run header ({e})") from None
    algo = algos.get(cfg.algo)
    params = section(arrays, "learner/params/")
    checkpoint.check_shapes(params, algo.param_shapes(cfg), path)
    checkpoint.check_params(params, (np.dtype(np.float32),), path)
    if cfg.overlap:  # the parameters that play the rollout in flight
        checkpoint.check_shapes(section(arrays, "acting/"), algo.param_shapes(cfg), path)
        checkpoint.check_params(section(arrays, "acting/"), (np.dtype(np.float32),), path)
    cfg, where = placed(cfg)
    rng = np.random.default_rng(cfg.seed)
    pool = Pool(cfg.learner_threads)
    learner = algo.learner(cfg, algo.init_params(cfg, rng), pool)
    try:
        learner.restore(section(arrays, "learner/"))
        collector = make_collector(cfg, rng, section(arrays, "collector/"))
    except (KeyError, ValueError, TypeError) as e:
        pool.close()
        raise checkpoint.CheckpointError(f"{path}: checkpoint does not fit its config ({e})") from None
    except BaseException:
        pool.close()
        raise
    run = Run(cfg, learner, collector, counters, section(arrays, "acting/") if cfg.overlap else None, pool)
    run.placement = where
    return run


COUNTS = ("episodes", "env_steps", "evals")  # integers in [0, 2**62]
SCORES = ("running_reward", "last_return", "best_eval")  # null (none yet) or finite, in [-MAX_POINTS, MAX_POINTS]


def checked_counters(d: dict) -> Counters:
    """The counters of a run header, each of its type and in range."""
    if not isinstance(d, dict):
        raise ValueError(f"counters must be an object, got {d!r}"[:200])
    c = Counters(**d)
    for name in COUNTS:
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 2**62:
            raise ValueError(f"counter {name} must be an integer in [0, 2**62], got {v!r}")
    for name in ("wall_s", *SCORES):
        v = getattr(c, name)
        if v is None and name != "wall_s":
            continue
        bound = 1e9 * 3600 if name == "wall_s" else MAX_POINTS
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not -bound <= v <= bound
            or (name == "wall_s" and v < 0)
        ):
            raise ValueError(f"counter {name} must be a finite number{' >= 0' if name == 'wall_s' else ''}, got {v!r}")
    if c.episodes > c.env_steps:
        raise ValueError(f"counters: {c.episodes} episodes cannot end in {c.env_steps} env steps")
    return c


def open_run(run_dir: Path, cfg: Config | None, resume: bool, targets: dict, tensorboard: bool = False) -> Run:
    """A fresh run in a free folder, or the run saved in `run_dir` with new targets.
    The run holds the folder's lock until it is closed."""
    if tensorboard:
        require_tensorboardx()  # before the run folder is made
    if resume:
        if not ((run_dir / "checkpoint.npz").exists() or (run_dir / "config.json").exists()):
            raise RunError(f"nothing to resume: {run_dir / 'checkpoint.npz'} does not exist")
        lock = FolderLock(run_dir)
    else:
        if cfg is None:
            raise RunError("a new run needs a Config (or resume=True to continue the run in its folder)")
        if (run_dir / LOCK_FILE).exists():
            FolderLock(run_dir).release()  # in use by another command: say so before what its files say
        check_new_folder(run_dir)
        check_env_id(cfg.validate().env_id)  # before the folder is made: a bad env or file leaves nothing behind
        init = init_weights(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(run_dir)
    try:
        # not resuming: cfg was checked above (a new run needs a Config)
        run = resumed_run(run_dir, targets) if resume else fresh_run(run_dir, cast(Config, cfg), init)
    except BaseException:
        lock.release()
        raise
    run.lock = lock
    try:
        write_json(run_dir / "config.json", run.cfg.to_dict())
        placement = run.placement.summary() if run.placement else None
        record_system(run_dir / "system.json", run.counters.env_steps, placement)
    except BaseException:
        run.close()
        raise
    return run


def fresh_run(run_dir: Path, cfg: Config, init: dict[str, np.ndarray] | None) -> Run:
    check_new_folder(run_dir)  # again, now that this process owns the folder
    remove_temporaries(run_dir)
    return new_run(cfg, init)


def resumed_run(run_dir: Path, targets: dict) -> Run:
    """The run saved in run_dir, or (stopped before its first checkpoint) its config.json started
    again: the logs of that start, which no checkpoint backs, are emptied."""
    ckpt = run_dir / "checkpoint.npz"
    remove_temporaries(run_dir)
    if not ckpt.exists():
        cfg = Config.from_json_file(run_dir / "config.json")
        cfg = Config.from_dict({**cfg.to_dict(), **targets})
        truncate_csv(run_dir / "metrics.csv", "episode", 0)
        truncate_csv(run_dir / "eval.csv", "env_steps", 0)
        return new_run(cfg, init_weights(cfg))
    run = load_run(ckpt, targets)
    try:
        check_saved_config(run_dir / "config.json", run.cfg)
        truncate_csv(run_dir / "metrics.csv", "episode", run.counters.episodes)
        truncate_csv(run_dir / "eval.csv", "env_steps", run.counters.env_steps)
    except BaseException:
        run.close()
        raise
    return run
