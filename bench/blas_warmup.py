"""One-thread BLAS, cold against warmed up (pongrl.blas): the products of PPO's update.

    python bench/blas_warmup.py [--rounds 3] > blas_warmup.json

Each measurement is a fresh process that pins BLAS to one thread (threadpoolctl),
then, for "warm", makes pongrl.blas's warm-up product, and times the two
first-layer products of one PPO minibatch, X (512, U) @ W (U, 256) and
X.T @ dh, for U = 400 and 1000 (the occurring pixels of a `diff` and a pyramid
minibatch). Variants alternate in every round; the headline is the median over
rounds of cold / warm milliseconds. Each process also hashes its results, and
the output says whether the cold and the warm products were bit for bit equal.
JSON on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time

SHAPES = (400, 1000)


def one(warm: bool, seconds: float = 0.5) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from pongrl import blas

    rng = np.random.default_rng(0)
    out, digest = {}, hashlib.sha256()
    with threadpool_limits(1):
        if warm:
            blas.warm_up()
        for u in SHAPES:
            X = np.sign(rng.standard_normal((512, u))).astype(np.float32) * (rng.random((512, u)) < 0.1)
            W = rng.standard_normal((u, 256)).astype(np.float32)
            dh = rng.standard_normal((512, 256)).astype(np.float32)
            digest.update((X @ W).tobytes() + (X.T @ dh).tobytes())
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                X @ W
                X.T @ dh
                n += 1
            out[f"U={u}"] = round((time.perf_counter() - t0) / n * 1e3, 3)  # ms for both products
    return {"ms": out, "sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", choices=("cold", "warm"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one == "warm")))
        return 0
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    rounds = []
    for _ in range(args.rounds):
        rounds.append({v: json.loads(subprocess.run([sys.executable, __file__, "--one", v], capture_output=True,
                                                    text=True, check=True).stdout) for v in ("cold", "warm")})
    ratios = {k: [r["cold"]["ms"][k] / r["warm"]["ms"][k] for r in rounds] for k in rounds[0]["cold"]["ms"]}
    print(json.dumps({"benchmark": "blas_warmup",
                      "cold_over_warm": {k: round(statistics.median(v), 2) for k, v in ratios.items()},
                      "cold_over_warm_per_round": {k: [round(x, 2) for x in v] for k, v in ratios.items()},
                      "bit_identical": all(r["cold"]["sha256"] == r["warm"]["sha256"] for r in rounds),
                      "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
