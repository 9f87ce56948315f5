"""PPO training speed: the serial loop vs `ppo_overlap` (learn in a thread while
the games play), or this checkout vs an earlier commit.

    python bench/ppo_speed.py [--steps 204800] [--rounds 3] [--obs diff] [--hidden 256]
    python bench/ppo_speed.py --baseline REV [options]   # overlap here vs overlap at git revision REV
    python bench/ppo_speed.py --ceiling 30 [options]     # ... and the emulator alone, 30 s a round
    python bench/ppo_speed.py --vs '{"ppo_minibatches": 8}' [options]   # overlap vs overlap with a config change

Each measurement is `pongrl.train.train` with --algo ppo in a fresh subprocess
(start-up and env creation are not timed; learning is). The two variants run in
interleaved rounds (serial, overlap, serial, overlap, ...), so that the ratio
compares measurements taken close together on a shared, noisy machine; the
headline is the median over rounds of overlap / serial steps per second.
With --baseline, the variants are "baseline" (the package source of REV, taken
with `git archive` into a temporary folder and put first on PYTHONPATH) and
"overlap" (this checkout), and the headline is overlap / baseline.
With --vs JSON, the variants are "overlap" and "changed" (overlap with the
config fields of the JSON object set), and the headline is changed / overlap:
what a learning change costs in wall time.
With --ceiling SECONDS, every round also measures the ceiling: the same 16
games in ale-py's AtariVectorEnv on all cores, random UP/DOWN, no
preprocessing and no learning (`bench/speed.py --one ceiling --kind vec`), and
the output adds overlap / ceiling: the fraction of the bare emulator's speed
that training keeps.
JSON goes to stdout, progress to stderr.

`python bench/ppo_speed.py --one VARIANT [options]` runs one measurement in
this process and prints its JSON (that is what the driver calls).
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

VARIANTS = {"serial": False, "overlap": True, "baseline": True, "changed": True}  # -> ppo_overlap
ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[ppo_speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def one(variant: str, steps: int, obs: str, hidden: int, seed: int, algo: str = "ppo", vs: dict | None = None) -> dict:
    """Train for `steps` env steps in a temporary folder; its steps per second. PPO
    with the given input, width and overlap (and, for the variant "changed", the
    config fields `vs`); REINFORCE (--algo reinforce) at its defaults, where the
    variants differ only by their source (--baseline)."""
    from pongrl.config import Config
    from pongrl.train import train

    ppo = dict(ppo_obs=obs, ppo_hidden=hidden, ppo_overlap=VARIANTS[variant]) if algo == "ppo" else {}
    changed = (vs or {}) if variant == "changed" else {}
    cfg = Config.from_dict(Config(algo=algo, steps=steps, seed=seed, **ppo).to_dict() | changed)
    with tempfile.TemporaryDirectory(prefix="pongrl-ppo-speed-") as d:
        # pongrl 0.2 takes (cfg, run_dir); a --baseline revision before it took (run_dir, cfg)
        first = next(iter(inspect.signature(train).parameters))
        s = (
            train(cfg, Path(d) / "run", progress=False)
            if first == "cfg"
            else train(Path(d) / "run", cfg, progress=False)
        )
    return {
        "variant": variant,
        "steps": s["env_steps"],
        "updates": s["updates"],
        "wall_s": round(s["wall_s"], 3),
        "steps_per_s": s["env_steps"] / s["wall_s"],
    }


def export_src(rev: str, dest: Path) -> Path:
    """The src/ folder of git revision `rev` of this repository, written under dest."""
    p = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as tar:
        tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return dest / "src"


def is_revision(rev: str) -> bool:
    """Whether `rev` names a commit of this repository (False without git or outside a clone)."""
    try:
        p = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True
        )
    except OSError:
        return False
    return p.returncode == 0


def child(variant: str, args, src: Path | None = None) -> dict:
    """One measurement in a fresh process; with src, that package source comes first on PYTHONPATH."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        variant,
        "--steps",
        str(args.steps),
        "--obs",
        args.obs,
        "--hidden",
        str(args.hidden),
        "--seed",
        str(args.seed),
        "--algo",
        args.algo,
    ]
    if args.vs:
        cmd += ["--vs", json.dumps(args.vs)]
    out = run_json(cmd, src, variant)
    log(f"  {variant}: {out['steps_per_s']:,.0f} steps/s ({out['steps']} steps, {out['wall_s']:.1f} s)")
    return out


def run_json(cmd: list[str], src: Path | None, what: str) -> dict:
    """Run cmd in a fresh process (with src, that package source first on PYTHONPATH); the JSON
    object its output ends with. A failure exits with its stderr's tail."""
    env = os.environ.copy()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src)] + [x for x in [env.get("PYTHONPATH")] if x])
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"{what} failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(lines[-1])


def ceiling_child(seconds: float) -> dict:
    """The bare emulator's steps per second (16 games, one thread per core): bench/speed.py's ceiling measurement."""
    from speed import measure_ceiling  # bench/ is on sys.path: this script's own folder

    cores = os.cpu_count() or 1
    out = measure_ceiling({"kind": "vec", "n": 16, "threads": cores, "rgb": False, "procs": 1}, seconds)
    if "error" in out:
        raise SystemExit(f"ceiling failed: {out['error']}")
    return out


def ratio_summary(rounds: list[dict], num: str, den: str) -> dict:
    ratios = [x[num]["steps_per_s"] / x[den]["steps_per_s"] for x in rounds]
    return {
        f"{num}_over_{den}": round(statistics.median(ratios), 3),
        f"{num}_over_{den}_per_round": [round(x, 3) for x in ratios],
    }


def run_all(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="pongrl-ppo-speed-base-") as d:
        src = export_src(args.baseline, Path(d)) if args.baseline else None
        names = ("baseline", "overlap") if src else ("overlap", "changed") if args.vs else ("serial", "overlap")
        rounds = []
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            rounds.append({v: child(v, args, src if v == "baseline" else None) for v in names})
            if args.ceiling:
                rounds[-1]["ceiling"] = ceiling_child(args.ceiling)
    base, new = names
    med = {v: statistics.median(x[v]["steps_per_s"] for x in rounds) for v in rounds[0]}
    return {
        "benchmark": "ppo_speed",
        "cpu_count": os.cpu_count(),
        "config": {
            "algo": args.algo,
            "steps": args.steps,
            "obs": args.obs,
            "hidden": args.hidden,
            "seed": args.seed,
            "baseline": args.baseline,
            "vs": args.vs,
            "ceiling_s": args.ceiling,
        },
        "median_steps_per_s": {v: round(s, 1) for v, s in med.items()},
        **ratio_summary(rounds, new, base),
        **(ratio_summary(rounds, new, "ceiling") if args.ceiling else {}),
        "rounds": rounds,
    }


def json_object(s: str) -> dict:
    """argparse type: a JSON object (config fields and their values)."""
    try:
        d = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {s!r}") from None
    if not isinstance(d, dict) or not d:
        raise argparse.ArgumentTypeError(f"must be a non-empty JSON object of config fields, got {s!r}")
    return d


def check_fields(ap: argparse.ArgumentParser, flag: str, fields: dict) -> None:
    """Exit 2 with the config's own message if these fields make no valid PPO config."""
    from pongrl.config import Config, ConfigError

    try:
        Config.from_dict(Config(algo="ppo").to_dict() | fields)
    except ConfigError as e:
        ap.error(f"{flag}: {e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100 * 2048, help="env steps per measurement (2048 per update)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (serial, overlap)")
    ap.add_argument("--obs", default="frame+diff+pyramid", help="PPO's input (--ppo-obs; default: PPO's default)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--algo",
        default="ppo",
        choices=("ppo", "reinforce"),
        help="reinforce: the tutorial's agent at its defaults (use with --baseline)",
    )
    ap.add_argument("--baseline", metavar="REV", help="compare with overlap at this git revision (a commit, tag, ...)")
    ap.add_argument(
        "--ceiling",
        type=float,
        default=0,
        metavar="SECONDS",
        help="also time the bare emulator for SECONDS a round (0: off)",
    )
    ap.add_argument(
        "--vs",
        type=json_object,
        metavar="JSON",
        help="compare overlap with overlap and these config fields, e.g. '{\"ppo_minibatches\": 8}'",
    )
    ap.add_argument("--one", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.hidden < 1:
        ap.error("--steps, --rounds and --hidden must be >= 1")
    if not 0 <= args.ceiling <= 3600:
        ap.error(f"--ceiling must be in [0, 3600] seconds, got {args.ceiling!r}")
    if args.vs and args.baseline:
        ap.error("--vs and --baseline compare different things: give one of them")
    check_fields(ap, "--obs", {"ppo_obs": args.obs})
    if args.vs:
        check_fields(ap, "--vs", args.vs)
    if args.baseline and not args.one and not is_revision(args.baseline):
        ap.error(f"--baseline: {args.baseline!r} is not a commit of the git repository {ROOT}")
    out = one(args.one, args.steps, args.obs, args.hidden, args.seed, args.algo, args.vs) if args.one else run_all(args)
    print(json.dumps(out))  # one line: the last line of output is the JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
