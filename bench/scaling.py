"""End-to-end steps/s of `pongrl train` on N cores, beside the bare emulator on the same N cores.

    python bench/scaling.py [--configs ppo,reinforce,ppo_conv8] [--cores 1,2] [--steps 40960] [--rounds 2]

Each measurement is a fresh process restricted to N cores (CPU affinity, which
the emulator processes inherit and pongrl's placement reads). Rounds interleave
every (config, N) with the bare emulator (ale-py's vector env, 16 games, N
threads) on the same N cores. Each row is the median over rounds.

It also measures, once, on one core, the per-step costs the scaling model
(pongrl.placement) is made of, for each config:
- e: pongrl's emulator processes stepping 16 games with random actions;
- a: the training loop collecting with the config's policy, learning nothing, less e;
- l: the learner alone on one thread, from a late state (bench/learner_capacity.py);
and the model's prediction for each N, with its error. The last line of output is JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from learner_capacity import config_of, late_run, measure, recorded  # noqa: E402  (bench/ is not a package)

GAMES = 16


def log(msg: str) -> None:
    print(f"[scaling {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measurements, each in its own process
def one_train(name: str, steps: int) -> dict:
    from pongrl.config import Config
    from pongrl.train import train

    cfg = Config.from_dict(config_of(name, steps).to_dict() | {"learner_threads": 0})
    with tempfile.TemporaryDirectory(prefix="pongrl-scaling-") as d:
        s = train(cfg, Path(d) / "run", progress=False)
    return {"steps_per_s": s["env_steps"] / s["wall_s"], "placement": s["placement"]}


def one_bare(seconds: float) -> dict:
    from speed import one_ceiling

    cores = len(os.sched_getaffinity(0))
    return {"steps_per_s": one_ceiling("vec", GAMES, cores, False, 1, seconds)["steps_per_s"]}


def one_emulate(steps: int) -> dict:
    """e: pongrl's emulator processes (one, on this process's core), random actions."""
    import numpy as np

    from pongrl.env import DOWN, UP, PongVecEnv

    env = PongVecEnv("ALE/Pong-v5", GAMES, 0, processes=1)
    rng = np.random.default_rng(0)
    try:
        env.reset()
        t, n = time.perf_counter(), 0
        while n < steps:
            env.step(rng.choice([UP, DOWN], GAMES))
            n += GAMES
        return {"us_per_step": (time.perf_counter() - t) / n * 1e6}
    finally:
        env.close()


def one_collect(name: str, steps: int, states: str, late_steps: int) -> dict:
    """a + e: the training loop's collection with a late policy of the config, learning nothing."""
    from pongrl.blas import one_thread
    from pongrl.runs import load_run

    rollout_limits = importlib.import_module("pongrl.train").rollout_limits
    with one_thread():
        run = load_run(late_run(name, Path(states), late_steps), {"steps": None})
        try:
            t, n = time.perf_counter(), 0
            while n < steps:
                n += sum(r.rewards.size for r in run.collector.collect(run.learner.params, *rollout_limits(run)))
            return {"us_per_step": (time.perf_counter() - t) / n * 1e6}
        finally:
            run.close()


def one_learn(name: str, states: str, late_steps: int) -> dict:
    """l: the learner alone, one thread, from the late state."""
    from pongrl.blas import one_thread

    with one_thread():
        cfg, state, feed, steps = recorded(late_run(name, Path(states), late_steps), 3)
        measure(cfg, state, feed, steps, 1)  # warm-up
        return {"us_per_step": 1e6 / statistics.median(measure(cfg, state, feed, steps, 1) for _ in range(3))}


def child(cores: int, *argv: str) -> dict:
    """Run this script's --one ARGV in a fresh process on the first `cores` cores; its JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", *argv]
    p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, range(cores)))
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"{argv} on {cores} cores failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------- the driver
def costs_of(name: str, args) -> dict:
    from pongrl.placement import costs

    e = child(1, "emulate", "--steps", str(args.steps))["us_per_step"]
    late = ("--states", args.states, "--late-steps", str(args.late_steps))
    a = child(1, "collect", name, "--steps", str(args.steps), *late)["us_per_step"] - e
    ln = child(1, "learn", name, *late)["us_per_step"]
    out = {"emulator": round(e, 1), "acting": round(a, 1), "learner": round(ln, 1)}
    log(f"{name}: costs per step (µs) {out}")
    return out | {"serial": costs(config_of(name, 1)).serial, "overlap": name != "reinforce"}


def run_all(args) -> dict:
    from pongrl.placement import Costs, predict

    names, cores = args.configs.split(","), [int(n) for n in args.cores.split(",")]
    for name in names:
        late_run(name, Path(args.states), args.late_steps)
    measured = {name: costs_of(name, args) for name in names}
    train: dict[tuple[str, int], list[dict]] = {}
    bare: dict[int, list[float]] = {}
    for r in range(args.rounds):
        for n in cores if r % 2 == 0 else cores[::-1]:
            bare.setdefault(n, []).append(child(n, "bare", "--seconds", str(args.bare_seconds))["steps_per_s"])
            for name in names:
                out = child(n, "train", name, "--steps", str(args.steps))
                train.setdefault((name, n), []).append(out)
                log(f"round {r + 1}: {name} on {n} cores: {out['steps_per_s']:,.0f} steps/s, bare {bare[n][-1]:,.0f}")
    rows = []
    for (name, n), outs in sorted(train.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        sps = statistics.median(o["steps_per_s"] for o in outs)
        where = outs[-1]["placement"]
        pred = predict(Costs(**measured[name]), n, where["emulators"], where["learner_threads"])
        rows.append(
            {
                "config": name,
                "cores": n,
                "emulators": where["emulators"],
                "learner_threads": where["learner_threads"],
                "steps_per_s": round(sps),
                "bare_steps_per_s": round(statistics.median(bare[n])),
                "of_bare": round(sps / statistics.median(bare[n]), 3),
                "predicted": round(pred),
                "prediction_error": round(pred / sps - 1, 3),
            }
        )
    return {"benchmark": "scaling", "steps": args.steps, "rounds": args.rounds, "costs_us": measured, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="ppo,reinforce,ppo_conv8")
    ap.add_argument("--cores", default=",".join(str(n) for n in range(1, len(os.sched_getaffinity(0)) + 1)))
    ap.add_argument("--steps", type=int, default=40960)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bare-seconds", type=float, default=10.0)
    ap.add_argument("--states", default="runs/learner-capacity", help="late runs (bench/learner_capacity.py's)")
    ap.add_argument("--late-steps", type=int, default=500_000)
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        kind, *rest = args.one
        steps, states = args.steps, args.states
        result = {
            "train": lambda: one_train(rest[0], steps),
            "bare": lambda: one_bare(args.bare_seconds),
            "emulate": lambda: one_emulate(steps),
            "collect": lambda: one_collect(rest[0], steps, states, args.late_steps),
            "learn": lambda: one_learn(rest[0], states, args.late_steps),
        }[kind]()
        print(json.dumps(result))
        return 0
    print(json.dumps(run_all(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
