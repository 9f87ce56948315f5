"""Speed and memory benchmark: pongrl's REINFORCE training vs the tutorial's loop vs the env alone.

    python bench/speed.py [--seconds S] [--quick] > speed.json

Measures, each in its own subprocess (so that peak RSS is per measurement and
start-up is excluded from the clocks):

(a) reference: the tutorial's one-game dense float64 loop with learning
    (`bench/reference_pg_pong.py`);
(b) ceiling: env stepping only, random UP/DOWN, in several configurations
    (gymnasium env, bare ALEInterface, ale-py's AtariVectorEnv at several N,
    and two OS processes stepping at the same time); the fastest is the ceiling;
(c) pongrl: `pongrl.train.train` at the default number of games, learning
    included, plus a scaling table over N = 1 .. 32;

and the bytes each stores per transition. The headline numbers (a, c and the
fastest ceiling configuration) are measured again in `--rounds` interleaved
rounds, so that the ratios compare measurements taken close together on a
shared, noisy machine. JSON goes to stdout, progress to stderr.

`python bench/speed.py --one NAME [options]` runs one measurement in this
process and prints its JSON (that is what the driver calls).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCALING_NS = (1, 2, 4, 8, 16, 32)
TARGETS = {"c_over_a": 5.0, "c_over_b": 0.8, "bytes_fraction_of_reference": 1 / 20, "peak_rss_bytes": 1e9}
EPISODE_STEPS_RANDOM = 850  # about the length of a random-policy episode, in agent steps


def log(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def _quiet_ale() -> None:
    try:
        import ale_py

        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    except Exception:  # noqa: BLE001 - only cosmetic
        pass


# =========================================================================== (b) env-only stepping
def _random_actions(seed: int, n: int = 1 << 16):
    import numpy as np

    return np.random.default_rng(seed).integers(2, 4, n).astype(np.int32)  # UP=2 / DOWN=3


def _make_stepper(kind: str, n: int, threads: int, rgb: bool, seed: int):
    """A function step() -> agent steps taken, for one env configuration (already reset)."""
    import numpy as np

    acts = _random_actions(seed)
    mask = len(acts) - 1
    k = [seed * 7919]

    if kind == "gym":  # one gymnasium env, RGB observations, as the tutorial uses it
        from pongrl.env import make_env

        env = make_env("ALE/Pong-v5")
        env.reset(seed=seed)

        def step() -> int:
            i = k[0] = k[0] + 1
            _, _, term, trunc, _ = env.step(int(acts[i & mask]))
            if term or trunc:
                env.reset()
            return 1

        return step, env.close

    if kind == "ale":  # the bare emulator: ALE/Pong-v5's settings, 4 frames per step, grayscale screen
        import ale_py
        from ale_py import roms

        ale = ale_py.ALEInterface()
        ale.setInt("random_seed", seed)
        ale.setFloat("repeat_action_probability", 0.25)
        ale.setInt("max_num_frames_per_episode", 108_000)
        ale.loadROM(roms.get_rom_path("pong"))
        action_set = ale.getMinimalActionSet()
        screen = np.empty((210, 160, 3) if rgb else (210, 160), np.uint8)
        grab = ale.getScreenRGB if rgb else ale.getScreenGrayscale

        def step() -> int:
            i = k[0] = k[0] + 1
            a = action_set[acts[i & mask]]
            for _ in range(4):
                ale.act(a)
            grab(screen)
            if ale.game_over():
                ale.reset_game()
            return 1

        return step, lambda: None

    if kind == "vec":  # ale-py's AtariVectorEnv: C++ threads, raw 210x160 frames
        from ale_py.vector_env import AtariVectorEnv

        env = AtariVectorEnv(
            "pong",
            n,
            num_threads=threads,
            img_height=210,
            img_width=160,
            grayscale=not rgb,
            stack_num=1,
            maxpool=False,
            noop_max=0,
            reward_clipping=False,
            use_fire_reset=False,
            repeat_action_probability=0.25,
            frameskip=4,
        )
        env.reset(seed=seed)
        idx = np.arange(n)

        def step() -> int:
            i = k[0] = k[0] + n
            env.step(acts[(idx + i) & mask])
            return n

        return step, env.close

    raise ValueError(f"unknown ceiling kind {kind!r}")


def _ceiling_worker(kind, n, threads, rgb, seed, seconds, barrier, queue) -> None:
    _quiet_ale()
    step, close = _make_stepper(kind, n, threads, rgb, seed)
    for _ in range(20):  # warm up
        step()
    if barrier is not None:
        barrier.wait()
    steps, t0 = 0, time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        steps += step()
    t1 = time.monotonic()
    close()
    out = {"steps": steps, "t0": t0, "t1": t1, "peak_rss_bytes": peak_rss_bytes()}
    if queue is None:
        return out
    queue.put(out)


def one_ceiling(kind: str, n: int, threads: int, rgb: bool, procs: int, seconds: float) -> dict:
    if procs == 1:
        parts = [_ceiling_worker(kind, n, threads, rgb, 0, seconds, None, None)]
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        barrier, queue = ctx.Barrier(procs), ctx.Queue()
        ps = [
            ctx.Process(target=_ceiling_worker, args=(kind, n, threads, rgb, s, seconds, barrier, queue))
            for s in range(procs)
        ]
        for p in ps:
            p.start()
        parts = [queue.get(timeout=seconds + 300) for _ in ps]
        for p in ps:
            p.join()
    window = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)  # the same wall window for all
    steps = sum(p["steps"] for p in parts)
    return {
        "steps": steps,
        "wall_s": window,
        "steps_per_s": steps / window,
        "per_process_steps_per_s": [p["steps"] / (p["t1"] - p["t0"]) for p in parts],
        "peak_rss_bytes": sum(p["peak_rss_bytes"] for p in parts),
        "peak_rss_bytes_per_process": [p["peak_rss_bytes"] for p in parts],
    }


def ceiling_label(c: dict) -> str:
    s = {
        "gym": "gym env (RGB)",
        "ale": "bare ALEInterface (" + ("RGB" if c["rgb"] else "gray") + ")",
        "vec": f"AtariVectorEnv N={c['n']} threads={c['threads']} " + ("RGB" if c["rgb"] else "gray"),
    }[c["kind"]]
    return s + (f" x {c['procs']} processes" if c["procs"] > 1 else "")


def ceiling_configs() -> list[dict]:
    def cfg(kind, n=1, threads=1, rgb=False, procs=1):
        return {"kind": kind, "n": n, "threads": threads, "rgb": rgb, "procs": procs}

    cores = os.cpu_count() or 1
    return [
        cfg("gym"),
        cfg("gym", procs=2),
        cfg("ale"),
        cfg("ale", procs=2),
        cfg("vec", 2, 2),
        cfg("vec", 8, 2),
        cfg("vec", 16, 2),
        cfg("vec", 32, 2),
        cfg("vec", 8, 2, rgb=True),
        cfg("vec", 32, 2, rgb=True),
        cfg("vec", 1, 1, procs=2),
        cfg("vec", 8, 1, procs=2),
    ] + ([cfg("vec", 32, cores)] if cores > 2 else [])


# =========================================================================== (c) pongrl train
def _interrupt_after(seconds: float) -> threading.Thread:
    """Do what Ctrl-C does to train (stop, checkpoint, return) `seconds` after its loop began.

    A safety cap only: the measurement normally ends at its step count. The watcher calls
    train's SIGINT handler itself rather than sending a signal, so that a cap that fires
    just as train returns cannot raise KeyboardInterrupt."""
    original = signal.getsignal(signal.SIGINT)

    def watch() -> None:
        while (handler := signal.getsignal(signal.SIGINT)) is original:  # train installs its own
            time.sleep(0.01)
        time.sleep(seconds)
        if callable(handler) and signal.getsignal(signal.SIGINT) is handler:
            handler(signal.SIGINT, None)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def one_train(n: int, steps: int, cap_s: float) -> dict:
    from pongrl import checkpoint
    from pongrl.config import Config
    from pongrl.train import train

    cfg = Config(algo="reinforce", num_envs=n, steps=steps)
    with tempfile.TemporaryDirectory(prefix="pongrl-bench-") as d:
        _interrupt_after(cap_s)
        s = train(cfg, Path(d) / "run", progress=False)
        arrays, _ = checkpoint.load(Path(d) / "run" / "checkpoint.npz")
        updates = int(arrays["learner/updates"])
    return {
        "num_envs": n,
        "steps": s["env_steps"],
        "wall_s": s["wall_s"],
        "steps_per_s": s["env_steps"] / s["wall_s"],
        "episodes": s["episodes"],
        "updates": updates,
        "capped": bool(s["interrupted"]),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def one_bytes(n: int, vec_steps: int) -> dict:
    """Bytes pongrl's EpisodeBuffer holds per stored transition, sampled along a short run."""
    import numpy as np

    from pongrl.config import Config
    from pongrl.runs import new_run

    run = new_run(Config(algo="reinforce", num_envs=n, groups=1))  # one group: one buffer to look at
    samples = []
    try:
        for k in range(vec_steps):
            run.learner.learn(run.collector.collect(run.acting, steps=1), 0)
            buf = run.learner.buffers[0]
            held = len(buf.blocks) * n  # transitions the buffer holds now (= (t - first) * N)
            if ((k + 1) % 25 == 0 or k + 1 == vec_steps) and held:
                # what Python really holds: array objects (with their data when they own it),
                # the SparseRows objects and the list slots; payload is `stored_bytes`
                py = sum(
                    sys.getsizeof(b)
                    + sys.getsizeof(b.__dict__)
                    + sys.getsizeof(b.indptr)
                    + sys.getsizeof(b.cols)
                    + sys.getsizeof(b.vals)
                    for b in buf.blocks
                )
                py += sum(sys.getsizeof(a) + sys.getsizeof(r) for a, r in zip(buf.actions, buf.rewards))
                py += 8 * 3 * len(buf.blocks)
                nnz = sum(len(b.cols) for b in buf.blocks)
                samples.append((stored_bytes(buf) / held, py / held, nnz / held, held))
    finally:
        run.close()
    payload, python, nnz, held = (np.array(c, float) for c in zip(*samples))
    return {
        "num_envs": n,
        "vec_steps": vec_steps,
        "samples": len(samples),
        "max_transitions_held": int(held.max()),
        "bytes_per_transition": float(payload.mean()),
        "bytes_per_transition_max": float(payload.max()),
        "bytes_per_transition_with_python_objects": float(python.mean()),
        "nonzeros_per_input": float(nnz.mean()),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def stored_bytes(buf) -> int:
    """The payload of an EpisodeBuffer: its sparse inputs, actions and rewards."""
    return sum(b.nbytes for b in buf.blocks) + sum(a.nbytes + r.nbytes for a, r in zip(buf.actions, buf.rewards))


def one_reference(seconds: float) -> dict:
    sys.path.insert(0, str(HERE))
    import reference_pg_pong

    out = reference_pg_pong.run(seconds=seconds)
    out["peak_rss_bytes"] = peak_rss_bytes()
    return out


def run_one(args) -> dict:
    _quiet_ale()
    if args.one == "reference":
        return one_reference(args.seconds)
    if args.one == "ceiling":
        return one_ceiling(args.kind, args.n, args.threads, args.rgb, args.procs, args.seconds)
    if args.one == "train":
        return one_train(args.n, args.steps, args.cap)
    if args.one == "bytes":
        return one_bytes(args.n, args.steps)
    raise SystemExit(f"unknown measurement {args.one!r}")


# =========================================================================== the driver
def child(*argv: str, timeout: float, env: dict | None = None) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON (or an error record)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", *map(str, argv)]
    t = time.perf_counter()
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=None if env is None else os.environ | env
        )
    except subprocess.TimeoutExpired:
        log(f"  TIMEOUT after {timeout:.0f} s: {' '.join(map(str, argv))}")
        return {"error": f"timeout after {timeout:.0f} s", "argv": list(map(str, argv))}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = "\n".join(p.stderr.splitlines()[-15:])
        log(f"  FAILED (rc {p.returncode}): {' '.join(map(str, argv))}\n{tail}")
        return {"error": f"rc {p.returncode}: {tail[-2000:]}", "argv": list(map(str, argv))}
    out = json.loads(lines[-1])
    out["process_s"] = round(time.perf_counter() - t, 2)
    return out


def measure_ceiling(c: dict, seconds: float) -> dict:
    out = child(
        "ceiling",
        "--kind",
        c["kind"],
        "--n",
        c["n"],
        "--threads",
        c["threads"],
        "--procs",
        c["procs"],
        *(["--rgb"] if c["rgb"] else []),
        "--seconds",
        seconds,
        timeout=seconds + 300,
    )
    out.update(config=ceiling_label(c), **{f"cfg_{k}": v for k, v in c.items()})
    log(f"  ceiling {out['config']}: {out.get('steps_per_s', float('nan')):,.0f} steps/s")
    return out


def measure_train(n: int, steps: int, cap_s: float) -> dict:
    out = child("train", "--n", n, "--steps", steps, "--cap", cap_s, timeout=cap_s + 300)
    if "error" not in out:
        log(
            f"  train N={n}: {out['steps_per_s']:,.0f} steps/s ({out['steps']} steps, {out['episodes']} episodes, "
            f"{out['updates']} updates, {out['wall_s']:.1f} s{', CAPPED' if out['capped'] else ''}, "
            f"peak RSS {out['peak_rss_bytes'] / 2**20:.0f} MiB)"
        )
    return out


# The reference's dense W1 @ x is a BLAS gemv. OpenBLAS threads it over both cores, which
# is fastest on an idle machine but collapses (several times slower) when other processes
# hold a core; so the reference is timed both ways and the faster counts.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def measure_reference(seconds: float, one_thread: bool) -> dict:
    out = child("reference", "--seconds", seconds, timeout=seconds + 300, env=ONE_BLAS_THREAD if one_thread else None)
    out["blas_threads"] = "1" if one_thread else "default"
    if "error" not in out:
        log(
            f"  reference (BLAS threads: {out['blas_threads']}): {out['steps_per_s']:,.0f} steps/s "
            f"({out['steps']} steps, {out['episodes']} episodes, "
            f"{out['updates']} updates, peak RSS {out['peak_rss_bytes'] / 2**20:.0f} MiB)"
        )
    return out


def sps(m: dict) -> float:
    return m.get("steps_per_s", float("nan"))


def median(xs) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def machine_info() -> dict:
    import numpy as np

    try:
        import ale_py

        ale_version = ale_py.__version__
    except Exception:  # noqa: BLE001
        ale_version = None
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ale_py": ale_version,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "thread_env": {
            k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
        },
    }


def run_all(args) -> dict:
    from pongrl.config import Config

    t_start = time.perf_counter()
    default_n = Config(algo="reinforce").num_envs
    S = args.seconds
    if args.quick:
        plan = {
            "ceiling_s": S,
            "reference_s": S,
            "min_steps": 0,
            "scaling_steps": {n: max(300, 60 * n) for n in SCALING_NS},
            "bytes_vec_steps": 100,
            "rounds": 1,
        }
    else:
        plan = {
            "ceiling_s": S / 4,
            "reference_s": S,
            "min_steps": args.min_steps,
            "scaling_steps": {n: args.min_steps for n in SCALING_NS},
            "bytes_vec_steps": 1500,
            "rounds": args.rounds,
        }
    load0 = os.getloadavg()
    log(f"plan: {json.dumps(plan)}; load average {load0}")

    # (b) every ceiling configuration, once
    log("ceiling sweep (env-only stepping, random UP/DOWN)")
    sweep = [measure_ceiling(c, plan["ceiling_s"]) for c in ceiling_configs()]
    ok = [m for m in sweep if "error" not in m]
    best_cfg = {k[4:]: v for k, v in max(ok, key=sps).items() if k.startswith("cfg_")} if ok else None

    # (c) scaling over N (fixed work: the same number of agent steps at every N)
    log("pongrl train scaling")
    scaling = [measure_train(n, plan["scaling_steps"][n], args.cap) for n in SCALING_NS]
    by_n = {m["num_envs"]: m for m in scaling if "error" not in m}

    # bytes per transition
    log("bytes per transition")
    mem = child("bytes", "--n", default_n, "--steps", plan["bytes_vec_steps"], timeout=600)
    if "error" not in mem:
        log(
            f"  pongrl: {mem['bytes_per_transition']:.1f} B/transition "
            f"({mem['bytes_per_transition_with_python_objects']:.1f} with Python objects)"
        )

    # headline rounds: a, c (default N) and the best ceiling configuration, interleaved
    calib = sps(by_n.get(default_n, {}))
    head_steps = max(plan["min_steps"], int(S * calib) if not math.isnan(calib) else plan["min_steps"], 1)
    if args.quick:
        head_steps = plan["scaling_steps"][SCALING_NS[-1]]
    rounds = []
    for r in range(plan["rounds"]):
        log(f"headline round {r + 1}/{plan['rounds']} (train N={default_n}: {head_steps} steps)")
        rounds.append(
            {
                "reference": [measure_reference(plan["reference_s"], one_thread) for one_thread in (False, True)],
                "train": measure_train(default_n, head_steps, args.cap),
                "ceiling": measure_ceiling(best_cfg, plan["ceiling_s"]) if best_cfg else {"error": "no ceiling"},
            }
        )
    wall_total = time.perf_counter() - t_start
    return {
        "summary": summarize(rounds, sweep, by_n, mem, default_n),
        "ceiling_sweep": sweep,
        "scaling": scaling,
        "rounds": rounds,
        "bytes": mem,
        "plan": plan | {"seconds": S, "quick": args.quick, "cap_s": args.cap},
        "machine": machine_info() | {"load_average_start": load0, "load_average_end": os.getloadavg()},
        "total_wall_s": wall_total,
    }


def summarize(rounds: list[dict], sweep: list[dict], by_n: dict, mem: dict, default_n: int) -> dict:
    """Headline numbers. Other processes only ever slow a measurement down, so on a shared
    machine the best of several samples is the best estimate of each speed: a, b and c
    are each the max over their samples (b over every configuration tried). Medians and
    the ratios within each round are reported beside them."""
    refs = [m for r in rounds for m in r["reference"] if "error" not in m]
    trains = [r["train"] for r in rounds if "error" not in r["train"]]
    trains_all = trains + ([by_n[default_n]] if default_n in by_n else [])
    ceilings = [m for m in sweep + [r["ceiling"] for r in rounds] if "error" not in m]
    best = lambda ms: max(ms, key=sps) if ms else {}  # noqa: E731
    a, b, c = sps(best(refs)), sps(best(ceilings)), sps(best(trains_all))
    ratio = lambda x, y: x / y if y and not math.isnan(y) else float("nan")  # noqa: E731
    ref_bytes = refs[0]["bytes_per_transition"] if refs else float("nan")
    ours_bytes = mem.get("bytes_per_transition", float("nan"))
    bytes_frac = ratio(ours_bytes, ref_bytes)
    train_rss = max((m["peak_rss_bytes"] for m in trains_all), default=float("nan"))
    per_round = []
    for r in rounds:
        ra = max((sps(m) for m in r["reference"] if "error" not in m), default=float("nan"))
        rb, rc = sps(r["ceiling"]), sps(r["train"])
        per_round.append(
            {"a": ra, "b_same_config_as_ceiling": rb, "c": rc, "c_over_a": ratio(rc, ra), "c_over_b": ratio(rc, rb)}
        )
    c_over_a, c_over_b = ratio(c, a), ratio(c, b)
    return {
        "a_reference_steps_per_s": a,
        "a_reference_by_blas_threads": {
            v: max((sps(m) for m in refs if m["blas_threads"] == v), default=float("nan")) for v in ("default", "1")
        },
        "b_ceiling_steps_per_s": b,
        "b_ceiling_config": best(ceilings).get("config"),
        "c_pongrl_train_steps_per_s": c,
        "c_num_envs": default_n,
        "c_over_a": c_over_a,
        "c_over_b": c_over_b,
        "medians": {
            "a": median(r["a"] for r in per_round),
            "c": median(sps(m) for m in trains_all),
            "b_best_config": median(sps(m) for m in ceilings if m.get("config") == best(ceilings).get("config")),
        },
        "per_round": per_round,
        "bytes_per_transition": {
            "reference": ref_bytes,
            "pongrl": ours_bytes,
            "fraction": bytes_frac,
            "pongrl_with_python_objects": mem.get("bytes_per_transition_with_python_objects"),
        },
        "peak_rss_bytes": {
            "reference": max((m["peak_rss_bytes"] for m in refs), default=float("nan")),
            "ceiling_best_config": best(ceilings).get("peak_rss_bytes"),
            "pongrl_train": train_rss,
        },
        "scaling_steps_per_s": {str(n): sps(m) for n, m in sorted(by_n.items())},
        "targets": {  # a comparison with NaN (a failed measurement) is False: never holds
            "c/a >= 5": {"value": c_over_a, "holds": bool(c_over_a >= TARGETS["c_over_a"])},
            "c/b >= 0.8": {"value": c_over_b, "holds": bool(c_over_b >= TARGETS["c_over_b"])},
            "bytes per transition <= reference / 20": {
                "value": bytes_frac,
                "holds": bool(bytes_frac <= TARGETS["bytes_fraction_of_reference"]),
            },
            f"peak RSS <= 1 GB at N={default_n}": {
                "value": train_rss,
                "holds": bool(train_rss <= TARGETS["peak_rss_bytes"]),
            },
        },
    }


def _finite(obj):
    """NaN / inf (a failed measurement) -> null, so that stdout is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="time budget S (full run: 20 s; --quick: 1 s): the reference gets S per variant, "
        "each ceiling configuration S/4, the headline train about S (at least --min-steps)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny budgets everywhere (a smoke test, numbers meaningless)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved headline rounds (full run)")
    ap.add_argument(
        "--min-steps",
        type=int,
        default=60_000,
        help="agent steps of every train measurement at least (covers several updates)",
    )
    ap.add_argument("--cap", type=float, default=None, help="safety cap in seconds on one train measurement")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    one = ap.add_argument_group("one measurement (internal)")
    one.add_argument("--one", choices=("reference", "ceiling", "train", "bytes"))
    one.add_argument("--kind", choices=("gym", "ale", "vec"), default="vec")
    one.add_argument("--n", type=int, default=8)
    one.add_argument("--threads", type=int, default=2)
    one.add_argument("--procs", type=int, default=1)
    one.add_argument("--rgb", action="store_true")
    one.add_argument("--steps", type=int, default=60_000)
    args = ap.parse_args(argv)
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 20.0
    if args.cap is None:
        args.cap = 30.0 if args.quick else 120.0

    out = _finite(run_one(args) if args.one else run_all(args))
    text = json.dumps(out, allow_nan=False)  # one line: the last line of output is the JSON
    print(text, flush=True)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
