"""The learner alone: how many agent steps per second it absorbs on T threads.

    python bench/learner_capacity.py [--configs reinforce,ppo,ppo_conv8] [--threads 1,2]
                                     [--rounds 3] [--late-steps 500000] [--states runs/learner-capacity]

For each config, a learner state taken late in a real run: the run in
STATES/CONFIG, trained to --late-steps env steps the first time (then kept, and
reused). From that checkpoint the games play on until the learner has made
--updates updates, and those rollouts are recorded. Then, with no emulator
running, each measurement restores the late learner state into a learner on T
threads and feeds it the recorded rollouts: agent steps fed / seconds. Rounds
interleave every (config, T); each row is the median over rounds.

Configs: 'reinforce' (the reinforce_fast config), 'ppo' (PPO's defaults) and
'ppo_conv8' (the shipped PPO agent's config). --threads defaults to 1 .. the
cores this process may use. The last line of output is JSON:
{"rows": [{"config", "threads", "steps_per_s"}, ...], "ratios": {config: {T: x T=1}}, ...}.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

CONFIGS = ("reinforce", "ppo", "ppo_conv8")


def log(msg: str) -> None:
    print(f"[learner_capacity {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def config_of(name: str, late_steps: int):
    from pongrl.agent import load_agent
    from pongrl.config import Config, config_file

    if name == "reinforce":
        cfg = Config.from_json_file(config_file("reinforce_fast"))
    elif name == "ppo":
        cfg = Config(algo="ppo")
    elif name == "ppo_conv8":
        cfg = load_agent("pretrained:ppo").cfg
    else:
        raise SystemExit(f"unknown config {name!r}; known: {', '.join(CONFIGS)}")
    fixed = {"steps": late_steps, "eval_every": 0, "checkpoint_every": 0, "learner_threads": 1, "emulators": 0}
    return Config.from_dict(cfg.to_dict() | fixed)


def late_run(name: str, states: Path, late_steps: int) -> Path:
    """STATES/NAME: a run of the config trained to late_steps (made or continued here)."""
    from pongrl import checkpoint
    from pongrl.train import train

    run_dir = states / name
    ckpt = run_dir / "checkpoint.npz"
    done = ckpt.exists() and checkpoint.load(ckpt)[1]["counters"]["env_steps"] >= late_steps
    if not done:
        log(f"{name}: training a late state to {late_steps:,} env steps in {run_dir} (once)")
        resume = ckpt.exists() or (run_dir / "config.json").exists()
        train(None if resume else config_of(name, late_steps), run_dir, resume, {"steps": late_steps}, False)
    return ckpt


def recorded(ckpt: Path, updates: int):
    """(late learner state, rollouts, agent steps): the rollouts the games play from the checkpoint
    until the learner has made `updates` updates."""
    from pongrl.runs import load_run

    rollout_limits = importlib.import_module("pongrl.train").rollout_limits
    run = load_run(ckpt, {"steps": None})  # rollouts of their usual size, past the run's target
    try:
        state = {k: v.copy(order="K") for k, v in run.learner.state().items()}
        env_steps, feed, before = run.counters.env_steps, [], run.learner.updates
        while run.learner.updates < before + updates:
            rollouts = run.collector.collect(run.learner.params, *rollout_limits(run))
            feed.append((rollouts, env_steps))
            run.learner.learn(rollouts, env_steps)
            env_steps += sum(r.rewards.size for r in rollouts)
        return run.cfg, state, feed, env_steps - run.counters.env_steps
    finally:
        run.close()


def measure(cfg, state: dict, feed: list, steps: int, threads: int) -> float:
    """Steps per second of a learner on `threads` threads restored to `state`, fed `feed`."""
    from pongrl import algos
    from pongrl.parallel import Pool

    algo = algos.get(cfg.algo)
    pool = Pool(threads)
    try:
        params = {k[len("params/") :]: v.copy(order="K") for k, v in state.items() if k.startswith("params/")}
        learner = algo.learner(cfg, params, pool)
        learner.restore({k: v.copy(order="K") for k, v in state.items()})
        t = time.perf_counter()
        for rollouts, env_steps in feed:
            learner.learn(rollouts, env_steps)
        return steps / (time.perf_counter() - t)
    finally:
        pool.close()


def run_all(args) -> dict:
    from pongrl.blas import one_thread
    from pongrl.placement import available_cores

    names = args.configs.split(",")
    threads = [int(t) for t in args.threads.split(",")] if args.threads else list(range(1, available_cores() + 1))
    with one_thread():
        inputs = {}
        for name in names:
            cfg, state, feed, steps = recorded(late_run(name, Path(args.states), args.late_steps), args.updates)
            inputs[name] = (cfg, state, feed, steps)
            log(f"{name}: {steps:,} agent steps recorded, {len(feed)} rollouts")
        times: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            for name in names:
                for t in threads if r % 2 == 0 else threads[::-1]:
                    sps = measure(*inputs[name][:2], inputs[name][2], inputs[name][3], t)
                    times.setdefault((name, t), []).append(sps)
                    log(f"round {r + 1}: {name} T={t}: {sps:,.0f} steps/s")
    rows = [{"config": n, "threads": t, "steps_per_s": round(statistics.median(v))} for (n, t), v in times.items()]
    rows.sort(key=lambda x: (names.index(x["config"]), x["threads"]))
    by = {(x["config"], x["threads"]): x["steps_per_s"] for x in rows}
    ratios = {n: {str(t): round(by[n, t] / by[n, threads[0]], 3) for t in threads} for n in names}
    per_round = {
        n: {str(t): [round(a / b, 3) for a, b in zip(times[n, t], times[n, threads[0]])] for t in threads}
        for n in names
    }
    return {
        "benchmark": "learner_capacity",
        "cores": available_cores(),
        "late_steps": args.late_steps,
        "rounds": args.rounds,
        "rows": rows,
        "ratios": ratios,
        "ratios_per_round": per_round,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--threads", default="", help="comma-separated T values (default: 1 .. the cores)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=3, help="learner updates recorded per config")
    ap.add_argument("--late-steps", type=int, default=500_000)
    ap.add_argument("--states", default="runs/learner-capacity", help="where the late runs are kept")
    args = ap.parse_args(argv)
    print(json.dumps(run_all(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
