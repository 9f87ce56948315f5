"""Resume time: how long `--resume` takes before training goes on, as a run grows.

    python bench/resume_time.py [--baseline REV] [--steps 40000 160000]

For each run length, trains a REINFORCE run (16 games, defaults) to that many
env steps, then times `train --resume` with the same target: it loads the
checkpoint, puts every game back where it was, finds nothing left to do and
saves again. With --baseline, the same is done with the package source of git
revision REV, interleaved (this checkout, then the baseline, at each length),
and the ratio is reported. Only the resume is timed, in a fresh process each.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(out: Path, steps: int, resume: bool) -> float:
    """Train to `steps` (or resume to it) with whatever pongrl is first on sys.path; seconds taken."""
    import inspect

    from pongrl.config import Config
    from pongrl.train import train

    first = next(iter(inspect.signature(train).parameters))  # 0.2+ takes (cfg, run_dir); 0.1 took (run_dir, cfg)
    t = time.perf_counter()
    if resume:
        args = (None, out) if first == "cfg" else (out, None)
        train(*args, resume=True, targets={"steps": steps}, progress=False)
    else:
        cfg = Config(algo="reinforce", steps=steps, seed=1)
        train(cfg, out, progress=False) if first == "cfg" else train(out, cfg, progress=False)
    return time.perf_counter() - t


def child(out: Path, steps: int, resume: bool, src: Path | None) -> float:
    env = os.environ.copy()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src)] + [x for x in [env.get("PYTHONPATH")] if x])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(out), "--steps", str(steps)]
    p = subprocess.run(cmd + (["--resume"] if resume else []), capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{'baseline' if src else 'this checkout'} failed:\n{p.stderr[-3000:]}")
    return float(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    sys.path.insert(0, str(HERE))
    from ppo_speed import export_src, is_revision

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="REV", help="a git revision to compare with, side by side")
    ap.add_argument("--steps", type=int, nargs="+", default=[40_000, 160_000], help="run lengths in env steps")
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(one(args.one, args.steps[0], args.resume))
        return {}
    if args.baseline and not is_revision(args.baseline):
        ap.error(f"--baseline: {args.baseline!r} is not a commit of this git repository")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pongrl-resume-") as d:
        sources = {"this": None} | ({"baseline": export_src(args.baseline, Path(d) / "base")} if args.baseline else {})
        for steps in args.steps:
            row = {"env_steps": steps}
            for name, src in sources.items():
                run = Path(d) / f"{name}-{steps}"
                child(run, steps, False, src)
                row[f"{name}_resume_s"] = round(child(run, steps, True, src), 2)
                print(f"[resume_time] {name} at {steps:,} steps: {row[f'{name}_resume_s']} s", file=sys.stderr,
                      flush=True)
            if args.baseline:
                row["ratio_baseline_over_this"] = round(row["baseline_resume_s"] / row["this_resume_s"], 2)
            rows.append(row)
    out = {"benchmark": "resume_time", "baseline": args.baseline, "runs": rows}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
