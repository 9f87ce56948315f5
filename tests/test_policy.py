"""policy.py: initialisation, forward pass, and the backward pass checked against finite differences."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import random_actions, random_diff_frames

from pongrl import policy
from pongrl.env import DOWN, UP
from pongrl.preprocess import D


def log_pi(params, x, actions) -> np.ndarray:
    """log pi(a|x) computed independently of policy.py (float64, stable)."""
    pre = x.astype(np.float64) @ params["W1"].T.astype(np.float64)
    logit = np.maximum(pre, 0) @ params["W2"].astype(np.float64)
    return np.where(actions == UP, -np.logaddexp(0.0, -logit), -np.logaddexp(0.0, logit))


def objective(params, x, actions, adv) -> float:
    """J = sum_b adv_b * log pi(a_b | x_b), the quantity REINFORCE ascends."""
    return float(adv @ log_pi(params, x, actions))


def kink_free_problem(hidden=7, batch=6, margin=1e-3):
    """Small float64 problem whose ReLU pre-activations all stay `margin` away from 0,
    with some hidden units active and some not."""
    for seed in range(100):
        rng = np.random.default_rng(seed)
        params = policy.init_params(hidden, rng, dtype=np.float64)
        x = random_diff_frames(rng, batch, density=0.01)
        pre = x @ params["W1"].T
        if np.abs(pre).min() > margin and (pre > 0).any() and (pre < 0).any():
            actions = random_actions(rng, batch)
            adv = rng.standard_normal(batch)
            return params, x, actions, adv, rng
    raise AssertionError("no kink-free problem found")


def central_difference(f, arr, idx, eps=1e-5) -> float:
    old = arr[idx]
    arr[idx] = old + eps
    up = f()
    arr[idx] = old - eps
    down = f()
    arr[idx] = old
    return (up - down) / (2 * eps)


def rel_err(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a) + abs(b), 1e-12)


def analytic_grad(params, x, actions, adv):
    p, h = policy.forward(params, x)
    return policy.backward(params, x, h, adv * policy.dlogit_of(actions, p))


def test_init_params_shapes_layout_and_scale():
    params = policy.init_params(50, np.random.default_rng(0))
    W1, W2 = params["W1"], params["W2"]
    assert W1.shape == (50, D) and W2.shape == (50,)
    assert W1.dtype == np.float32 and W2.dtype == np.float32
    assert W1.T.flags.c_contiguous  # the sparse code gathers rows of W1.T
    assert abs(W1.std() * np.sqrt(D) - 1) < 0.02
    assert abs(W2.std() * np.sqrt(50) - 1) < 0.4
    again = policy.init_params(50, np.random.default_rng(0))
    assert np.array_equal(W1, again["W1"]) and np.array_equal(W2, again["W2"])
    assert policy.init_params(3, np.random.default_rng(0), dtype=np.float64)["W1"].dtype == np.float64


def test_sigmoid_is_stable_and_keeps_dtype():
    z = np.array([-1000.0, -30.0, -1.0, 0.0, 2.5, 30.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = policy.sigmoid(z)
        s32 = policy.sigmoid(z.astype(np.float32))
    np.testing.assert_allclose(s, np.exp(-np.logaddexp(0.0, -z)), rtol=1e-12, atol=0)
    assert s32.dtype == np.float32
    assert s[0] >= 0 and s[-1] == 1.0 and s[3] == 0.5


def test_forward_gives_probabilities_and_relu_hidden():
    rng = np.random.default_rng(1)
    params = policy.init_params(9, rng)
    x = random_diff_frames(rng, 5)
    p, h = policy.forward(params, x)
    assert p.shape == (5,) and h.shape == (5, 9)
    assert np.all((p > 0) & (p < 1)) and np.all(h >= 0)
    np.testing.assert_allclose(np.log(p), log_pi(params, x, np.full(5, UP)), rtol=1e-5)
    np.testing.assert_allclose(np.log1p(-p), log_pi(params, x, np.full(5, DOWN)), rtol=1e-5)


def test_dlogit_of_is_derivative_of_log_pi():
    logit = np.array([-3.0, -0.2, 0.0, 0.7, 4.0])
    for a in (UP, DOWN):
        actions = np.full(5, a)
        lp = lambda z, actions=actions: np.where(actions == UP, -np.logaddexp(0, -z), -np.logaddexp(0, z))  # noqa: E731
        fd = (lp(logit + 1e-6) - lp(logit - 1e-6)) / 2e-6
        np.testing.assert_allclose(policy.dlogit_of(actions, policy.sigmoid(logit)), fd, rtol=1e-7, atol=1e-9)


def test_gradient_matches_finite_differences_W2():
    params, x, actions, adv, _ = kink_free_problem()
    grads = analytic_grad(params, x, actions, adv)
    f = lambda: objective(params, x, actions, adv)  # noqa: E731
    for j in range(params["W2"].shape[0]):
        fd = central_difference(f, params["W2"], j)
        assert rel_err(grads["W2"][j], fd) < 1e-6, (j, grads["W2"][j], fd)


def test_gradient_matches_finite_differences_W1():
    params, x, actions, adv, rng = kink_free_problem()
    grads = analytic_grad(params, x, actions, adv)
    f = lambda: objective(params, x, actions, adv)  # noqa: E731
    p, h = policy.forward(params, x)
    active_units = np.flatnonzero((h > 0).any(axis=0))
    used_cols = np.flatnonzero(x.any(axis=0))
    unused_cols = np.flatnonzero(~x.any(axis=0))
    # entries that matter: an active unit and a pixel some input lights up
    checked = 0
    for _ in range(40):
        i, c = int(rng.choice(active_units)), int(rng.choice(used_cols))
        fd = central_difference(f, params["W1"], (i, c))
        if abs(fd) < 1e-7:  # this pixel's contributions cancel (or only hit inactive rows)
            assert abs(grads["W1"][i, c]) < 1e-9
            continue
        assert rel_err(grads["W1"][i, c], fd) < 1e-6, ((i, c), grads["W1"][i, c], fd)
        checked += 1
    assert checked >= 20
    # entries that do not matter: any unit, a pixel no input lights up -> exactly 0
    for _ in range(10):
        i, c = int(rng.integers(params["W1"].shape[0])), int(rng.choice(unused_cols))
        assert central_difference(f, params["W1"], (i, c)) == 0.0
        assert grads["W1"][i, c] == 0.0
    # units inactive for every input get no gradient at all
    inactive = np.flatnonzero(~(h > 0).any(axis=0))
    assert np.all(grads["W1"][inactive] == 0)


def test_backward_is_gradient_of_linear_surrogate():
    """backward(dlogit) is the gradient of L = sum_b dlogit_b * logit_b (fixed dlogit)."""
    params, x, _, _, rng = kink_free_problem()
    dlogit = rng.standard_normal(x.shape[0])
    _, h = policy.forward(params, x)
    grads = policy.backward(params, x, h, dlogit)

    def L():
        return float(dlogit @ (np.maximum(x @ params["W1"].T, 0) @ params["W2"]))

    for j in range(params["W2"].shape[0]):
        assert rel_err(grads["W2"][j], central_difference(L, params["W2"], j)) < 1e-6
    cols = np.flatnonzero(x.any(axis=0))[:15]
    units = np.flatnonzero((h > 0).any(axis=0))
    for c in cols:
        for i in units[:2]:
            fd = central_difference(L, params["W1"], (i, c))
            if abs(fd) > 1e-7:
                assert rel_err(grads["W1"][i, c], fd) < 1e-6


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_actions_from_probs_samples_up_below_p(p):
    u = np.linspace(0, 1, 11, endpoint=False)
    a = policy.actions_from_probs(np.full(11, p), u)
    assert set(a.tolist()) <= {UP, DOWN}
    np.testing.assert_array_equal(a == UP, u < p)
