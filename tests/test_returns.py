"""returns.py: discounted returns that restart at every point, and normalisation."""

from __future__ import annotations

import numpy as np

from pongrl.returns import discount_rewards, normalize


def test_two_points_by_hand():
    r = np.array([0, 0, 1, 0, -1], np.float32)
    np.testing.assert_allclose(discount_rewards(r, 0.5), [0.25, 0.5, 1.0, -0.5, -1.0], rtol=0, atol=1e-15)


def test_sum_restarts_at_every_point():
    # without the restart, step 1 would also see the later -1: 0.9 * (1 + 0.9**3 * -1) != 0.9
    r = np.array([0, 1, 0, 0, -1], np.float64)
    out = discount_rewards(r, 0.9)
    np.testing.assert_allclose(out, [0.9, 1.0, -0.81, -0.9, -1.0], rtol=1e-12)


def test_trailing_steps_after_last_point_get_zero():
    out = discount_rewards(np.array([1.0, 0.0, 0.0]), 0.99)
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0])


def test_gamma_one_and_zero():
    r = np.array([0, 0, 0, 1, 0, -1], np.float64)
    np.testing.assert_array_equal(discount_rewards(r, 1.0), [1, 1, 1, 1, -1, -1])
    np.testing.assert_array_equal(discount_rewards(r, 0.0), r)


def test_returns_are_float64_and_input_untouched():
    r = np.array([0, 0, 1], np.float32)
    copy = r.copy()
    out = discount_rewards(r, 0.99)
    assert out.dtype == np.float64 and out.shape == (3,)
    np.testing.assert_array_equal(r, copy)
    assert discount_rewards(np.zeros(0), 0.99).shape == (0,)


def test_normalize_gives_zero_mean_unit_std():
    x = np.random.default_rng(0).normal(3.0, 5.0, 1000)
    y = normalize(x)
    assert abs(y.mean()) < 1e-12
    assert abs(y.std() - 1.0) < 1e-6


def test_normalize_constant_input_is_finite_zero():
    y = normalize(np.full(7, 0.3))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, 0.0, atol=1e-6)


def test_float32_rewards_are_discounted_in_float64():
    """The episode buffer stores rewards as float32; the returns must still be computed in
    float64 (under NumPy 2 promotion, a float32 running sum would lose ~1e-7)."""
    r = np.zeros(50, np.float32)
    r[-1] = 1.0
    r[20] = -1.0
    np.testing.assert_allclose(
        discount_rewards(r, 0.99), discount_rewards(r.astype(np.float64), 0.99), rtol=1e-15, atol=0
    )
    assert abs(discount_rewards(r, 0.99)[0] + 0.99**20) < 1e-15
