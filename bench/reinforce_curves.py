"""REINFORCE runs side by side, by episode: the tutorial's measure of progress.

    python bench/reinforce_curves.py RUN_DIR [RUN_DIR ...] [-o curves.png] > curves.json

For every run folder (`pongrl train --out RUN_DIR`), reads metrics.csv (one row
per finished episode) and eval.csv, and plots the running reward (the
tutorial's 0.99 moving average of episode returns) against episodes and
against env steps, with each evaluation's mean as a dot, and Karpathy's
~8,000 episodes to "slightly better than the AI" as a dotted line. Prints JSON:
per run, its config's differences from the tutorial's REINFORCE defaults, the
episodes and env steps it has played, and the first episode (and env step) at
which its running reward reached -18, -15, -10, -5 and 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

LEVELS = (-18.0, -15.0, -10.0, -5.0, 0.0)
KARPATHY_EPISODES = 8000


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def summary(run_dir: Path) -> dict:
    from pongrl.config import Config

    rows, evals = read(run_dir / "metrics.csv"), read(run_dir / "eval.csv")
    saved = json.loads((run_dir / "config.json").read_text())
    tutorial = Config(algo="reinforce").to_dict()
    differs = {
        k: v
        for k, v in saved.items()
        if k in tutorial and tutorial[k] != v and not k.startswith(("ppo_", "eval_", "steps", "episodes", "checkpoint"))
    }
    first = {}
    for level in LEVELS:
        hit = next((r for r in rows if r["running_reward"] >= level), None)
        first[f"{level:+g}"] = (
            None if hit is None else {"episode": int(hit["episode"]), "env_steps": int(hit["env_steps"])}
        )
    last = rows[-1] if rows else {}
    return {
        "run": str(run_dir),
        "differs_from_tutorial": differs,
        "episodes": int(last.get("episode", 0)),
        "env_steps": int(last.get("env_steps", 0)),
        "running_reward": last.get("running_reward"),
        "first_running_reward_at": first,
        "evals": [{"env_steps": int(e["env_steps"]), "mean": e["mean"]} for e in evals],
    }


def labels(runs: list[Path]) -> list[str]:
    """Each run's folder name, or parent/name where two runs share a name."""
    names = [r.name for r in runs]
    return [n if names.count(n) == 1 else f"{r.parent.name}/{n}" for r, n in zip(runs, names)]


def title(runs: list[Path]) -> str:
    """The figure's title, naming the envs the runs were trained on."""
    envs = sorted({json.loads((r / "config.json").read_text())["env_id"] for r in runs})
    return f"REINFORCE on {' and '.join(envs)}: the tutorial's network"


def plot(runs: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_ep, by_steps) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for i, (run_dir, label) in enumerate(zip(runs, labels(runs))):
        rows, evals = read(run_dir / "metrics.csv"), read(run_dir / "eval.csv")
        color = f"C{i}"
        by_ep.plot([r["episode"] for r in rows], [r["running_reward"] for r in rows], color=color, label=label)
        by_steps.plot([r["env_steps"] / 1e6 for r in rows], [r["running_reward"] for r in rows], color=color)
        by_steps.plot([e["env_steps"] / 1e6 for e in evals], [e["mean"] for e in evals], "o", color=color, ms=4)
    by_ep.axvline(KARPATHY_EPISODES, color="gray", ls=":", lw=1)
    by_ep.text(KARPATHY_EPISODES, -20.5, " Karpathy: ~8,000\n episodes to ~0", fontsize=8, color="gray")
    by_ep.set_xlabel("episodes")
    by_steps.set_xlabel("env steps (millions); dots: evaluation means")
    by_ep.set_ylabel("running reward (0.99 average of episode returns)")
    for ax in (by_ep, by_steps):
        ax.axhline(0, color="gray", lw=0.8, ls="--")
        ax.set_ylim(-21.5, 21.5)
        ax.grid(alpha=0.3)
    by_ep.legend(fontsize=8, loc="upper left")
    fig.suptitle(title(runs))
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    ap.add_argument("-o", "--output", type=Path, help="also draw the curves into this PNG")
    args = ap.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "metrics.csv").exists() or not (r / "config.json").exists()]
    if missing:
        ap.error(f"not a run folder (no metrics.csv and config.json): {', '.join(missing)}")
    if args.output:
        plot(args.runs, args.output)
    print(json.dumps({"benchmark": "reinforce_curves", "runs": [summary(r) for r in args.runs]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
