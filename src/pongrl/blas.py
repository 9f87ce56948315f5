"""BLAS as pongrl uses it: one thread, warmed up.

pongrl's products are small, and the cores are placed between the emulator
processes and the learner's own threads (pongrl.placement, pongrl.parallel),
so BLAS runs on one thread in each caller. With NumPy's OpenBLAS
(0.3.31) pinned to one thread from the start, float32 products such as
(512, 700) @ (700, 256) ran ~3x slower (13 ms against 4 ms, on a 2-core AMD
EPYC) until the process had made one product of at least 256 x 256 x 256
floats; the results are bit for bit the same either way. So `one_thread`
makes one such product first (~2 ms): PPO's update takes half the time.
"""

from __future__ import annotations

import numpy as np

WARM_UP = 256  # side of the square float64 product that wakes OpenBLAS up


def one_thread():
    """A context (threadpoolctl's) in which BLAS runs on one thread, warmed up."""
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(1)
    warm_up()
    return limits


def warm_up() -> None:
    a = np.ones((WARM_UP, WARM_UP))
    a @ a
