"""Steps/s of local training against training on Ray workers, and Ray's overhead per update.

    python bench/ray_scaling.py [--steps 100000] [--num-envs 16] [--workers 1 2]
                                [--algos reinforce ppo] [--out FILE.json] [--quick]

In one run, on this machine, for each algorithm:

- `local`: `train()` with num_envs games in this process (the default groups);
- `ray`, W = 1, 2, ...: `train()` with `workers=W` on a Ray cluster started here
  (one CPU per worker), each worker playing num_envs games;

each for --steps env steps, and reports steps/s of the training loop (its
wall_s: start-up, i.e. starting the actors, is reported apart as startup_s).

Then, per algorithm and W, the overhead of one round (= one PPO update; a
REINFORCE round is worker_steps steps) measured on the same WorkerPool the
training uses, over --reps rounds after a warm-up one:

- params_bytes: the parameters broadcast (ray.put once, one reference for all
  workers), put_ms: the ray.put;
- rollout_bytes: what the workers send back per round (all workers),
  bytes_per_transition, get_ms: ray.get of the finished rollouts (transfer
  and deserialisation), copy_ms: copying them out of the object store;
- round_ms: the round as the driver sees it, worker_ms: the slowest worker's
  own time for its steps, overhead_ms = round_ms - worker_ms (serialisation,
  transfer, scheduling; the learning is not part of it);
- call_ms: an empty actor call (the latency floor).

Prints one JSON object (also written to --out). --quick: tiny budgets, a
smoke test (tests/test_ray.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pongrl import algos
from pongrl.config import Config
from pongrl.distributed import Worker, owned
from pongrl.train import train


def config(args, algo: str, workers: int = 0) -> Config:
    small = dict(hidden=16, ppo_hidden=16, ppo_num_steps=32, worker_steps=32) if args.quick else {}
    return Config(
        algo=algo,
        num_envs=args.num_envs,
        workers=workers,
        steps=args.steps,
        episodes=None,
        checkpoint_every=0,
        seed=0,
        **small,
    ).validate()


def speed(cfg: Config, tmp: Path) -> dict:
    """Train cfg in a fresh folder; steps/s of the training loop."""
    t0 = time.perf_counter()
    s = train(cfg, tmp / f"{cfg.algo}-w{cfg.workers}", progress=False)
    total = time.perf_counter() - t0
    return {
        "algo": cfg.algo,
        "mode": "ray" if cfg.workers else "local",
        "workers": cfg.workers,
        "games": cfg.num_envs * max(cfg.workers, 1),
        "env_steps": s["env_steps"],
        "updates": s["updates"],
        "wall_s": round(s["wall_s"], 3),
        "startup_s": round(total - s["wall_s"], 3),
        "steps_per_s": round(s["env_steps"] / s["wall_s"], 1),
    }


class TimedWorker(Worker):
    """pongrl's Ray worker, timing its own rollouts (seconds spent playing)."""

    def timed_collect(self, params: dict, steps: int):
        t0 = time.perf_counter()
        rollout = self.collect(params, steps)
        return rollout, time.perf_counter() - t0

    def echo(self, obj) -> int:
        """Receive an object, answer at once: the cost of one actor call."""
        return 0 if obj is None else 1


def rollout_bytes(r) -> int:
    arrays = [r.x.indptr, r.x.cols, r.x.vals, r.actions, r.rewards, r.dones, *r.extras.values(), *r.last.values()]
    return sum(a.nbytes for a in arrays)


def overhead(cfg: Config, reps: int) -> dict:
    """Serialisation and transfer per round, on workers like the ones training uses."""
    import ray
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this script
    params = algos.get(cfg.algo).init_params(cfg, np.random.default_rng(cfg.seed))
    steps = cfg.ppo_num_steps if cfg.algo == "ppo" else cfg.worker_steps
    actors = [ray.remote(num_cpus=1, max_restarts=0)(TimedWorker).remote(cfg.to_dict(), i) for i in range(cfg.workers)]
    try:
        ray.get([a.start.remote() for a in actors])
        rows = []
        for k in range(reps + 1):  # the first round warms up
            t0 = time.perf_counter()
            ref = ray.put(params)
            t1 = time.perf_counter()
            refs = [a.timed_collect.remote(ref, steps) for a in actors]
            ray.wait(refs, num_returns=len(refs))
            t2 = time.perf_counter()
            results = ray.get(refs)
            t3 = time.perf_counter()
            rollouts = [owned(r, len(results)) for r, _ in results]
            t4 = time.perf_counter()
            ray.get([a.echo.remote(None) for a in actors])
            t5 = time.perf_counter()
            worker = max(seconds for _, seconds in results)
            if k:
                rows.append(
                    {
                        "put_ms": t1 - t0,
                        "get_ms": t3 - t2,
                        "copy_ms": t4 - t3,
                        "round_ms": t3 - t0,
                        "worker_ms": worker,
                        "overhead_ms": t3 - t0 - worker,
                        "call_ms": t5 - t4,
                    }
                )
        nbytes = sum(rollout_bytes(r) for r in rollouts)
        transitions = sum(r.rewards.size for r in rollouts)
    finally:
        for a in actors:
            ray.kill(a)
    out = {k: round(1000 * statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    return {
        "algo": cfg.algo,
        "workers": cfg.workers,
        "steps_per_round": steps,
        "reps": reps,
        "params_bytes": int(sum(v.nbytes for v in params.values())),
        "rollout_bytes": int(nbytes),
        "bytes_per_transition": round(nbytes / transitions, 1),
        **out,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000, help="env steps per measurement (default 100000)")
    p.add_argument("--num-envs", type=int, default=16, help="games locally, and per Ray worker (default 16)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts (default: 1 2)")
    p.add_argument("--algos", nargs="+", default=["reinforce", "ppo"], choices=["reinforce", "ppo"])
    p.add_argument("--reps", type=int, default=10, help="rounds timed for the overhead (default 10)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.num_envs, args.reps = 512, 2, 2

    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(os.cpu_count() or 1, max(args.workers)), include_dashboard=False, logging_level="ERROR")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            speeds, overheads = [], []
            for algo in args.algos:
                speeds.append(speed(config(args, algo), Path(tmp)))
                for w in args.workers:
                    speeds.append(speed(config(args, algo, w), Path(tmp)))
                    overheads.append(overhead(config(args, algo, w), args.reps))
    finally:
        if started:
            ray.shutdown()
    summary = {}
    for algo in args.algos:
        local = next(s["steps_per_s"] for s in speeds if s["algo"] == algo and s["mode"] == "local")
        summary[algo] = {"local_steps_per_s": local}
        for s in speeds:
            if s["algo"] == algo and s["mode"] == "ray":
                summary[algo][f"ray_w{s['workers']}_steps_per_s"] = s["steps_per_s"]
                summary[algo][f"ray_w{s['workers']}_over_local"] = round(s["steps_per_s"] / local, 3)
        for o in overheads:
            if o["algo"] == algo:
                summary[algo][f"ray_w{o['workers']}_overhead_ms_per_update"] = o["overhead_ms"]
    res = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1min_at_start": load,
            "python": platform.python_version(),
            "ray": ray.__version__,
            "numpy": np.__version__,
        },
        "settings": {
            "steps": args.steps,
            "num_envs": args.num_envs,
            "workers": args.workers,
            "algos": args.algos,
            "quick": args.quick,
        },
        "speed": speeds,
        "overhead": overheads,
        "summary": summary,
    }
    text = json.dumps(res, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
