"""Time to win at Pong: PPO vs REINFORCE, from scratch, per seed.

    python bench/time_to_win.py [--seeds 0 1 2] [--minutes 45] [--config FILE.json] [--out DIR]
    python bench/time_to_win.py --algos reinforce --minutes 60 --eval-games 20 --eval-every 500000 \
        --config reinforce_fast --stop-above 0      # the tutorial's agent: until it beats the built-in AI

For every seed, PPO (the default Config(algo="ppo"), or with the fields that
--config sets, e.g. bench/ppo_25min.json) trains for --minutes of training
wall time, or until its learning rate has been annealed to 0; REINFORCE (the
tutorial's defaults, or with --config's fields) then trains for the same number
of env steps (the first algorithm of --algos gets the minutes). Every
--eval-every env steps the train loop itself (Config.eval_every) plays
--eval-games full games with the current policy on evaluation seeds, disjoint
from the training seeds and from `pongrl eval`'s, the same games at every
evaluation, and logs them to RUN_DIR/eval.csv. Each threshold reached is
reported with its env steps, training time and episodes played. A game's
score is the sum of its rewards (agent
points minus opponent points, -21..21); the policy's most likely action is
played, as `pongrl eval` does, or with --sample it is sampled as in training
(Config.eval_greedy; training is the same either way).

Wall times are training time only (the train loop's wall_s: evaluations are
not counted). The time budget is checked between evaluations, so a run's last
one may come after --minutes; it is plotted, but reaches no threshold, and
RUN_DIR/within_budget.npz keeps the last checkpoint inside the budget, for
`pongrl eval RUN_DIR/within_budget.npz --games 50`. Writes
DIR/results.json (with the machine's software and CPU: `system`), DIR/evals.csv
and DIR/curves.png (eval score vs env steps and vs wall time), and prints the
JSON. With --resume, runs already in DIR (of the same config) are continued
rather than refused, so a long benchmark can be done in parts; a finished run
is read back, not trained. Its results: docs/results.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices, 2 cores: one BLAS thread; before numpy

import numpy as np  # noqa: E402

from pongrl import checkpoint  # noqa: E402
from pongrl.config import Config, ConfigError, config_file  # noqa: E402
from pongrl.logger import system_info  # noqa: E402
from pongrl.train import train  # noqa: E402

THRESHOLDS = (0.0, 18.0)
BENCH_FIELDS = {
    "algo",
    "seed",
    "env_id",
    "steps",
    "episodes",
    "checkpoint_every",
    "eval_every",
    "eval_games",
    "eval_greedy",
    "init_from",
}  # set by the benchmark, never by --config


# ---------------------------------------------------------------- training with evaluations
def read_evals(run_dir: Path) -> list[dict]:
    """The run's eval.csv (written by the train loop, Config.eval_every) as evaluation records."""
    with open(run_dir / "eval.csv", newline="") as f:
        return [
            {
                "env_steps": int(r["env_steps"]),
                "wall_s": float(r["wall_s"]),
                "score": float(r["mean"]),
                "win_rate": float(r["win_rate"]),
            }
            for r in csv.DictReader(f)
        ]


def train_and_evaluate(run_dir: Path, cfg: Config, args, max_steps: int | None, max_seconds: float | None) -> dict:
    """Train until max_steps env steps or max_seconds of training (or, with --stop-at-win or
    --stop-above, until an evaluation wins). The train loop evaluates every
    args.eval_every env steps; training runs in chunks of that size so that the time
    budget is checked between chunks (every chunk after the first resumes the run).
    The last chunk may end past max_seconds; its evaluation is shown but reaches nothing."""
    resume = (run_dir / "checkpoint.npz").exists()  # a run of an earlier invocation (--resume)
    summary = saved_summary(run_dir) if resume else None
    evals = read_evals(run_dir) if resume else []
    target = evals[-1]["env_steps"] // args.eval_every * args.eval_every if evals else 0
    while summary is None or not budget_spent(summary, evals, args, max_steps, max_seconds):
        target += args.eval_every
        if max_steps is not None:
            target = min(target, max_steps)
        if summary is None:
            summary = train(dataclasses.replace(cfg, steps=target), run_dir, progress=False)
        else:
            summary = train(None, run_dir, resume=True, targets={"steps": target}, progress=False)
        evals = read_evals(run_dir)
        if max_seconds is not None and summary["wall_s"] <= max_seconds:
            keep_within_budget(run_dir)
        if evals:
            e = evals[-1]
            print(
                f"{cfg.algo} seed {cfg.seed}: {e['env_steps']} steps, {e['wall_s']:.0f} s, eval {e['score']:+.1f}",
                file=sys.stderr,
                flush=True,
            )
        if summary["interrupted"]:
            break
    reached = first_reached(evals, max_seconds)
    if args.stop_above is not None:
        reached[f">{args.stop_above:+g}"] = first_above(evals, args.stop_above, max_seconds)
    return {
        "algo": cfg.algo,
        "seed": cfg.seed,
        "run_dir": str(run_dir),
        "evals": evals,
        "reached": with_episodes(reached, run_dir),
        "env_steps": summary["env_steps"],
        "wall_s": summary["wall_s"],
        "interrupted": summary["interrupted"],
    }


def keep_within_budget(run_dir: Path) -> None:
    """Copy the run's checkpoint to within_budget.npz (temporary file, then rename): the last
    one inside the time budget, since the last chunk may end past it. `pongrl eval` scores it."""
    tmp = run_dir / "within_budget.npz.tmp"
    shutil.copyfile(run_dir / "checkpoint.npz", tmp)
    os.replace(tmp, run_dir / "within_budget.npz")


def saved_summary(run_dir: Path) -> dict:
    """Where a run in run_dir stands (env steps, training wall time), from its checkpoint."""
    counters = checkpoint.load(run_dir / "checkpoint.npz")[1]["counters"]
    return {"env_steps": counters["env_steps"], "wall_s": counters["wall_s"], "interrupted": False}


def budget_spent(summary: dict, evals: list[dict], args, max_steps: int | None, max_seconds: float | None) -> bool:
    """Whether a run is done: its steps or seconds are used up, or it has won: an evaluation
    within the time budget reached the last threshold (--stop-at-win) or scored above --stop-above."""
    done_steps = max_steps is not None and summary["env_steps"] >= max_steps
    done_time = max_seconds is not None and summary["wall_s"] >= max_seconds
    won = args.stop_at_win and first_reached(evals, max_seconds)[f"{THRESHOLDS[-1]:+g}"] is not None
    return done_steps or done_time or won or first_above(evals, args.stop_above, max_seconds) is not None


def first_above(evals: list[dict], score: float | None, max_seconds: float | None = None) -> dict | None:
    """The first evaluation within max_seconds of training whose mean is above score (None if none, or no score)."""
    inside = [e for e in evals if max_seconds is None or e["wall_s"] <= max_seconds]
    return None if score is None else next((e for e in inside if e["score"] > score), None)


def learning_steps(cfg: Config, budget: int | None) -> int | None:
    """The env-step budget, capped where the learning rate's schedule ends (PPO's
    ppo_anneal_steps, REINFORCE's lr_anneal_steps unless lr_floor holds it above 0): further
    steps would not change the policy."""
    if cfg.algo == "ppo":
        end = cfg.ppo_anneal_steps
    else:
        end = 0 if cfg.lr_floor > 0 else cfg.lr_anneal_steps
    if not end:
        return budget
    return end if budget is None else min(budget, end)


def first_reached(evals: list[dict], max_seconds: float | None = None) -> dict:
    """For every threshold, the first evaluation within max_seconds of training whose
    mean score reaches it (or None)."""
    inside = [e for e in evals if max_seconds is None or e["wall_s"] <= max_seconds]
    out = {}
    for thr in THRESHOLDS:
        hit = next((e for e in inside if e["score"] >= thr), None)
        out[f"{thr:+g}"] = None if hit is None else {"env_steps": hit["env_steps"], "wall_s": hit["wall_s"]}
    return out


def with_episodes(reached: dict, run_dir: Path) -> dict:
    """Each threshold's first evaluation with the episodes played by then (from metrics.csv)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        ends = np.array([int(r["env_steps"]) for r in csv.DictReader(f)], np.int64)  # env steps at each episode end
    return {
        k: None if hit is None else hit | {"episodes": int((ends <= hit["env_steps"]).sum())}
        for k, hit in reached.items()
    }


def check_resumable(run_dir: Path, cfg: Config, resume: bool) -> None:
    """An existing run may be continued (--resume) only if it is a run of this config."""
    if not resume:
        sys.exit(f"{run_dir} already holds a run; continue it with --resume or choose another --out")
    saved = Config.from_saved(json.loads((run_dir / "config.json").read_text())).to_dict()
    moot = ("steps",) if cfg.algo == "ppo" else ("steps", "ppo_")  # REINFORCE ignores the ppo_* fields
    differ = sorted(k for k, v in cfg.to_dict().items() if not k.startswith(moot) and saved[k] != v)
    if differ:
        sys.exit(f"{run_dir} holds a run of another config ({', '.join(differ)} differ); choose another --out")


# ---------------------------------------------------------------- outputs
def write_csv(path: Path, runs: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algo", "seed", "env_steps", "wall_s", "score"])
        for r in runs:
            for e in r["evals"]:
                w.writerow([r["algo"], r["seed"], e["env_steps"], e["wall_s"], e["score"]])


def plot(
    path: Path,
    runs: list[dict],
    title: str,
    budget_minutes: float | None = None,
    greedy: bool = False,
    eval_games: int = 10,
) -> None:
    """Eval score against env steps and against training minutes (with the budget, if one, dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ppo": "tab:blue", "reinforce": "tab:orange"}  # a colour per algorithm
    seeds = sorted({r["seed"] for r in runs})
    styles = {s: ("-", "--", ":", "-.")[i % 4] for i, s in enumerate(seeds)}  # a line style per seed
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r in runs:
        steps = [e["env_steps"] / 1e6 for e in r["evals"]]
        minutes = [e["wall_s"] / 60 for e in r["evals"]]
        score = [e["score"] for e in r["evals"]]
        style = {
            "marker": ".",
            "color": colors.get(r["algo"]),
            "ls": styles[r["seed"]],
            "alpha": 0.8,
            "label": f"{r['algo']} seed {r['seed']}",
        }
        axes[0].plot(steps, score, **style)
        axes[1].plot(minutes, score, **style)
    for ax, xlabel in zip(axes, ("env steps (millions)", "training wall time (minutes)")):
        for thr in THRESHOLDS:
            ax.axhline(thr, color="gray", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_ylim(-21.5, 21.5)
        ax.grid(alpha=0.3)
    if budget_minutes is not None:
        axes[1].axvline(budget_minutes, color="gray", lw=0.8, ls=":")
    axes[0].set_ylabel(f"mean score of {eval_games} eval games" + (" (greedy)" if greedy else " (sampled)"))
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(runs: list[dict]) -> dict:
    """Per algorithm: median env steps / wall time to every threshold over the seeds that got there."""
    out = {}
    for algo in sorted({r["algo"] for r in runs}):
        mine = [r for r in runs if r["algo"] == algo]
        out[algo] = {}
        for key in mine[0]["reached"]:
            hits = [r["reached"][key] for r in mine if r["reached"][key] is not None]
            out[algo][key] = {
                "seeds_reached": len(hits),
                "of": len(mine),
                "median_env_steps": float(np.median([h["env_steps"] for h in hits])) if hits else None,
                "median_wall_s": float(np.median([h["wall_s"] for h in hits])) if hits else None,
            }
    return out


# ---------------------------------------------------------------- main
def config_fields(path: Path | None) -> dict:
    """The fields a config file sets ({} without one), but those the benchmark sets;
    a bad file exits with its one-line error."""
    if path is None:
        return {}
    try:
        path = config_file(path)  # a file, or a config that ships with pongrl by name
        cfg = Config.from_json_file(path).to_dict()
        keys = json.loads(path.read_text()).keys()
    except ConfigError as e:
        print(f"time_to_win: --config: {e}", file=sys.stderr)
        sys.exit(2)
    return {k: cfg[k] for k in keys if k not in BENCH_FIELDS}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--minutes", type=float, default=45.0, help="PPO training wall time per seed")
    ap.add_argument("--steps", type=int, default=None, help="env-step budget for both algorithms instead of --minutes")
    ap.add_argument("--eval-every", type=int, default=250_000, help="env steps between evaluations")
    ap.add_argument("--eval-games", type=int, default=10, help="games per evaluation")
    ap.add_argument("--algos", nargs="+", default=["ppo", "reinforce"], choices=["ppo", "reinforce"])
    ap.add_argument("--env-id", default="ALE/Pong-v5")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--greedy",
        dest="greedy",
        action="store_true",
        default=True,
        help="evaluate with the policy's most likely action (the default, as pongrl eval)",
    )
    mode.add_argument(
        "--sample",
        dest="greedy",
        action="store_false",
        help="evaluate with actions sampled from the policy, as in training (Config.eval_greedy false)",
    )
    ap.add_argument(
        "--stop-at-win",
        action="store_true",
        help=f"stop a run once an evaluation reaches {THRESHOLDS[-1]:+g} (saves hours)",
    )
    ap.add_argument(
        "--stop-above",
        type=float,
        default=None,
        metavar="SCORE",
        help="stop a run once an evaluation's mean is above SCORE (0: it beats the built-in AI), "
        "and report when it first was",
    )
    ap.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE.json|NAME",
        help="hyperparameters for every algorithm: the fields this config file sets "
        "(a run's config.json works), but the benchmark's own (seed, env, steps, evaluations)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench_out/time_to_win"))
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs already in --out (from an interrupted or shorter invocation)",
    )
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    fields = config_fields(args.config)  # before anything is written
    args.out.mkdir(parents=True, exist_ok=True)
    runs, started = [], time.time()
    for seed in args.seeds:
        budget = args.steps
        for algo in args.algos:
            cfg = Config(
                algo=algo,
                seed=seed,
                env_id=args.env_id,
                checkpoint_every=0,
                eval_every=args.eval_every,
                eval_games=args.eval_games,
                eval_greedy=args.greedy,
                **fields,
            ).validate()
            run_dir = args.out / f"{algo}_seed{seed}"
            if (run_dir / "checkpoint.npz").exists():
                check_resumable(run_dir, cfg, args.resume)
            seconds = args.minutes * 60 if budget is None else None
            run = train_and_evaluate(run_dir, cfg, args, learning_steps(cfg, budget), seconds)
            runs.append(run)
            budget = run["env_steps"] if budget is None else budget  # the next algorithm gets PPO's steps
            if run["interrupted"]:
                break
        if runs and runs[-1]["interrupted"]:
            break
    result = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summarize(runs),
        "runs": runs,
        "bench_wall_s": round(time.time() - started, 1),
        "system": system_info(),
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    write_csv(args.out / "evals.csv", runs)
    plot(
        args.out / "curves.png",
        runs,
        title="Pong: " + " vs ".join(a.upper() for a in args.algos),
        budget_minutes=args.minutes if args.steps is None else None,
        greedy=args.greedy,
        eval_games=args.eval_games,
    )
    print(json.dumps(result))  # one line, after the progress lines
    return result


if __name__ == "__main__":
    main()
