"""sparse.py and the sparse fast path: it must equal the dense reference.

Tolerances (the issue's): 1e-5 in float32 and 1e-10 in float64, as max |fast - ref| / max(1, max |ref|).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_actions, random_diff_frames

from pongrl import policy, reinforce, sparse
from pongrl.env import UP
from pongrl.inputs import compact
from pongrl.optim import rmsprop_step
from pongrl.preprocess import D
from pongrl.reinforce import Episodes, policy_gradient
from pongrl.sparse import SparseRows

TOL = {np.float32: 1e-5, np.float64: 1e-10}


def assert_close(fast, ref, tol):
    fast, ref = np.asarray(fast, np.float64), np.asarray(ref, np.float64)
    assert fast.shape == ref.shape
    err = np.abs(fast - ref).max(initial=0.0) / max(1.0, np.abs(ref).max(initial=0.0))
    assert err <= tol, f"error {err:.3g} > {tol:g}"


@pytest.fixture
def batch():
    """(9, 6400) difference frames with empty rows at the start, middle and end."""
    return random_diff_frames(np.random.default_rng(0), 9, density=0.005, empty_rows=(0, 4, 8))


# ------------------------------------------------------------------ SparseRows
def test_from_dense_to_dense_round_trip(batch):
    s = SparseRows.from_dense(batch)
    assert s.rows == 9
    assert s.indptr.dtype == np.int64 and s.cols.dtype == np.int16 and s.vals.dtype == np.int8
    assert s.indptr.shape == (10,) and s.indptr[0] == 0 and s.indptr[-1] == np.count_nonzero(batch)
    assert set(np.unique(s.vals)) == {-1, 1}
    assert np.diff(s.indptr)[[0, 4, 8]].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(s.to_dense(D), batch)
    assert s.to_dense(D, np.int8).dtype == np.int8
    np.testing.assert_array_equal(s.row_ids(), np.nonzero(batch)[0])


def test_all_zero_batch():
    x = np.zeros((4, D), np.int8)
    s = SparseRows.from_dense(x)
    assert s.rows == 4 and len(s.cols) == 0 and s.indptr.tolist() == [0, 0, 0, 0, 0]
    np.testing.assert_array_equal(s.to_dense(D), x)
    c = compact(s)
    assert c.X.shape == (4, 0) and len(c.cols) == 0  # no pixel occurs: products with it are zeros
    np.testing.assert_array_equal(s.take(np.array([3, 1])).to_dense(D), np.zeros((2, D)))


def test_take_rows_in_any_order_with_repeats(batch):
    s = SparseRows.from_dense(batch)
    rows = np.array([5, 0, 5, 8, 2, 7, 4])
    np.testing.assert_array_equal(s.take(rows).to_dense(D), batch[rows])
    assert s.take(np.array([], np.int64)).rows == 0


def test_slice_and_slice_of_slice(batch):
    s = SparseRows.from_dense(batch)
    for a, b in [(0, 9), (2, 6), (4, 5), (3, 3), (8, 9)]:
        np.testing.assert_array_equal(s.slice(a, b).to_dense(D), batch[a:b])
    np.testing.assert_array_equal(s.slice(1, 8).slice(2, 5).to_dense(D), batch[3:6])
    np.testing.assert_array_equal(s.slice(1, 8).take(np.array([4, 0])).to_dense(D), batch[[5, 1]])


def test_concat_of_parts_and_slices(batch):
    s = SparseRows.from_dense(batch)
    parts = [s.slice(0, 3), SparseRows.from_dense(batch[3:4]), s.slice(4, 4), s.slice(4, 9)]
    np.testing.assert_array_equal(SparseRows.concat(parts).to_dense(D), batch)
    both = SparseRows.concat([s.slice(5, 9), s.slice(0, 5)])
    np.testing.assert_array_equal(both.to_dense(D), np.concatenate([batch[5:], batch[:5]]))
    empty = SparseRows.concat([])
    assert empty.rows == 0 and empty.to_dense(D).shape == (0, D)
    [one] = [SparseRows.concat([s.slice(2, 6)])]
    np.testing.assert_array_equal(one.to_dense(D), batch[2:6])
    assert one.indptr.dtype == np.int64 and one.indptr[0] == 0


# ------------------------------------------------------------------ policy: sparse vs dense
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_sparse_equals_dense(dtype, batch):
    params = policy.init_params(16, np.random.default_rng(2), dtype=dtype)
    p_ref, h_ref = policy.forward({k: v.astype(np.float64) for k, v in params.items()}, batch)
    p, h = policy.forward_sparse(params, compact(SparseRows.from_dense(batch), dtype))
    assert p.dtype == dtype and h.dtype == dtype
    assert_close(p, p_ref, TOL[dtype])
    assert_close(h, h_ref, TOL[dtype])
    # empty rows: h = 0, P(UP) = 1/2
    assert np.all(h[[0, 4, 8]] == 0) and np.all(p[[0, 4, 8]] == 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_sparse_equals_dense(dtype, batch):
    rng = np.random.default_rng(3)
    params = policy.init_params(16, rng, dtype=dtype)
    dlogit = rng.standard_normal(9).astype(dtype)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    _, h_ref = policy.forward(p64, batch)
    ref = policy.backward(p64, batch, h_ref, dlogit.astype(np.float64))
    x = compact(SparseRows.from_dense(batch), dtype)
    _, h = policy.forward_sparse(params, x)
    grads = policy.zeros_like(params)
    policy.backward_sparse(params, x, h, dlogit, grads)
    for k in ("W1", "W2"):
        assert grads[k].dtype == dtype
        assert_close(grads[k], ref[k], TOL[dtype])
    # it adds: a second call doubles the gradient
    policy.backward_sparse(params, x, h, dlogit, grads)
    for k in ("W1", "W2"):
        assert_close(grads[k], 2 * ref[k], TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_active_columns_path_equals_dense(dtype, batch):
    """The acting path: x restricted to its nonzero columns."""
    params = policy.init_params(16, np.random.default_rng(5), dtype=dtype)
    active, sub = sparse.active_columns(batch)
    np.testing.assert_array_equal(active, np.flatnonzero(batch.any(axis=0)))
    np.testing.assert_array_equal(sub, batch[:, active])
    s = SparseRows.from_active(sub, active)
    ref = SparseRows.from_dense(batch)
    for a, b in ((s.indptr, ref.indptr), (s.cols, ref.cols), (s.vals, ref.vals)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    p_ref, h_ref = policy.forward({k: v.astype(np.float64) for k, v in params.items()}, batch)
    p, h = policy.forward_active(params, sub, active)
    assert p.dtype == dtype
    assert_close(p, p_ref, TOL[dtype])
    assert_close(h, h_ref, TOL[dtype])


def test_active_columns_of_all_zero_batch():
    x = np.zeros((3, D), np.int8)
    active, sub = sparse.active_columns(x)
    assert active.size == 0 and sub.shape == (3, 0)
    assert SparseRows.from_active(sub, active).indptr.tolist() == [0, 0, 0, 0]
    p, h = policy.forward_active(policy.init_params(4, np.random.default_rng(0)), sub, active)
    assert np.all(h == 0) and np.all(p == 0.5)


# ------------------------------------------------------------------ a whole REINFORCE update
def synthetic_episodes(rng, lengths=(40, 23, 61)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense inputs, actions and rewards of a few fake episodes (first step of each is zeros,
    a point every ~10 steps, the last step is a point)."""
    xs, acts, rews = [], [], []
    for n in lengths:
        x = random_diff_frames(rng, n, density=0.004, empty_rows=(0,))
        r = np.where(rng.random(n) < 0.1, rng.choice([-1.0, 1.0], n), 0.0)
        r[-1] = rng.choice([-1.0, 1.0])
        xs.append(x), acts.append(random_actions(rng, n)), rews.append(r.astype(np.float32))
    return np.concatenate(xs), np.concatenate(acts), np.concatenate(rews)


def dense_reference_update(params, cache, x, actions, rewards, lengths, gamma, lr, decay, eps):
    """The tutorial's update, dense and in float64: per-episode discounted, normalised
    returns; dlogit = A (y - p); dense backward summed over the batch; one RMSProp step."""
    params = {k: v.astype(np.float64) for k, v in params.items()}
    cache = {k: v.astype(np.float64) for k, v in cache.items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    start = 0
    for n in lengths:
        xe = x[start : start + n].astype(np.float64)
        r = rewards[start : start + n].astype(np.float64)
        ret = np.zeros(n)
        running = 0.0
        for t in reversed(range(n)):
            if r[t] != 0:
                running = 0.0
            running = running * gamma + r[t]
            ret[t] = running
        adv = (ret - ret.mean()) / (ret.std() + 1e-8)
        h = np.maximum(xe @ params["W1"].T, 0)
        p = 1 / (1 + np.exp(-(h @ params["W2"])))
        y = (actions[start : start + n] == UP).astype(np.float64)
        dlogit = adv * (y - p)
        grads["W2"] += h.T @ dlogit
        dh = np.outer(dlogit, params["W2"])
        dh[h <= 0] = 0
        grads["W1"] += dh.T @ xe
        start += n
    for k in params:
        cache[k] = decay * cache[k] + (1 - decay) * grads[k] ** 2
        params[k] += lr * grads[k] / (np.sqrt(cache[k]) + eps)
    return grads, params, cache


@pytest.mark.parametrize("chunk", [reinforce.CHUNK, 17])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reinforce_update_equals_dense_reference(dtype, chunk, monkeypatch):
    monkeypatch.setattr(reinforce, "CHUNK", chunk)  # 17: chunks cut across episodes
    rng = np.random.default_rng(4)
    lengths = np.array([40, 23, 61])
    x, actions, rewards = synthetic_episodes(rng, lengths)
    params = policy.init_params(16, rng, dtype=dtype)
    cache = {k: (0.01 * rng.random(v.shape)).astype(dtype) for k, v in params.items()}
    gamma, lr, decay, eps = 0.99, 1e-3, 0.99, 1e-5
    ref_grads, ref_params, ref_cache = dense_reference_update(
        params, cache, x, actions, rewards, lengths, gamma, lr, decay, eps
    )

    eps_ = Episodes(SparseRows.from_dense(x), actions.astype(np.uint8), rewards, lengths)
    grads, stats = policy_gradient(params, eps_, gamma)
    for k in ("W1", "W2"):
        assert grads[k].dtype == dtype
        assert_close(grads[k], ref_grads[k], TOL[dtype])
    rmsprop_step(params, grads, cache, lr, decay, eps)
    for k in ("W1", "W2"):
        assert params[k].dtype == dtype
        assert_close(cache[k], ref_cache[k], TOL[dtype])
        assert_close(params[k], ref_params[k], TOL[dtype])
    assert np.isfinite(stats["losses/policy_loss"]) and 0 < stats["losses/entropy"] <= np.log(2) + 1e-6
