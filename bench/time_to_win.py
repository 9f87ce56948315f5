"""Time to win at Pong: PPO vs REINFORCE, from scratch, per seed.

    python bench/time_to_win.py [--seeds 0 1 2] [--minutes 45] [--out DIR]

For every seed, PPO (the default Config(algo="ppo")) trains for --minutes of
training wall time; REINFORCE (the tutorial's defaults) then trains for the
same number of env steps. Every --eval-every env steps, training pauses
(checkpoint, then `train(..., resume=True)`), and the current policy plays
10 full games on evaluation seeds (PongVecEnv split=EVAL_SEEDS, disjoint from
training seeds, the same 10 games at every evaluation); a game's score is the
sum of its rewards (agent points minus opponent points, -21..21). Actions are
sampled from the policy, as in training (--greedy: most probable action).

Wall times are training time only (the train loop's wall_s: evaluation and
the pauses are not counted). Writes DIR/results.json, DIR/evals.csv and
DIR/curves.png (eval score vs env steps and vs wall time), and prints the
JSON. See bench/TIME_TO_WIN.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see TIME_TO_WIN.md; before numpy is imported

import numpy as np  # noqa: E402

from pongrl import checkpoint, policy, ppo  # noqa: E402
from pongrl.config import Config  # noqa: E402
from pongrl.env import EVAL_SEEDS, PongVecEnv  # noqa: E402
from pongrl.sparse import SparseRows  # noqa: E402
from pongrl.train import train  # noqa: E402

THRESHOLDS = (0.0, 18.0)
EVAL_GAMES = 10


# ---------------------------------------------------------------- evaluation
def choose_actions(algo: str, params: dict, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator,
                   greedy: bool) -> np.ndarray:
    """ALE actions (N,) of a PPO or REINFORCE policy for inputs x (N, 6400) and frames (N, 80, 80)."""
    if algo == "ppo":
        if greedy:
            return ppo.greedy_actions(params, x, frames)
        return ppo.sample_actions(params, x, frames, rng)
    p_up, _ = policy.forward_sparse(params, SparseRows.from_dense(x))  # (N,)
    return policy.actions_from_probs(p_up, 0.5 * np.ones_like(p_up) if greedy else rng.random(len(p_up)))


def evaluate(algo: str, params: dict, env_id: str, seed: int, greedy: bool, games: int = EVAL_GAMES) -> list[float]:
    """Scores of `games` full games, one per game of a fresh evaluation env."""
    env = PongVecEnv(env_id, games, seed, split=EVAL_SEEDS)
    rng = np.random.default_rng([seed, 2**20])
    scores: list[float | None] = [None] * games
    try:
        x = env.reset()
        while any(s is None for s in scores):
            x, _, _, finished = env.step(choose_actions(algo, params, x, env.cur, rng, greedy))
            for f in finished:
                if scores[f.env] is None:
                    scores[f.env] = f.ret
    finally:
        env.close()
    return [float(s) for s in scores]


def load_params(run_dir: Path) -> dict:
    arrays, _ = checkpoint.load(run_dir / "checkpoint.npz")
    return {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}


# ---------------------------------------------------------------- training with pauses
def train_and_evaluate(run_dir: Path, cfg: Config, args, max_steps: int | None, max_seconds: float | None) -> dict:
    """Train until max_steps env steps or max_seconds of training, evaluating every
    args.eval_every env steps (and at the end). Returns the run's record."""
    evals, target, resume, summary = [], 0, False, {}
    while True:
        target += args.eval_every
        if max_steps is not None:
            target = min(target, max_steps)
        if resume:
            summary = train(run_dir, resume=True, targets={"steps": target}, progress=False)
        else:
            summary = train(run_dir, dataclasses.replace(cfg, steps=target), progress=False)
        resume = True
        scores = evaluate(cfg.algo, load_params(run_dir), cfg.env_id, cfg.seed, args.greedy)
        row = {"env_steps": summary["env_steps"], "wall_s": round(summary["wall_s"], 2),
               "score": float(np.mean(scores)), "scores": scores}
        evals.append(row)
        print(f"{cfg.algo} seed {cfg.seed}: {row['env_steps']} steps, {row['wall_s']:.0f} s, "
              f"eval {row['score']:+.1f}", file=sys.stderr, flush=True)
        done_steps = max_steps is not None and summary["env_steps"] >= max_steps
        done_time = max_seconds is not None and summary["wall_s"] >= max_seconds
        if done_steps or done_time or summary["interrupted"]:
            break
    return {"algo": cfg.algo, "seed": cfg.seed, "run_dir": str(run_dir), "evals": evals,
            "reached": first_reached(evals), "env_steps": summary["env_steps"], "wall_s": summary["wall_s"],
            "interrupted": summary["interrupted"]}


def first_reached(evals: list[dict]) -> dict:
    """For every threshold, the first evaluation whose mean score reaches it (or None)."""
    out = {}
    for thr in THRESHOLDS:
        hit = next((e for e in evals if e["score"] >= thr), None)
        out[f"{thr:+g}"] = None if hit is None else {"env_steps": hit["env_steps"], "wall_s": hit["wall_s"]}
    return out


# ---------------------------------------------------------------- outputs
def write_csv(path: Path, runs: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algo", "seed", "env_steps", "wall_s", "score"])
        for r in runs:
            for e in r["evals"]:
                w.writerow([r["algo"], r["seed"], e["env_steps"], e["wall_s"], e["score"]])


def plot(path: Path, runs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ppo": "tab:blue", "reinforce": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r in runs:
        steps = [e["env_steps"] / 1e6 for e in r["evals"]]
        minutes = [e["wall_s"] / 60 for e in r["evals"]]
        score = [e["score"] for e in r["evals"]]
        label = f"{r['algo']} seed {r['seed']}"
        axes[0].plot(steps, score, marker=".", color=colors.get(r["algo"]), label=label, alpha=0.8)
        axes[1].plot(minutes, score, marker=".", color=colors.get(r["algo"]), label=label, alpha=0.8)
    for ax, xlabel in zip(axes, ("env steps (millions)", "training wall time (minutes)")):
        for thr in THRESHOLDS:
            ax.axhline(thr, color="gray", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_ylim(-21.5, 21.5)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"mean score of {EVAL_GAMES} eval games")
    axes[1].legend(fontsize=8)
    fig.suptitle("Pong: PPO vs REINFORCE")
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
            out[algo][key] = {"seeds_reached": len(hits), "of": len(mine),
                              "median_env_steps": float(np.median([h["env_steps"] for h in hits])) if hits else None,
                              "median_wall_s": float(np.median([h["wall_s"] for h in hits])) if hits else None}
    return out


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--minutes", type=float, default=45.0, help="PPO training wall time per seed")
    ap.add_argument("--steps", type=int, default=None, help="env-step budget for both algorithms instead of --minutes")
    ap.add_argument("--eval-every", type=int, default=250_000, help="env steps between evaluations")
    ap.add_argument("--algos", nargs="+", default=["ppo", "reinforce"], choices=["ppo", "reinforce"])
    ap.add_argument("--env-id", default="ALE/Pong-v5")
    ap.add_argument("--greedy", action="store_true", help="evaluate the most probable action instead of sampling")
    ap.add_argument("--out", type=Path, default=Path("bench_out/time_to_win"))
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs, started = [], time.time()
    for seed in args.seeds:
        budget = args.steps
        for algo in args.algos:
            cfg = Config(algo=algo, seed=seed, env_id=args.env_id, checkpoint_every=0).validate()
            run_dir = args.out / f"{algo}_seed{seed}"
            if (run_dir / "checkpoint.npz").exists():
                sys.exit(f"{run_dir} already holds a run; choose another --out")
            seconds = args.minutes * 60 if budget is None else None
            run = train_and_evaluate(run_dir, cfg, args, budget, seconds)
            runs.append(run)
            budget = run["env_steps"] if budget is None else budget  # the next algorithm gets PPO's steps
            if run["interrupted"]:
                break
        if runs and runs[-1]["interrupted"]:
            break
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "summary": summarize(runs), "runs": runs, "bench_wall_s": round(time.time() - started, 1)}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    write_csv(args.out / "evals.csv", runs)
    plot(args.out / "curves.png", runs)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
