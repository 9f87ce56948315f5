"""Rollouts on a Ray cluster: W actors play the games, the learner stays here.

With `Config.workers` = W >= 1 (`pongrl train --ray ADDRESS --workers W`, or
`train()` inside `with cluster(ADDRESS, W):`), training goes in rounds:

1. the driver puts the parameters in Ray's object store once (`ray.put`) and
   passes that one reference to every live worker;
2. worker i, a Ray actor with its own `PongVecEnv` of num_envs games (seed
   stream i of W) and its own random generator (from [seed, i]), plays
   `steps` steps with those parameters, sampling its actions with the
   algorithm's own acting function (`reinforce.sample_step` /
   `ppo.sample_step`), and returns a compact `Rollout`: CSR int8 inputs, uint8
   actions, float32 rewards, bool dones (PPO: float32 log-probabilities and
   values too);
3. the driver hands the rollouts, in worker order, to the algorithm's
   `observe`, step by step, exactly as if worker i's games were group i of a
   local run; the algorithm learns as it does locally.

A PPO round is one rollout of ppo_num_steps steps, collected with the current
parameters, then one update: no rollout ever mixes two policies. A REINFORCE
round is worker_steps steps; REINFORCE updates every batch_size finished
episodes as locally, so an episode's steps may have been sampled with
parameters up to one round older than those of its update (locally: with
those of the updates during the episode).

With a fixed seed and W, a run is a deterministic function of the config: the
games, the generators and the order in which results are read depend only on
the worker indices, never on Ray's scheduling. A checkpoint (taken between
rounds) holds every live worker's env state and generator state, and resuming
restores them in new actors: the resumed run equals the uninterrupted one.

If a worker dies (its process killed, its node lost), the round goes on with
the others' rollouts, the death is logged, and the rest of the run, resumes
included, uses the live workers only (PPO's rollout shrinks accordingly).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from . import checkpoint
from .config import Config
from .env import Finished, PongVecEnv, check_env_id
from .preprocess import D
from .sparse import SparseRows
from .train import Counters, Run, RunError, make_algo

log = logging.getLogger(__name__)

INSTALL_HINT = "Ray is not installed; install it with: pip install 'pongrl[ray]'"


# ------------------------------------------------------------------ the cluster
def ray_module():
    """The `ray` package, or a RunError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RunError(INSTALL_HINT) from None
    return ray


@contextmanager
def cluster(address: str | None, workers: int = 1):
    """Connect this process to a Ray cluster for the block: 'local' starts one here
    (with at least `workers` CPUs), 'auto' joins the one this machine belongs to
    (`ray start`), 'ray://HOST:PORT' joins one through Ray Client. Disconnects at
    the end (a local cluster stops). None, or a Ray already initialised in this
    process: nothing to do."""
    if address is None:
        yield
        return
    ray = ray_module()
    started = not ray.is_initialized()
    if started:
        try:
            if address == "local":
                ray.init(num_cpus=max(os.cpu_count() or 1, workers), include_dashboard=False,
                         logging_level=logging.ERROR)
            else:
                ray.init(address=address, logging_level=logging.ERROR)
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds; the user gets one line
            lines = str(e).strip().splitlines()
            raise RunError(f"cannot start or reach the Ray cluster at {address!r}: {type(e).__name__}: "
                           f"{lines[0] if lines else ''}") from None
    try:
        connect(workers)  # enough CPUs, before a run folder is made
        yield
    finally:
        if started:
            ray.shutdown()


def connect(workers: int):
    """The `ray` module, connected to a cluster with a CPU for each worker."""
    ray = ray_module()
    if not ray.is_initialized():
        raise RunError(f"this run plays its games on {workers} Ray workers: give --ray ADDRESS "
                       "(in Python: with pongrl.distributed.cluster(ADDRESS): train(...))")
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers:
        raise RunError(f"the Ray cluster has {cpus:g} CPUs and each of the {workers} workers needs one; "
                       f"use --workers {int(cpus)} or add machines (ray start --address ...)")
    return ray


# ------------------------------------------------------------------ a worker's round
@dataclass
class Rollout:
    """What one worker played in a round: T steps of its n games. Flat row
    t * n + j of `x` is game j at step t."""

    x: SparseRows  # (T*n, D) inputs the actions were sampled on (PPO: ppo.encode's)
    actions: np.ndarray  # (T, n) uint8: ALE actions (REINFORCE) or indices into the action set (PPO)
    rewards: np.ndarray  # (T, n) float32
    dones: np.ndarray  # (T, n) bool: the game ended and restarted
    finished: list[tuple[int, Finished]]  # (step, episode) of every episode that ended, in order
    logp: np.ndarray | None = None  # PPO: (T, n) float32 log pi(a|x)
    values: np.ndarray | None = None  # PPO: (T, n) float32 V(x)
    next_x: SparseRows | None = None  # PPO: (n, 6400) the inputs after the last step
    next_frames: np.ndarray | None = None  # PPO: (n, 800) uint8, the binary frames after it, bit-packed
    seconds: float = 0.0  # the worker's time for the round

    @property
    def nbytes(self) -> int:
        arrays = [self.actions, self.rewards, self.dones, self.logp, self.values, self.next_frames]
        sparse = [s for s in (self.x, self.next_x) if s is not None]
        return sum(a.nbytes for a in arrays if a is not None) + sum(s.nbytes for s in sparse)

    def owned(self) -> "Rollout":
        """A copy whose arrays belong to this process (Ray may hand out read-only views
        of its object store, which the learner's buffers should not pin)."""
        def own(v):
            if isinstance(v, np.ndarray):
                return v.copy()
            if isinstance(v, SparseRows):
                return SparseRows(v.indptr.copy(), v.cols.copy(), v.vals.copy())
            return v
        return Rollout(**{k: own(v) for k, v in vars(self).items()})


class Worker:
    """Worker i of W: num_envs games on seed stream i, a generator from [seed, i].

    A plain class, made a Ray actor by `WorkerPool` (and usable without Ray)."""

    def __init__(self, cfg: dict, index: int):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # its matrices are small; one BLAS thread per worker, one worker per CPU
        self.cfg = Config.from_dict(cfg)
        c = self.cfg
        self.env = PongVecEnv(c.env_id, c.num_envs, c.seed, stream=index, streams=c.workers, num_threads=1)
        self.rng = np.random.default_rng([c.seed, index])
        self.x = np.zeros((c.num_envs, D), np.int8)  # (n, 6400) current inputs

    def start(self) -> int:
        """Start every game; returns this worker's process id."""
        self.x = self.env.reset()
        return os.getpid()

    def restore(self, env_state: dict, rng_state: dict) -> int:
        """Put the games and the generator back where `state()` found them."""
        self.x = self.env.restore(env_state)
        self.rng.bit_generator.state = rng_state
        return os.getpid()

    def state(self) -> tuple[dict, dict]:
        return self.env.state(), self.rng.bit_generator.state

    def collect(self, params: dict, steps: int) -> Rollout:
        """Play `steps` steps of every game with `params`, as the learner would act."""
        from . import ppo, reinforce

        t0 = time.perf_counter()
        env, n, is_ppo = self.env, self.env.num_envs, self.cfg.algo == "ppo"
        action_ids = np.array(ppo.ACTION_SETS[self.cfg.ppo_actions])
        blocks, finished = [], []
        actions = np.zeros((steps, n), np.uint8)
        rewards, logp, values = (np.zeros((steps, n), np.float32) for _ in range(3))
        dones = np.zeros((steps, n), bool)
        for t in range(steps):
            if is_ppo:
                xs, a, logp[t], values[t] = ppo.sample_step(params, self.x, env.cur, self.cfg.ppo_obs, self.rng)
                ale = action_ids[a]
            else:
                ale, xs = reinforce.sample_step(params, self.x, self.rng)
                a = ale
            blocks.append(xs)
            actions[t] = a
            self.x, rewards[t], dones[t], done = env.step(ale)
            finished += [(t, f) for f in done]
        out = Rollout(SparseRows.concat(blocks), actions, rewards, dones, finished)
        if is_ppo:
            out.logp, out.values = logp, values
            out.next_x = SparseRows.from_dense(self.x)
            out.next_frames = np.packbits(env.cur.reshape(n, D), axis=1)
        out.seconds = time.perf_counter() - t0
        return out

    def echo(self, obj) -> int:
        """For the overhead benchmark: receive an object, answer at once."""
        return 0 if obj is None else 1


# ------------------------------------------------------------------ the driver's side
class WorkerPool:
    """The run's Ray actors, by worker index; a worker that dies is dropped."""

    def __init__(self, cfg: Config, indices: list[int] | None = None):
        self.ray = connect(cfg.workers)
        remote = self.ray.remote(num_cpus=1, max_restarts=0)(Worker)
        self.total = cfg.workers
        indices = list(range(cfg.workers)) if indices is None else sorted(indices)
        self.actors = {i: remote.remote(cfg.to_dict(), i) for i in indices}
        self.pids: dict[int, int] = {}
        self._params = (None, None)  # (version, object ref) of the parameters last broadcast

    def start(self, states: dict[int, tuple[dict, dict]] | None = None) -> None:
        """Start every worker's games, or restore them from `states` (worker -> (env, rng) state).
        A worker that cannot start is an error, not a death."""
        calls = {i: (a.start.remote() if states is None else a.restore.remote(*states[i]))
                 for i, a in self.actors.items()}
        for i, ref in calls.items():
            try:
                self.pids[i] = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:
                cause = getattr(e, "cause", None) or e
                msg = str(cause).strip().splitlines()
                raise RunError(f"Ray worker {i} could not {'start' if states is None else 'restore its games'}: "
                               f"{type(cause).__name__}: {msg[-1] if msg else ''}") from None

    def collect(self, params: dict, steps: int, version: int | None = None) -> list[tuple[int, Rollout]]:
        """One round: every live worker plays `steps` steps with `params`, put in the
        object store once for all of them (and not again while `version`, the
        learner's update count, is the same). Returns (worker, rollout) in worker order."""
        if version is None or self._params[0] != version:
            self._params = (version, self.ray.put(params))
        ref = self._params[1]
        calls = {i: a.collect.remote(ref, steps) for i, a in self.actors.items()}
        return [(i, r.owned()) for i, r in self._gather(calls)]

    def states(self) -> dict[int, tuple[dict, dict]]:
        """Every live worker's (env state, generator state), for a checkpoint."""
        return dict(self._gather({i: a.state.remote() for i, a in self.actors.items()}))

    def _gather(self, calls: dict) -> list[tuple[int, object]]:
        out = []
        for i, ref in sorted(calls.items()):
            try:
                out.append((i, self.ray.get(ref)))
            except self.ray.exceptions.RayActorError as e:
                self._lost(i, e)
        if not self.actors:
            raise RunError(f"all {self.total} Ray workers have died; resume from the last checkpoint")
        return out

    def _lost(self, i: int, e: Exception) -> None:
        self.ray.kill(self.actors.pop(i))
        first = str(e).strip().splitlines()
        log.warning("Ray worker %d (pid %s) died (%s: %s); training goes on with %d of %d workers",
                    i, self.pids.get(i, "?"), type(e).__name__, first[0] if first else "", len(self.actors),
                    self.total)

    def close(self) -> None:
        for a in self.actors.values():
            self.ray.kill(a)
        self.actors = {}


@dataclass
class RayRun(Run):
    """A run whose games are played by Ray workers (Config.workers >= 1)."""

    pool: WorkerPool | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def learner_config(cfg: Config) -> Config:
    """The algorithm's view of a Ray run: worker i's games are group i of W."""
    return replace(cfg, num_envs=cfg.workers * cfg.num_envs, groups=cfg.workers)


def fit_groups(algo, live: int) -> None:
    """PPO updates once every group's rollout is full: keep one rollout buffer per
    live worker. Called between rounds, when the buffers are empty (so any will do).
    REINFORCE keeps a dead worker's buffer: its finished episodes are still used."""
    if algo.cfg.algo == "ppo" and len(algo.buffers) > live:
        assert all(b.pos == 0 for b in algo.buffers), "PPO rollout buffers must be empty between rounds"
        del algo.buffers[live:]


def new_ray_run(cfg: Config) -> RayRun:
    check_env_id(cfg.env_id)
    pool = WorkerPool(cfg)
    try:
        pool.start()
    except BaseException:
        pool.close()
        raise
    rng = np.random.default_rng(cfg.seed)
    return RayRun(cfg, make_algo(learner_config(cfg), rng), [], rng, pool=pool)


def save_ray_run(run: RayRun, path) -> None:
    """The checkpoint of a Ray run: the learner's arrays (as locally, one group per
    worker), every live worker's env state as env{i}/..., and in the JSON header
    the live workers and their generators' states."""
    states = run.pool.states()
    fit_groups(run.algo, len(states))
    arrays = run.algo.state()
    for i, (env_state, _) in states.items():
        arrays |= {f"env{i}/{k}": v for k, v in env_state.items()}
    meta = {"config": run.cfg.to_dict(), "counters": vars(run.counters), "rng": run.rng.bit_generator.state,
            "workers": {"alive": list(states), "rng": [rng for _, rng in states.values()]}}
    checkpoint.save(path, arrays, meta)


def load_ray_run(path, cfg: Config, counters: Counters, arrays: dict, meta: dict) -> RayRun:
    """The run saved by `save_ray_run`, its live workers restored in new actors."""
    try:
        alive = [int(i) for i in meta["workers"]["alive"]]
        rngs = list(meta["workers"]["rng"])
        if (not alive or len(rngs) != len(alive) or alive != sorted(set(alive))
                or not all(0 <= i < cfg.workers for i in alive)):
            raise ValueError(f"live workers {alive} do not fit workers = {cfg.workers}")
        rng = np.random.default_rng(cfg.seed)
        algo = make_algo(learner_config(cfg), rng)
        fit_groups(algo, len(alive))
        algo.restore(arrays)
        rng.bit_generator.state = meta["rng"]
        states = {i: ({k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"env{i}/")}, r)
                  for i, r in zip(alive, rngs)}
        if not all(s for s, _ in states.values()):
            raise ValueError("a live worker's env state is missing")
    except (KeyError, ValueError, TypeError) as e:
        raise checkpoint.CheckpointError(f"{path}: checkpoint does not fit its config ({e})") from None
    pool = WorkerPool(cfg, alive)
    try:
        pool.start(states)
    except RunError as e:
        pool.close()
        raise checkpoint.CheckpointError(f"{path}: {e}") from None
    except BaseException:
        pool.close()
        raise
    if len(alive) < cfg.workers:
        log.warning("this run goes on with %d of its %d Ray workers (the others died before its last checkpoint)",
                    len(alive), cfg.workers)
    return RayRun(cfg, algo, [], rng, counters, pool=pool)


def feed(algo, group: int, r: Rollout) -> dict | None:
    """Hand a worker's rollout to the algorithm step by step, as if its games had been
    stepped here as `group`: what `act` would have kept, then `observe`. Returns the
    stats of the last update it caused, if any."""
    T, n = r.rewards.shape
    stats = None
    ppo = algo.cfg.algo == "ppo"
    if ppo:
        next_x = r.next_x.to_dense(D, np.int8)  # (n, 6400)
        next_frames = np.unpackbits(r.next_frames, axis=1, count=D).reshape(n, 80, 80)
    for t in range(T):
        xs = r.x.slice(t * n, (t + 1) * n)
        if ppo:
            algo.pending[group] = (xs, r.actions[t].astype(np.int64), r.logp[t], r.values[t])
            last = t == T - 1
            s = algo.observe(algo.action_ids[r.actions[t]], r.rewards[t], r.dones[t],
                             next_x if last else None, next_frames if last else None, group=group)
        else:
            algo.pending[group] = xs
            s = algo.observe(r.actions[t], r.rewards[t], r.dones[t], group=group)
        stats = s or stats
    return stats


def ray_turn(run: RayRun) -> tuple[list[Finished], dict | None]:
    """One round: broadcast the parameters, let every live worker play, learn from
    their rollouts in worker order. Returns the episodes that finished and the
    stats of the round's last update (as train.turn)."""
    cfg, algo, c = run.cfg, run.algo, run.counters
    steps = cfg.ppo_num_steps if cfg.algo == "ppo" else cfg.worker_steps
    results = run.pool.collect(algo.params, steps, version=algo.updates)  # [(worker, Rollout)]
    fit_groups(algo, len(results))
    finished, stats = [], None
    for g, (i, r) in enumerate(results):
        stats = feed(algo, g if cfg.algo == "ppo" else i, r) or stats
        c.env_steps += r.rewards.size
        finished += [f for _, f in r.finished]
    return finished, stats


def check_ray_flag(address: str | None, cfg: Config | None, run_dir) -> int:
    """`pongrl train`: with --ray ADDRESS, Ray must be installed; --ray is given exactly
    when the run has workers (cfg: the new run's config; None when resuming run_dir).
    Returns the run's workers (0 when unknown)."""
    if address is not None:
        ray_module()
    resuming = cfg is None
    if resuming:
        saved = run_dir / "config.json"
        if not saved.exists():
            return 0  # train() says what is wrong with the folder
        cfg = Config.from_json_file(saved)
    if address is not None and not cfg.workers:
        raise RunError(f"the run in {run_dir} plays its games in this process (workers = 0); --ray is for runs "
                       "started with --workers W" if resuming else
                       "--ray needs --workers W: the number of Ray workers, each playing --num-envs games")
    if cfg.workers and address is None:
        raise RunError(f"this run plays its games on {cfg.workers} Ray workers: give --ray ADDRESS "
                       "('local' starts a Ray cluster here, 'auto' joins this machine's)")
    return cfg.workers
