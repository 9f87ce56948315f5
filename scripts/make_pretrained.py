"""Package a trained agent as pongrl's shipped pretrained agent.

    python scripts/make_pretrained.py RUN_DIR [--agent best|final] [--games 50]
                                      [--out src/pongrl/pretrained/pong_ppo.npz]
    python scripts/make_pretrained.py AGENT.npz [--games 50] [--out AGENT.npz]

Takes RUN_DIR/best.npz (the policy at the best evaluation during training,
Config.eval_every) or, with --agent final, the run's last weights
(RUN_DIR/checkpoint.npz, which the run must have evaluated as it ended),
scores it again on `pongrl eval`'s seeds (seed 0, which training-time
evaluations never use), and writes a compressed agent file whose
header holds the training config, the training-time evaluation of those weights,
and this fresh evaluation, greedy ("eval") and sampled ("eval_sampled"), and
how it was made: the seed, the env steps, the pongrl version and the git
commit of this checkout. The parameters are stored as float16 (pongrl acts
with them in float32), which halves the file; the fresh evaluation scores the
file as written, rounding included. Refuses to write an agent file over 10 MB. The
run's metrics.csv and eval.csv are copied beside it (OUT_metrics.csv,
OUT_eval.csv) as the agent's learning curves.

Given an agent file this script wrote instead of a run folder, it scores the
same weights again and rewrites only the fresh evaluations; the training
record (config, training-time evaluation, how it was made) is kept. An agent
file from before pongrl recorded how it was made gets its seed and env steps
from its own header, and null where the header does not know (the commit).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from pongrl import checkpoint
from pongrl.agent import Agent, load_agent, save_agent
from pongrl.evaluate import evaluate, training_eval_seed
from pongrl.version import __version__

MAX_BYTES = 10 * 2**20
SHIPPED_PPO = Path(__file__).resolve().parents[1] / "src/pongrl/pretrained/pong_ppo.npz"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a run folder, or an agent file to score again")
    ap.add_argument(
        "--agent",
        choices=("best", "final"),
        default="best",
        help="best.npz, or the last weights of the run (checkpoint.npz)",
    )
    ap.add_argument("--games", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0, help="evaluation seed, as `pongrl eval --seed`")
    ap.add_argument("--out", type=Path, help=f"default: {SHIPPED_PPO}, or the agent file scored again")
    args = ap.parse_args(argv)

    rescore = args.run_dir.suffix == ".npz" or args.run_dir.is_file()
    source = args.run_dir if rescore else args.run_dir / ("best.npz" if args.agent == "best" else "checkpoint.npz")
    try:
        trained = load_agent(source)
        info = training_record(source) if rescore else None
    except checkpoint.CheckpointError as e:
        ap.error(str(e))  # one line, exit 2
    args.out = args.out or (source if rescore else SHIPPED_PPO)
    small = Agent(trained.cfg, {k: v.astype(np.float16) for k, v in trained.params.items()})
    if info is None:
        during = training_eval(source, args.agent)
        info = {
            "eval_during_training": during,
            "made_by": f"python scripts/make_pretrained.py {args.run_dir} --agent {args.agent} "
            f"--games {args.games} --seed {args.seed}",
            "made_with": made_with(trained.cfg.seed, during["env_steps"], __version__, git_commit()),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = args.out.with_name(args.out.stem + ".new.npz")  # the agent at args.out stays until this one passes
    save_agent(new, small, info, compress=True)
    for key, greedy in (("eval", True), ("eval_sampled", False)):  # the file as users get it
        fresh = evaluate(load_agent(new), args.games, seed=args.seed, greedy=greedy)
        info[key] = {
            "seed": args.seed,
            "greedy": greedy,
            **{k: fresh[k] for k in ("games", "mean", "std", "win_rate", "scores")},
        }
    save_agent(new, small, info, compress=True)
    size = new.stat().st_size
    if size > MAX_BYTES:
        new.unlink()
        raise SystemExit(f"{args.out}: {size} bytes is over the {MAX_BYTES}-byte limit; not written")
    new.replace(args.out)
    for name in ("metrics", "eval") if not rescore else ():
        shutil.copy(args.run_dir / f"{name}.csv", args.out.with_name(f"{args.out.stem}_{name}.csv"))
    summary = {"out": str(args.out), "bytes": size, **info}
    print(json.dumps(summary))
    return summary


def made_with(seed: int, env_steps: int, version: str | None, commit: str | None) -> dict:
    """How an agent was made: its training seed and env steps, the pongrl version and git commit."""
    return {"seed": seed, "env_steps": env_steps, "pongrl": version, "commit": commit}


def training_record(agent_file: Path) -> dict:
    """What an agent file says about its training (kept when it is scored again)."""
    _, meta = checkpoint.load(agent_file)
    if "eval_during_training" not in meta or "made_by" not in meta:
        raise checkpoint.CheckpointError(f"{agent_file}: not an agent file written by make_pretrained.py")
    during = meta["eval_during_training"]
    return {
        "eval_during_training": during,
        "made_by": meta["made_by"],
        "made_with": meta.get("made_with") or made_with(meta["config"]["seed"], during["env_steps"], None, None),
    }


def git_commit() -> str | None:
    """The commit of this checkout (None outside a git clone)."""
    try:
        p = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return None
    return p.stdout.strip() or None


def training_eval(source: Path, agent: str) -> dict:
    """The training-time evaluation of the source: best.npz's own, or the last
    row of the run's eval.csv, which must be of the final weights."""
    _, meta = checkpoint.load(source)
    if agent == "best":
        return meta["eval"]
    with open(source.parent / "eval.csv", newline="") as f:
        row = {k: float(v) for k, v in list(csv.DictReader(f))[-1].items()}
    if row["env_steps"] != meta["counters"]["env_steps"]:
        raise SystemExit(
            f"{source}: the run's last evaluation, at {row['env_steps']:.0f} env steps, is not of its "
            f"final weights ({meta['counters']['env_steps']} steps); use --agent best"
        )
    cfg = meta["config"]
    return {
        "env_steps": int(row["env_steps"]),
        "wall_s": row["wall_s"],
        "seed": training_eval_seed(cfg["seed"]),
        "games": cfg["eval_games"],
        "mean": row["mean"],
        "std": row["std"],
        "win_rate": row["win_rate"],
    }


if __name__ == "__main__":
    main()
