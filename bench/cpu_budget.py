"""Where the CPU goes, per agent step: a sampling profile of `pongrl train`, in CPU microseconds.

    pip install py-spy
    python bench/cpu_budget.py [--steps 40960] [--rate 100] [--algo ppo --obs diff] > budget.json

Runs `pongrl train` (the given algorithm at its defaults, or PPO with the given
input) for --steps env steps under `py-spy record --subprocesses --threads
--idle`, which samples every thread of the trainer and of its emulator processes
--rate times a second, and sorts each sample into one part of the work by the
frames on its stack:

  emulation        the child processes' game loop (ALE's frames, sticky-action draws)
  screens          reading the screens and binarising them (in the children)
  pipes            sending and receiving the games' bytes (both sides)
  frame diff       the trainer's received frames -> difference frames
  encoding         the inputs an algorithm wants (pyramid, frame+diff, CSR)
  acting           the policy's forward pass and the sampled actions
  storing          recording steps and building rollouts and buffers
  learning: products / gradients / optimizer / other
  start-up         making the games and the learner, before the first step
  other            Python elsewhere in the loop (logging, checkpoints, the loop itself)
  idle             a thread that waits (for the games, for the learner thread)

py-spy cannot tell a running thread from one that waits for a core, so the
samples only split each process kind's CPU time, which the OS reports (the
trainer's own, and its children's once they have exited): CPU microseconds per
agent step (per game step) of each part, start-up left out. `idle_core_us_per_step`
is what the cores could have done and nobody did: cores x training time, less
all the work, per step (py-spy's own sampling is in it). The output also has
the peak RSS of the trainer and of the largest emulator process. JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

WAITS = re.compile(r"^(_recv|_poll|poll|wait|_wait|acquire|select|_wait_for_tstate_lock|join|_try_wait) ")
LEARNING = [  # (part, function names), checked in order on a learner's stack
    ("learning: optimizer", {"rmsprop_step", "adam_step", "adam_update", "_adam_apply", "clip_grad_norm"}),
    (
        "learning: gradients",
        {"backward", "backward_sparse", "backprop", "policy_term", "value_term", "entropy_term", "dlogit_of"},
    ),
    ("learning: products", {"forward", "forward_sparse", "forward_active", "matmul_active"}),
]


def part_of(frames: list[str], child: bool) -> str | None:
    """The part of the work one sample belongs to; frames are "fn (file.py)", innermost
    first. None: a thread that is not pongrl's (tqdm's monitor)."""
    names = {f.split(" ")[0] for f in frames}
    if "run" in names and any("_monitor" in f for f in frames):
        return None
    waiting = bool(frames) and WAITS.match(frames[0]) is not None
    if any("importlib" in f for f in frames):
        return "start-up"
    if child:
        if names & {"_load", "seed", "__init__"}:
            return "start-up"
        if waiting:
            return "idle"
        if "_step_one" in names:
            return "emulation"
        return "screens" if names & {"step", "frames", "_learn_colours"} else "pipes"
    if names & {"open_run", "new_run", "load_run", "make_collector", "import", "_find_and_load"}:
        return "start-up"
    if waiting:
        return "idle"
    if names & {"learn", "update", "epochs", "policy_gradient"}:
        return next((part for part, fns in LEARNING if names & fns), "learning: other")
    if names & {"_send", "bootstrap"}:
        if any("(inputs.py)" in f for f in frames) or names & {"encode_for", "compact"}:
            return "encoding"
        return "pipes" if names & {"send", "send_bytes"} else "acting"
    if "_receive" in names:
        if "frame_diff" in names:
            return "frame diff"
        return "pipes" if names & {"recv", "reply", "recv_bytes"} else "storing"
    if names & {"rollout", "add", "pop_finished"}:
        return "storing"
    if names & {"evaluate", "evaluate_if_due", "checkpoint", "save_run"}:
        return "evaluation and checkpoints"
    return "other"


FRAME = re.compile(r"^(?:[\w<>]+\.)*([\w<>]+) \((?:.*/)?([^/]+):\d+\)$")  # "Class.fn (dir/file.py:12)"


def read_samples(path: Path) -> Counter:
    """py-spy's raw output ('process;[process;]thread;outer;...;inner count' per line) -> Counter of
    (process kind, part); frames become "fn (file.py)"."""
    parts: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [m.expand(r"\1 (\2)") for m in map(FRAME.match, reversed(stack.split(";"))) if m]
        child = "serve_games" in stack
        part = part_of(frames, child)
        if part is not None:
            parts[("emulator processes" if child else "trainer", part)] += int(count)
    return parts


WRAPPER = """import json, resource, sys
from pongrl.cli import main
rc = main(sys.argv[2:])
use = {k: resource.getrusage(w) for k, w in (("trainer", resource.RUSAGE_SELF),
                                             ("emulator processes", resource.RUSAGE_CHILDREN))}
open(sys.argv[1], "w").write(json.dumps({"cpu": {k: u.ru_utime + u.ru_stime for k, u in use.items()},
                                         "peak_rss_mib": {k: u.ru_maxrss // 1024 for k, u in use.items()}}))
sys.exit(rc)
"""


def budget(args) -> dict:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("cpu_budget needs py-spy: pip install py-spy")
    flags = ["--algo", args.algo] + (["--ppo-obs", args.obs] if args.obs else [])
    with tempfile.TemporaryDirectory(prefix="pongrl-budget-") as d:
        raw, run_dir, cpu_file = Path(d) / "samples.txt", Path(d) / "run", Path(d) / "cpu.json"
        train = [
            "train",
            "--out",
            str(run_dir),
            "--steps",
            str(args.steps),
            "--seed",
            str(args.seed),
            "--no-progress",
            *flags,
            *args.extra,
        ]
        wrapper = Path(d) / "pongrl_cpu.py"  # pongrl's CLI, then the CPU times of it and its children
        wrapper.write_text(WRAPPER)
        cmd = [
            py_spy,
            "record",
            "--subprocesses",
            "--threads",
            "--idle",
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--",
            sys.executable,
            str(wrapper),
            str(cpu_file),
            *train,
        ]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"the profiled run failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
        steps, wall = read_counters(run_dir)
        usage = json.loads(cpu_file.read_text())  # CPU s and peak RSS (the largest child's, for the children)
        parts = read_samples(raw)
        if args.raw:
            shutil.copy(raw, args.raw)
    return {
        "benchmark": "cpu_budget",
        "cpu_count": os.cpu_count(),
        "command": "pongrl " + " ".join(train),
        "env_steps": steps,
        "train_wall_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 1),
        "rate_hz": args.rate,
        "peak_rss_mib": usage["peak_rss_mib"],
        **table(parts, usage["cpu"], steps, wall),
    }


def table(parts: Counter, cpu: dict, steps: int, wall: float) -> dict:
    """CPU µs per agent step of each (process kind, part): each kind's CPU time (from the OS),
    split in proportion to its samples that are not idle; start-up's share is left out."""
    us: dict = {}
    for kind, cpu_s in cpu.items():
        busy = {part: n for (k, part), n in parts.items() if k == kind and part != "idle"}
        total = sum(busy.values()) or 1
        us[kind] = {part: cpu_s * n / total / steps * 1e6 for part, n in sorted(busy.items(), key=lambda kv: -kv[1])}
    work = sum(v for parts_ in us.values() for part, v in parts_.items() if part != "start-up")
    idle = (os.cpu_count() or 1) * wall / steps * 1e6 - work
    return {
        "cpu_us_per_step": {
            k: {part: round(v, 1) for part, v in d.items() if part != "start-up"} for k, d in us.items()
        },
        "work_us_per_step": round(work, 1),
        "idle_core_us_per_step": round(idle, 1),
        "start_up_cpu_s": round(sum(d.get("start-up", 0) for d in us.values()) * steps / 1e6, 2),
    }


def read_counters(run_dir: Path) -> tuple[int, float]:
    """Env steps the run took and its training time (s), from its checkpoint's header."""
    from pongrl import checkpoint

    _, meta = checkpoint.load(run_dir / "checkpoint.npz")
    return int(meta["counters"]["env_steps"]), float(meta["counters"]["wall_s"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40960)
    ap.add_argument("--rate", type=int, default=100, help="samples a second per thread")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--algo", default="reinforce", choices=("reinforce", "ppo"))
    ap.add_argument("--obs", help="PPO's input (--ppo-obs)")
    ap.add_argument("--raw", metavar="PATH", help="also keep py-spy's samples there")
    ap.add_argument("extra", nargs="*", help="more `pongrl train` flags, after --")
    args = ap.parse_args(argv)
    if args.steps < 1 or not 1 <= args.rate <= 1000:
        ap.error("--steps must be >= 1 and --rate in [1, 1000]")
    print(json.dumps(budget(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
