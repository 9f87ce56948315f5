"""Evaluation curves of run folders, drawn as bench/time_to_win.py draws its own.

    python bench/eval_curves.py RUN_DIR [RUN_DIR ...] [--minutes 25] [-o curves.png] > curves.json

For runs trained with `pongrl train ... --eval-every N` rather than through
the benchmark (in parts with --resume, or stopped at a number of steps):
reads each folder's config.json (algo, seed, evaluation games and mode) and
eval.csv, plots the mean score against env steps and against minutes of
training (with --minutes dotted), and prints JSON: per run, its evaluations
and the first one above 0 and at +18 within --minutes (any time without).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import time_to_win  # noqa: E402

from pongrl.config import Config, ConfigError  # noqa: E402


def fail(message: str) -> None:
    print(f"eval_curves: {message}", file=sys.stderr)
    sys.exit(2)


def read_run(run_dir: Path, max_seconds: float | None) -> dict:
    """A run folder as time_to_win's run records: algo, seed, evaluations, thresholds reached."""
    for name in ("config.json", "eval.csv"):
        if not (run_dir / name).is_file():
            fail(f"{run_dir}: no {name} (a run folder trained with --eval-every has both)")
    try:
        cfg = Config.from_saved(json.loads((run_dir / "config.json").read_text()))  # older runs as they ran
    except (ValueError, ConfigError) as e:
        fail(f"{run_dir}/config.json: {e}")
    evals = time_to_win.read_evals(run_dir)
    return {
        "run": str(run_dir),
        "algo": cfg.algo,
        "seed": cfg.seed,
        "eval_games": cfg.eval_games,
        "greedy": cfg.eval_greedy,
        "evals": evals,
        "first_above_0": time_to_win.first_above(evals, 0.0, max_seconds),
        "reached": time_to_win.first_reached(evals, max_seconds),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--minutes", type=float, default=None, help="training budget: dotted, and thresholds within it")
    p.add_argument("-o", "--output", type=Path, default=Path("curves.png"))
    p.add_argument("--title", default="Pong: PPO")
    args = p.parse_args(argv)
    runs = [read_run(r, None if args.minutes is None else args.minutes * 60) for r in args.runs]
    time_to_win.plot(
        args.output,
        runs,
        args.title,
        budget_minutes=args.minutes,
        greedy=runs[0]["greedy"],
        eval_games=runs[0]["eval_games"],
    )
    result = {"runs": runs, "summary": time_to_win.summarize(runs), "figure": str(args.output)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
