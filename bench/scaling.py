"""End-to-end steps/s of `pongrl train` on N cores, beside the bare emulator on the same N cores.

    python bench/scaling.py [--configs ppo,reinforce,ppo_conv8] [--cores 1,2] [--steps 40960] [--rounds 2]
    python bench/scaling.py --predict bench/results/scaling.json    # the model for more cores and Ray heads

Each training measurement resumes a copy of the config's late run (made once
by bench/learner_capacity.py, in --states) for --steps more steps, in a fresh
process restricted to N cores (CPU affinity, which the emulator processes
inherit and pongrl's placement reads), placed as `pongrl train` places it.
Rounds interleave every (config, N) with the bare emulator (ale-py's vector
env, 16 games, N threads) on the same N cores. Each row is the median over rounds.

It also measures, once, the per-step costs the scaling model (pongrl.placement)
is made of, for each config:
- e: pongrl's emulator processes stepping 16 games with random actions, on one
  core; and ε(N), the share of each core that N such processes get on N cores;
- a: the training loop collecting with the config's policy, learning nothing, less e;
- l: the learner alone on one thread, from a late state (bench/learner_capacity.py);
and the model's prediction for each N, with its error. The costs are medians of
--calibrations interleaved measurements, and each prediction is scaled by the
bare emulator's speed in its rounds against its speed beside the costs (these
machines are shared: their speed drifts). The last line of output is JSON.
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
def one_train(name: str, steps: int, states: str, late_steps: int) -> dict:
    """`steps` more steps of a copy of the config's late run, on the cores this process may use."""
    import shutil

    from pongrl import checkpoint
    from pongrl.train import train

    late = late_run(name, Path(states), late_steps).parent
    before = checkpoint.load(late / "checkpoint.npz")[1]["counters"]
    with tempfile.TemporaryDirectory(prefix="pongrl-scaling-") as d:
        run = Path(d) / "run"
        shutil.copytree(late, run, ignore=shutil.ignore_patterns("*.lock"))
        targets = {"steps": before["env_steps"] + steps, "learner_threads": 0, "emulators": 0}  # placed here
        s = train(None, run, resume=True, targets=targets, progress=False)
    taken, seconds = s["env_steps"] - before["env_steps"], s["wall_s"] - before["wall_s"]
    return {"steps_per_s": taken / seconds, "placement": s["placement"]}


def one_bare(seconds: float) -> dict:
    from speed import one_ceiling

    cores = len(os.sched_getaffinity(0))
    return {"steps_per_s": one_ceiling("vec", GAMES, cores, False, 1, seconds)["steps_per_s"]}


def one_emulate(name: str, steps: int) -> dict:
    """pongrl's emulator processes, laid out as a run of the config places them on the cores this
    process may use (its groups, each with its processes), stepping with random actions, the
    groups in turn as the collector steps them: wall µs per step."""
    import numpy as np

    from pongrl.env import DOWN, UP, PongVecEnv
    from pongrl.runs import placed

    cfg, _ = placed(config_of(name, steps))
    g, rng = cfg.num_groups, np.random.default_rng(0)
    per_group = max(1, min(cfg.emulators // g, cfg.num_envs // g))
    envs = [PongVecEnv(cfg.env_id, cfg.num_envs // g, 0, processes=per_group, stream=i, streams=g) for i in range(g)]
    try:
        for env in envs:
            env.reset()
            env.send(rng.choice([UP, DOWN], env.num_envs))
        t, n = time.perf_counter(), 0
        while n < steps:
            for env in envs:
                env.recv()
                env.send(rng.choice([UP, DOWN], env.num_envs))
                n += env.num_envs
        return {"us_per_step": (time.perf_counter() - t) / n * 1e6}
    finally:
        for env in envs:
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
def calibrate(names: list[str], cores: list[int], args) -> tuple[dict, dict, dict]:
    """The model's per-step costs (each the median of --calibrations interleaved measurements), the
    emulator processes' share of each core ε(N), and the bare emulator on each N measured beside them."""
    from pongrl.placement import costs

    late = ("--states", args.states, "--late-steps", str(args.late_steps))
    samples: dict[tuple, list[float]] = {}
    for _ in range(args.calibrations):
        for n in sorted({1, *cores}):
            bare = child(n, "bare", "--bare-seconds", str(args.bare_seconds))["steps_per_s"]
            samples.setdefault(("bare", n), []).append(bare)
            for name in names:
                wall = child(n, "emulate", name, "--steps", str(args.steps))["us_per_step"]
                samples.setdefault(("wall", name, n), []).append(wall)
        for name in names:
            collect = child(1, "collect", name, "--steps", str(args.steps), *late)["us_per_step"]
            samples.setdefault(("collect", name), []).append(collect)
    med = {k: statistics.median(v) for k, v in samples.items()}
    measured, shared = {}, {}
    for name in names:
        e = med["wall", name, 1]
        shared[name] = {n: round(e / n / med["wall", name, n], 3) for n in cores}  # ε(N)
        a = max(0.0, med["collect", name] - e)  # REINFORCE's two groups can hide acting behind emulation
        ln = child(1, "learn", name, *late)["us_per_step"]
        measured[name] = {"emulator": round(e, 1), "acting": round(a, 1), "learner": round(ln, 1)}
        log(f"{name}: costs per step (µs) {measured[name]}, share of each core on N cores {shared[name]}")
        measured[name] |= {"serial": costs(config_of(name, 1)).serial, "overlap": name != "reinforce"}
    return measured, shared, {n: med["bare", n] for n in cores}


def run_all(args) -> dict:
    from pongrl.placement import Costs, predict

    names, cores = args.configs.split(","), [int(n) for n in args.cores.split(",")]
    for name in names:
        late_run(name, Path(args.states), args.late_steps)
    measured, shared, bare_then = calibrate(names, cores, args)
    train: dict[tuple[str, int], list[dict]] = {}
    bare: dict[int, list[float]] = {}
    for r in range(args.rounds):
        for n in cores if r % 2 == 0 else cores[::-1]:
            bare.setdefault(n, []).append(child(n, "bare", "--bare-seconds", str(args.bare_seconds))["steps_per_s"])
            for name in names:
                late = ("--states", args.states, "--late-steps", str(args.late_steps))
                out = child(n, "train", name, "--steps", str(args.steps), *late)
                train.setdefault((name, n), []).append(out)
                log(f"round {r + 1}: {name} on {n} cores: {out['steps_per_s']:,.0f} steps/s, bare {bare[n][-1]:,.0f}")
    rows = []
    for (name, n), outs in sorted(train.items(), key=lambda kv: (names.index(kv[0][0]), kv[0][1])):
        sps = statistics.median(o["steps_per_s"] for o in outs)
        where = outs[-1]["placement"]
        speed = statistics.median(bare[n]) / bare_then[n]  # the machine now, against when the costs were measured
        costs = Costs(**measured[name], shared=shared[name][n])
        model = predict(costs, n, where["emulators"], where["learner_threads"])
        pred = model * speed
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
                "machine_speed": round(speed, 3),
            }
        )
    return {
        "benchmark": "scaling",
        "steps": args.steps,
        "rounds": args.rounds,
        "costs_us": measured,
        "emulator_shared": shared,
        "rows": rows,
    }


def predictions(measured: dict, shared_by: dict, cores=(4, 8, 16, 32), heads=(2, 4, 8, 16)) -> dict:
    """The model's placement and steps/s for N cores, and the Ray workers a head of H cores feeds,
    from a run's measured costs (ε on 2 cores kept for every N)."""
    from pongrl.placement import Costs, predict, speedup

    out: dict = {"cores": [], "ray": []}
    for name, c in measured.items():
        shared = shared_by[name].get("2", 1.0)
        costs = Costs(**c, shared=shared)
        for n in cores:
            e, t = max(((n - t, t) for t in range(1, n)), key=lambda et: predict(costs, n, *et))
            row = {"config": name, "cores": n, "emulators": e, "learner_threads": t}
            out["cores"].append(row | {"predicted": round(predict(costs, n, e, t))})
        worker = 1e6 / (costs.emulator + costs.acting)  # a one-core worker: its process and its acting, in turn
        for h in heads:
            head = 1e6 * speedup(costs, max(1, h - 1)) / costs.learner
            row = {"config": name, "head_cores": h, "head_steps_per_s": round(head)}
            out["ray"].append(row | {"worker_steps_per_s": round(worker), "workers": round(head / worker, 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="ppo,reinforce,ppo_conv8")
    ap.add_argument("--cores", default=",".join(str(n) for n in range(1, len(os.sched_getaffinity(0)) + 1)))
    ap.add_argument("--steps", type=int, default=40960)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bare-seconds", type=float, default=10.0)
    ap.add_argument("--calibrations", type=int, default=3, help="interleaved measurements of each cost")
    ap.add_argument("--states", default="runs/learner-capacity", help="late runs (bench/learner_capacity.py's)")
    ap.add_argument("--late-steps", type=int, default=500_000)
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--predict", metavar="JSON", help="only the model's predictions from a saved run of this script")
    ap.add_argument("--capacity", metavar="JSON", help="with --predict: f from bench/learner_capacity.py's T=2 ratios")
    args = ap.parse_args(argv)
    if args.predict:
        saved = json.loads(Path(args.predict).read_text())
        costs = saved["costs_us"]
        if args.capacity:  # s(2) = 1 / (f + (1 - f) / 2), so f = 2 / s(2) - 1
            ratios = json.loads(Path(args.capacity).read_text())["ratios"]
            costs = {k: c | {"serial": round(2 / ratios[k]["2"] - 1, 3)} for k, c in costs.items() if k in ratios}
        print(json.dumps(predictions(costs, saved["emulator_shared"])))
        return 0
    if args.one:
        kind, *rest = args.one
        steps, states = args.steps, args.states
        result = {
            "train": lambda: one_train(rest[0], steps, states, args.late_steps),
            "bare": lambda: one_bare(args.bare_seconds),
            "emulate": lambda: one_emulate(rest[0], steps),
            "collect": lambda: one_collect(rest[0], steps, states, args.late_steps),
            "learn": lambda: one_learn(rest[0], states, args.late_steps),
        }[kind]()
        print(json.dumps(result))
        return 0
    print(json.dumps(run_all(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
