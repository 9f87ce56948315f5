"""Same numbers: does this checkout train the same parameters as another revision?

    python bench/same_numbers.py --baseline REV [--only NAME ...]

Trains short runs of the shipped configs (REINFORCE's defaults with 1 and 16
games, `reinforce_fast`, PPO's defaults, the shipped PPO agent's config) and
of PPO in two groups without overlap, each in a fresh process, once with this
checkout's pongrl and once with the package source of git revision REV, and
compares the final parameters bit for bit, and metrics.csv row by row (wall
times aside). A refactor that keeps the numbers prints "identical" for every
run. Prints JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = {
    "reinforce_1env": dict(algo="reinforce", episodes=3, seed=5, num_envs=1, batch_size=1),
    "reinforce_16": dict(algo="reinforce", episodes=24, seed=7, batch_size=4),
    "reinforce_fast": dict(
        algo="reinforce", episodes=24, seed=4, batch_size=4, lr=0.003, lr_anneal_steps=20000, lr_floor=0.002
    ),  # the shipped config, its schedule shrunk to the run
    "ppo_defaults": dict(algo="ppo", steps=10240, seed=3),
    "ppo_shipped_agent": dict(algo="ppo", steps=6144, seed=1, ppo_conv=8, ppo_gamma=0.99, ppo_anneal_steps=100000),
    "ppo_serial_2groups": dict(
        algo="ppo", steps=6144, seed=2, groups=2, ppo_overlap=False, num_envs=8, ppo_obs="frame+diff", ppo_hidden=32
    ),
}


def one(name: str, out: Path) -> None:
    """Train RUNS[name] into out/ with whatever pongrl is first on sys.path; save its parameters."""
    import inspect

    from pongrl import checkpoint
    from pongrl.config import Config
    from pongrl.train import train

    cfg = Config(**RUNS[name], checkpoint_every=0)
    first = next(iter(inspect.signature(train).parameters))  # 0.2 takes (cfg, run_dir); 0.1 took (run_dir, cfg)
    train(cfg, out, progress=False) if first == "cfg" else train(out, cfg, progress=False)
    arrays, _ = checkpoint.load(out / "checkpoint.npz")
    params = {k.split("params/", 1)[1]: v for k, v in arrays.items() if k.startswith(("params/", "learner/params/"))}
    np.savez(out / "params.npz", **params)


def child(name: str, out: Path, src: Path | None) -> None:
    env = os.environ.copy()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src)] + [x for x in [env.get("PYTHONPATH")] if x])
    p = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", name, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    if p.returncode != 0:
        raise SystemExit(f"{name} failed ({'baseline' if src else 'this checkout'}):\n{p.stderr[-3000:]}")


def metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


def compare(a: Path, b: Path) -> dict:
    pa, pb = np.load(a / "params.npz"), np.load(b / "params.npz")
    same = sorted(pa.files) == sorted(pb.files) and all(np.array_equal(pa[k], pb[k]) for k in pa.files)
    diff = {k: float(np.abs(pa[k].astype(np.float64) - pb[k]).max()) for k in pa.files if k in pb.files}
    return {
        "parameters": "identical" if same else "different",
        "max_abs_difference": diff,
        "metrics_csv": "identical" if metrics(a / "metrics.csv") == metrics(b / "metrics.csv") else "different",
    }


def main(argv: list[str] | None = None) -> dict:
    sys.path.insert(0, str(HERE))
    from ppo_speed import export_src, is_revision

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="REV", help="the git revision to compare with (a commit, tag, ...)")
    ap.add_argument("--only", nargs="+", choices=tuple(RUNS), help="these runs only")
    ap.add_argument("--one", choices=tuple(RUNS), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        one(args.one, args.out)
        return {}
    if not args.baseline or not is_revision(args.baseline):
        ap.error(f"--baseline: {args.baseline!r} is not a commit of this git repository")
    results = {}
    with tempfile.TemporaryDirectory(prefix="pongrl-same-numbers-") as d:
        src = export_src(args.baseline, Path(d) / "base")
        for name in args.only or RUNS:
            new, old = Path(d) / name / "new", Path(d) / name / "old"
            child(name, new, None)
            child(name, old, src)
            results[name] = compare(new, old)
            print(f"[same_numbers] {name}: {results[name]['parameters']}", file=sys.stderr, flush=True)
    out = {
        "benchmark": "same_numbers",
        "baseline": args.baseline,
        "runs": results,
        "all_identical": all(r["parameters"] == r["metrics_csv"] == "identical" for r in results.values()),
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
