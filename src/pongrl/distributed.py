"""Rollouts on a Ray cluster: W actors play the games, the learner stays here.

With `Config.workers` = W >= 1 (`pongrl train --ray ADDRESS --workers W`, or
`train()` inside `with cluster(ADDRESS, W):`), the run's collector is a
`RayCollector`. Each collect is a round:

1. the parameters go into Ray's object store once (`ray.put`), and that one
   reference to every live worker;
2. worker i, a Ray actor, runs the same `Collector` as a local run, over its
   own `PongVecEnv` of num_envs games (seed stream i of W) with its own random
   generator (from [seed, i]), and plays one rollout;
3. the rollouts come back in worker order, each with `source` = i, and the
   training loop hands them to the learner as it does local rollouts (and,
   with ppo_overlap, learns from them while the workers play the next round).

With a fixed seed and W, a run is a deterministic function of the config: the
games, the generators and the order in which results are read depend only on
the worker indices, never on Ray's scheduling. A checkpoint holds every live
worker's collector state; resuming restores them in new actors, so the resumed
run equals the uninterrupted one.

If a worker dies (its process killed, its node lost), the round goes on with
the others' rollouts, the death is logged, and the rest of the run, resumes
included, uses the live workers only.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from . import algos
from .blas import one_thread
from .checkpoint import section
from .collector import Collector
from .config import Config
from .env import PongVecEnv, check_env_id
from .errors import RunError
from .rollouts import Rollout

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
                ray.init(
                    num_cpus=max(os.cpu_count() or 1, workers), include_dashboard=False, logging_level=logging.ERROR
                )
            else:
                ray.init(address=address, logging_level=logging.ERROR)
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds; the user gets one line
            lines = str(e).strip().splitlines()
            raise RunError(
                f"cannot start or reach the Ray cluster at {address!r}: {type(e).__name__}: {lines[0] if lines else ''}"
            ) from None
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
        raise RunError(
            f"this run plays its games on {workers} Ray workers: give --ray ADDRESS "
            "(in Python: with pongrl.distributed.cluster(ADDRESS): train(...))"
        )
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers:
        raise RunError(
            f"the Ray cluster has {cpus:g} CPUs and each of the {workers} workers needs one; "
            f"use --workers {int(cpus)} or add machines (ray start --address ...)"
        )
    return ray


# ------------------------------------------------------------------ a worker
class Worker:
    """Worker i of W: a `Collector` of num_envs games on seed stream i, its
    generator from [seed, i]. A plain class, made a Ray actor by `RayCollector`."""

    def __init__(self, cfg: dict, index: int):
        one_thread()  # its matrices are small; one BLAS thread per worker, one worker per CPU
        c = Config.from_dict(cfg)
        algo = algos.get(c.algo)
        env = PongVecEnv(
            c.env_id,
            c.num_envs,
            c.seed,
            stream=index,
            streams=c.workers,
            processes=max(1, min(c.emulators, c.num_envs)),
        )
        self.collector = Collector([env], algo.act, algo.bootstrap, np.random.default_rng([c.seed, index]), index)
        self.index = index

    def start(self, state: dict | None = None) -> int:
        """Start every game, or put the collector back where `state()` found it; returns the pid."""
        self.collector.reset() if state is None else self.collector.restore(state)
        return os.getpid()

    def state(self) -> dict:
        return self.collector.state()

    def collect(self, params: dict, steps: int) -> Rollout:
        """One rollout of `steps` steps of every game, played with `params`."""
        (rollout,) = self.collector.collect(params, steps)
        return rollout


# ------------------------------------------------------------------ the driver's side
class RayCollector:
    """The run's Ray actors, by worker index; a worker that dies is dropped.
    It collects as `Collector` does, one rollout per live worker."""

    def __init__(self, cfg: Config, state: dict | None = None):
        check_env_id(cfg.env_id)
        self.ray = connect(cfg.workers)
        remote = self.ray.remote(num_cpus=1, max_restarts=0)(Worker)
        self.total = cfg.workers
        alive = range(cfg.workers) if state is None else [int(i) for i in state["alive"]]
        if state is not None and not all(0 <= i < cfg.workers for i in alive):
            raise ValueError(f"live workers {list(alive)} do not fit workers = {cfg.workers}")
        self.actors = {i: remote.remote(cfg.to_dict(), i) for i in alive}
        self.pids: dict[int, int] = {}
        try:
            self.start(None if state is None else {i: section(state, f"worker{i}/") for i in alive})
        except BaseException:
            self.close()
            raise
        if len(self.actors) < cfg.workers:
            log.warning(
                "this run goes on with %d of its %d Ray workers (the others died before its last checkpoint)",
                len(self.actors),
                cfg.workers,
            )

    def start(self, states: dict[int, dict] | None) -> None:
        """Start every worker's games, or restore them from `states`. A worker
        that cannot start is an error, not a death."""
        calls = {i: a.start.remote(None if states is None else states[i]) for i, a in self.actors.items()}
        for i, ref in calls.items():
            try:
                self.pids[i] = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:
                cause = getattr(e, "cause", None) or e
                msg = str(cause).strip().splitlines()
                raise RunError(
                    f"Ray worker {i} could not {'start' if states is None else 'restore its games'}: "
                    f"{type(cause).__name__}: {msg[-1] if msg else ''}"
                ) from None

    def collect(
        self, params: dict, steps: int | None = None, episodes: int | None = None, budget: int | None = None
    ) -> list[Rollout]:
        """One round: every live worker plays `steps` steps with `params`, put in the
        object store once for all of them. (episodes and budget are for local games.)"""
        ref = self.ray.put(params)
        calls = {i: a.collect.remote(ref, steps) for i, a in self.actors.items()}
        replies = [r for _, r in self._gather(calls)]
        return [owned(r, len(replies)) for r in replies]

    def state(self) -> dict[str, np.ndarray]:
        """Every live worker's collector state, and which workers live."""
        states = self._gather({i: a.state.remote() for i, a in self.actors.items()})
        out = {"alive": np.array([i for i, _ in states], np.int64)}
        for i, s in states:
            out |= {f"worker{i}/{k}": v for k, v in s.items()}
        return out

    def _gather(self, calls: dict) -> list[tuple[int, Any]]:
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
        log.warning(
            "Ray worker %d (pid %s) died (%s: %s); training goes on with %d of %d workers",
            i,
            self.pids.get(i, "?"),
            type(e).__name__,
            first[0] if first else "",
            len(self.actors),
            self.total,
        )

    def close(self) -> None:
        for a in self.actors.values():
            self.ray.kill(a)
        self.actors = {}


def owned(r: Rollout, workers: int) -> Rollout:
    """A copy whose arrays belong to this process (Ray may hand out read-only views
    of its object store, which the learner's buffers should not pin). The workers
    step together: an episode's `taken` becomes the round's steps when it ended."""
    x = type(r.x)(r.x.indptr.copy(), r.x.cols.copy(), r.x.vals.copy())
    return Rollout(
        r.source,
        x,
        r.actions.copy(),
        r.rewards.copy(),
        r.dones.copy(),
        {k: v.copy() for k, v in r.extras.items()},
        {k: v.copy() for k, v in r.last.items()},
        [replace(f, taken=f.taken * workers) for f in r.finished],
    )


def check_ray_flag(address: str | None, cfg: Config | None, run_dir) -> int:
    """`pongrl train`: with --ray ADDRESS, Ray must be installed; --ray is given exactly
    when the run has workers (cfg: the new run's config; None when resuming run_dir).
    Returns the run's workers (0 when unknown)."""
    if address is not None:
        ray_module()
    resuming = cfg is None
    if cfg is None:
        saved = run_dir / "config.json"
        if not saved.exists():
            return 0  # train() says what is wrong with the folder
        cfg = Config.from_json_file(saved)
    if address is not None and not cfg.workers:
        raise RunError(
            f"the run in {run_dir} plays its games in this process (workers = 0); --ray is for runs "
            "started with --workers W"
            if resuming
            else "--ray needs --workers W: the number of Ray workers, each playing --num-envs games"
        )
    if cfg.workers and address is None:
        raise RunError(
            f"this run plays its games on {cfg.workers} Ray workers: give --ray ADDRESS "
            "('local' starts a Ray cluster here, 'auto' joins this machine's)"
        )
    return cfg.workers
