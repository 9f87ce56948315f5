"""Late in a run against fresh: does training slow down as a run goes on?

    python bench/late_speed.py RUN_DIR [--steps 61440] [--rounds 3] [--baseline REV]

RUN_DIR is a run checkpointed late (say at 0.5M steps). Each round, in fresh
subprocesses and interleaved, measures steps per second of:

- "fresh": a new run of RUN_DIR's config, for --steps steps;
- "late": a copy of RUN_DIR resumed for --steps more steps, with this checkout;
- "late_baseline" (with --baseline REV): the same resume with the package source of REV.

Only the training loop is timed (start-up, restoring the games and the
checkpoints are not). The headline is the median over rounds of late / fresh
(and late_baseline / fresh): 1.0 means a long run is as fast as a short one.
The last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_speed import export_src, is_revision, run_json  # noqa: E402  (bench/ is not a package)


def log(msg: str) -> None:
    print(f"[late_speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def one(variant: str, run_dir: Path, steps: int) -> dict:
    """One measurement in this process: steps per second of the training loop."""
    from pongrl import checkpoint
    from pongrl.config import Config
    from pongrl.train import train

    _, meta = checkpoint.load(run_dir / "checkpoint.npz")
    before = meta["counters"]
    with tempfile.TemporaryDirectory(prefix="pongrl-late-speed-") as d:
        run = Path(d) / "run"
        if variant == "fresh":
            cfg = Config.from_saved(meta["config"])
            s = train(Config.from_dict({**cfg.to_dict(), "steps": steps, "eval_every": 0}), run, progress=False)
            taken, seconds = s["env_steps"], s["wall_s"]
        else:
            shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("*.lock"))
            s = train(None, run, resume=True, targets={"steps": before["env_steps"] + steps}, progress=False)
            taken, seconds = s["env_steps"] - before["env_steps"], s["wall_s"] - before["wall_s"]
    return {"variant": variant, "steps": taken, "seconds": round(seconds, 3), "steps_per_s": taken / seconds}


def child(variant: str, args, src: Path | None) -> dict:
    cmd = [sys.executable, __file__, str(args.run_dir), "--one", variant, "--steps", str(args.steps)]
    out = run_json(cmd, src, variant)
    log(f"  {variant}: {out['steps_per_s']:,.0f} steps/s ({out['steps']} steps, {out['seconds']:.1f} s)")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a run folder with a checkpoint taken late in the run")
    ap.add_argument("--steps", type=int, default=61440, help="env steps each measurement trains (default: 61440)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", metavar="REV", help="also resume with the package source of git revision REV")
    ap.add_argument("--one", choices=("fresh", "late"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.run_dir, args.steps)))
        return {}
    if not (args.run_dir / "checkpoint.npz").exists():
        ap.error(f"{args.run_dir} holds no checkpoint.npz")
    if args.baseline and not is_revision(args.baseline):
        ap.error(f"--baseline: {args.baseline!r} is not a commit of this git repository")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="pongrl-late-speed-src-") as d:
        src = export_src(args.baseline, Path(d)) if args.baseline else None
        for r in range(args.rounds):
            log(f"round {r + 1} of {args.rounds}")
            row = {"fresh": child("fresh", args, None), "late": child("late", args, None)}
            if src is not None:
                row["late_baseline"] = child("late", args, src)
            rounds.append(row)
    med = {v: statistics.median(x[v]["steps_per_s"] for x in rounds) for v in rounds[0]}
    ratios = {
        f"{v}_over_fresh": round(statistics.median(x[v]["steps_per_s"] / x["fresh"]["steps_per_s"] for x in rounds), 3)
        for v in rounds[0]
        if v != "fresh"
    }
    out = {
        "benchmark": "late_speed",
        "run_dir": str(args.run_dir),
        "steps": args.steps,
        "baseline": args.baseline,
        "cpu_count": os.cpu_count(),
        "median_steps_per_s": {v: round(s, 1) for v, s in med.items()},
        **ratios,
        "rounds": rounds,
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
