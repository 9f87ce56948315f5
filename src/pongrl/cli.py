"""The `pongrl` command: train, eval, play, plot, show, info (training's flags: pongrl.flags).

A user error prints one line and exits with code 2; Ctrl-C and SIGTERM exit with 130 and 143.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import warnings
from pathlib import Path

from .errors import Terminated, UserError, own_stop_signals
from .version import __version__


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage too)
        raise UserError(f"{self.prog}: {message}")


# ------------------------------------------------------------------ commands
def cmd_train(args) -> int:
    from .config import TARGET_FIELDS, Config
    from .distributed import check_ray_flag, cluster
    from .flags import config_from_args
    from .train import train

    cfg: Config | None
    cfg, given = config_from_args(args)
    if args.resume:
        extra = sorted(set(given) - set(TARGET_FIELDS)) + (["--config"] if args.config else [])
        if extra:
            allowed = ", ".join("--" + f.replace("_", "-") for f in TARGET_FIELDS)
            raise UserError(
                f"--resume keeps the run's saved config; only {allowed} may be given (got {', '.join(extra)})"
            )
        run_dir, cfg = Path(args.resume), None
    else:
        run_dir = Path(args.out or f"runs/{cfg.algo}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    with cluster(args.ray, check_ray_flag(args.ray, cfg, run_dir)):
        summary = train(cfg, run_dir, bool(args.resume), given, not args.no_progress, args.tensorboard)
    if summary["interrupted"]:
        signum = signal.Signals[summary["signal"]]
        how = "terminated" if signum == signal.SIGTERM else "interrupted"
        print(f"{how}: checkpoint saved; continue with: pongrl train --resume {run_dir}", file=sys.stderr)
        return 128 + signum
    print(json.dumps(summary))
    return 0


def agent_of(args):
    """The agent named on the command line: a checkpoint path, or --pretrained."""
    from .agent import load_agent

    if (args.pretrained is not None) == (args.checkpoint is not None):
        raise UserError(f"pongrl {args.command}: give a CHECKPOINT or --pretrained (one of the two)")
    return load_agent(args.checkpoint if args.pretrained is None else f"pretrained:{args.pretrained}")


def cmd_eval(args) -> int:
    from .evaluate import USER_EVAL_SEEDS, evaluate

    if not 0 <= args.seed < USER_EVAL_SEEDS:
        raise UserError(f"pongrl eval: --seed must be in [0, {USER_EVAL_SEEDS}), got {args.seed}")
    agent = agent_of(args)
    res = evaluate(agent, args.games, seed=args.seed, greedy=args.greedy, env_id=args.env)
    if not args.json:
        mode = "greedy" if args.greedy else "sampled"
        print(
            f"{res['games']} games on {args.env or agent.cfg.env_id}, {mode} actions: "
            f"score {res['mean']:+.2f} ± {res['std']:.2f} (min {res['min']:+.0f}, max {res['max']:+.0f}), "
            f"win rate {res['win_rate']:.0%}"
        )
    else:
        print(
            json.dumps(
                {**{k: res[k] for k in ("games", "mean", "std", "min", "max", "win_rate")}, "greedy": args.greedy}
            )
        )
    return 0


def cmd_play(args) -> int:
    from .video import record

    if args.seed < 0:
        raise UserError(f"pongrl play: --seed must be >= 0, got {args.seed}")
    res = record(agent_of(args), args.video, seed=args.seed, greedy=args.greedy, max_steps=args.max_steps)
    print(f"wrote {res['video']}: score {res['score']:+.0f} in {res['steps']} steps")
    return 0


def cmd_plot(args) -> int:
    from .plots import plot_run

    print(f"wrote {plot_run(args.run_dir, args.output)}")
    return 0


def cmd_show_frames(args) -> int:
    from .plots import plot_frames

    if args.seed < 0:
        raise UserError(f"pongrl show frames: --seed must be >= 0, got {args.seed}")
    print(f"wrote {plot_frames(args.output, env_id=args.env, seed=args.seed)}")
    return 0


def cmd_show_weights(args) -> int:
    from .plots_weights import plot_weights

    print(f"wrote {plot_weights(agent_of(args), args.output, units=args.units, minus_init=args.minus_init)}")
    return 0


def cmd_info(args) -> int:
    from .env import env_info

    info = env_info(args.env)
    for k in ("env_id", "observation_space", "action_space"):
        print(f"{k}: {info[k]}")
    print("action_meanings: " + ", ".join(f"{i}={m}" for i, m in enumerate(info["action_meanings"])))
    print("the agent uses: 2=UP (RIGHT), 3=DOWN (LEFT)")
    return 0


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s!r}")
    return v


def build_parser() -> Parser:
    p = Parser(prog="pongrl", description="Learn Atari Pong from pixels with policy gradients, in NumPy.")
    p.add_argument("--version", action="version", version=f"pongrl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train(sub.add_parser("train", help="train an agent (Ctrl-C saves a checkpoint)"))
    add_eval(sub.add_parser("eval", help="score an agent over full games"))
    add_play(sub.add_parser("play", help="record one game to .mp4 or .gif"))
    g = sub.add_parser("plot", help="draw a run's learning curve (PNG)")
    g.add_argument("run_dir", help="run folder with metrics.csv")
    g.add_argument("-o", "--output", help="PNG file (default: RUN_DIR/learning_curve.png)")
    g.set_defaults(func=cmd_plot)
    add_show(sub.add_parser("show", help="draw a picture: what the network sees (frames) or learned (weights)"))
    i = sub.add_parser("info", help="show a Pong env's spaces and action meanings")
    i.add_argument("--env", default="ALE/Pong-v5", help="env id (default: ALE/Pong-v5)")
    i.set_defaults(func=cmd_info)
    return p


def add_train(t: argparse.ArgumentParser) -> None:
    from .config import shipped_configs
    from .flags import add_config_flags

    t.add_argument("--out", metavar="RUN_DIR", help="new run folder (default: runs/ALGO-sSEED-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    t.add_argument(
        "--config",
        metavar="FILE.json|NAME",
        help="config file (a run folder's config.json works), or the name of a config that ships "
        f"with pongrl: {', '.join(shipped_configs())}",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="play the games on --workers W Ray actors (needs pongrl[ray]): 'local' starts a Ray "
        "cluster in this process, 'auto' joins this machine's (ray start), ray://HOST:PORT a remote one",
    )
    t.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log scalars for TensorBoard (event files in RUN_DIR; needs pongrl[tensorboard]). "
        "A run option, not saved in config.json: give it again with --resume to keep logging",
    )
    add_config_flags(t)
    t.set_defaults(func=cmd_train)


def add_agent_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", help="agent file, checkpoint .npz or run folder")
    p.add_argument(
        "--pretrained",
        nargs="?",
        const="ppo",
        metavar="NAME",
        help="an agent that ships with pongrl: ppo (the default, the strongest) or reinforce "
        "(the tutorial's network, trained by its REINFORCE)",
    )


def add_action_mode(p: argparse.ArgumentParser) -> None:
    """--greedy (the default) or --sample: how the agent picks its action from the policy."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--greedy",
        dest="greedy",
        action="store_true",
        default=True,
        help="play the policy's most likely action (the default; see the README's 'Evaluating')",
    )
    mode.add_argument(
        "--sample", dest="greedy", action="store_false", help="sample the action from the policy, as in training"
    )


def add_eval(e: argparse.ArgumentParser) -> None:
    add_agent_source(e)
    e.add_argument("--games", type=positive_int, default=10, help="games to play (default: 10)")
    e.add_argument("--seed", type=int, default=0, help="evaluation seed (disjoint from training seeds)")
    add_action_mode(e)
    e.add_argument("--env", help="env id (default: the one trained on)")
    e.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    e.set_defaults(func=cmd_eval)


def add_play(pl: argparse.ArgumentParser) -> None:
    add_agent_source(pl)
    pl.add_argument("--video", required=True, metavar="FILE", help="output .mp4 or .gif")
    pl.add_argument("--seed", type=int, default=0, help="game seed")
    add_action_mode(pl)
    pl.add_argument("--max-steps", type=positive_int, default=None, help="stop early after this many steps")
    pl.set_defaults(func=cmd_play)


def add_show(s: argparse.ArgumentParser) -> None:
    pictures = s.add_subparsers(dest="picture", required=True, parser_class=Parser)
    f = pictures.add_parser("frames", help="a raw frame, its 80x80 preprocessed version and a difference frame")
    f.add_argument("--env", default="ALE/Pong-v5", help="env id (default: ALE/Pong-v5)")
    f.add_argument("--seed", type=int, default=0, help="seed of the game and of the random moves before the frame")
    f.add_argument("-o", "--output", default="frames.png", help="PNG file (default: frames.png)")
    f.set_defaults(func=cmd_show_frames)
    w = pictures.add_parser(
        "weights",
        help="the hidden units' first-layer weights (W1 rows), each as an "
        "80x80 image; with a convolution (--ppo-conv), its filters",
    )
    add_agent_source(w)
    w.add_argument(
        "--units",
        type=positive_int,
        default=None,
        help="draw only this many units, the most influential on the policy (default: all)",
    )
    w.add_argument(
        "--minus-init",
        action="store_true",
        help="draw what training changed: W1 minus its initial value (recomputed from the run's seed)",
    )
    w.add_argument("-o", "--output", default="weights.png", help="PNG file (default: weights.png)")
    w.set_defaults(func=cmd_show_weights, command="show weights")


USER_ERRORS = (UserError, OSError)
"""pongrl's own user errors, and the system's (a missing file, an unwritable folder, a full disk).
A checkpoint is written to a temporary file first: after an OSError the last good one is still there."""


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 done, 2 a user error (one line), 130 Ctrl-C, 143 SIGTERM.
    Training installs its own handlers for both signals: it checkpoints, then stops."""
    previous = own_stop_signals()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflows of a run that diverges: its guard says so
            args = build_parser().parse_args(argv)
            return args.func(args)
    except USER_ERRORS as e:
        msg = str(e) if str(e).startswith("pongrl") else f"pongrl: error: {e}"
        print(msg.splitlines()[0] if msg else "pongrl: error", file=sys.stderr)
        return 2
    except MemoryError:
        print("pongrl: error: not enough memory for this (a smaller network or fewer games?)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("pongrl: terminated" if isinstance(e, Terminated) else "pongrl: interrupted", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
