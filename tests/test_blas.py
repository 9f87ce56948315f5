"""pongrl.blas: one BLAS thread, and the warm-up changes no number."""

import numpy as np
from threadpoolctl import threadpool_info

from pongrl import blas


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]


def test_one_thread_pins_blas_and_restores_it():
    before = blas_threads()
    with blas.one_thread():
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


def test_warm_up_changes_no_product():
    rng = np.random.default_rng(0)
    X = np.sign(rng.standard_normal((512, 700))).astype(np.float32) * (rng.random((512, 700)) < 0.1)
    W = rng.standard_normal((700, 256)).astype(np.float32)
    with blas.one_thread():
        cold = X @ W  # the first products of this test's process may be cold or warm: either way
        blas.warm_up()
        warm = X @ W
    np.testing.assert_array_equal(cold, warm)
    np.testing.assert_allclose(warm, X.astype(np.float64) @ W.astype(np.float64), rtol=1e-4, atol=1e-4)
