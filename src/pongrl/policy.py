"""The tutorial's policy network: 6400 -> H ReLU -> 1 sigmoid = P(UP).

Parameters live in a plain dict {"W1": (H, 6400), "W2": (H,)}. W1 is kept in
Fortran order so that W1.T, the (6400, H) matrix the sparse code gathers rows
from (and adds gradient rows to), is C-contiguous. Every function is pure: it
takes what it needs as arguments and returns what it computes.
"""

from __future__ import annotations

import numpy as np

from . import sparse
from .env import DOWN, UP
from .inputs import Inputs
from .preprocess import D
from .sparse import SparseRows

Params = dict[str, np.ndarray]


def init_params(hidden: int, rng: np.random.Generator, dtype=np.float32, inputs: int = D) -> Params:
    """Standard normal / sqrt(fan_in), as in the tutorial ("Xavier" initialisation)."""
    W1 = rng.standard_normal((hidden, inputs)) / np.sqrt(inputs)
    W2 = rng.standard_normal(hidden) / np.sqrt(hidden)
    return {"W1": np.asfortranarray(W1, dtype=dtype), "W2": W2.astype(dtype)}


def sigmoid(z: np.ndarray) -> np.ndarray:
    # split by sign so that exp never overflows
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


# ---------------------------------------------------------------- dense reference
def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense x (B, 6400) -> P(UP) (B,) and hidden activations (B, H)."""
    h = np.maximum(x @ params["W1"].T, 0)  # (B, H)
    return sigmoid(h @ params["W2"]), h


def backward(params: Params, x: np.ndarray, h: np.ndarray, dlogit: np.ndarray) -> Params:
    """Gradient of sum_b dlogit[b] * logit[b] w.r.t. the parameters.

    With dlogit = advantage * (y - p) this is the gradient of
    sum advantage * log pi(a | x), the quantity REINFORCE ascends.
    x (B, 6400), h (B, H), dlogit (B,).
    """
    dW2 = h.T @ dlogit  # (H,)
    dh = np.outer(dlogit, params["W2"])  # (B, H)
    dh[h <= 0] = 0  # ReLU
    return {"W1": dh.T @ x, "W2": dW2}  # (H, 6400), (H,)


# ---------------------------------------------------------------- sparse fast path
def forward_sparse(params: Params, x: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """Same as `forward` for sparse inputs, given compacted (inputs.compact): one
    dense product over the occurring pixels only, ~4x faster than a gather-and-reduce."""
    h = np.maximum(x.X @ params["W1"].T[x.cols], 0)  # (B, U) @ (U, H) -> (B, H)
    return sigmoid(h @ params["W2"]), h


def forward_active(params: Params, sub: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same as `forward` given x's active columns (see sparse.active_columns)."""
    h = np.maximum(sparse.matmul_active(sub, active, params["W1"].T), 0)  # (B, H)
    return sigmoid(h @ params["W2"]), h


def backward_sparse(params: Params, x: Inputs, h: np.ndarray, dlogit: np.ndarray, grads: Params) -> None:
    """Same as `backward` for compacted sparse inputs, but adds into `grads`
    (W1: the occurring pixels' rows only)."""
    grads["W2"] += h.T @ dlogit
    dh = np.outer(dlogit, params["W2"])
    dh[h <= 0] = 0
    grads["W1"].T[x.cols] += x.X.T @ dh  # (U, B) @ (B, H)


# ---------------------------------------------------------------- acting
def p_up(params: Params, x: np.ndarray) -> tuple[np.ndarray, SparseRows]:
    """P(UP) (B,) for dense int8 inputs x (B, 6400), from their active pixels only,
    and x as CSR (to store)."""
    active, sub = sparse.active_columns(x)  # (k,), (B, k)
    p, _ = forward_active(params, sub, active)
    return p, SparseRows.from_active(sub, active)


def actions_from_probs(p_up: np.ndarray, u: np.ndarray) -> np.ndarray:
    """UP where u < P(UP), else DOWN: the tutorial's sampling rule."""
    return np.where(u < p_up, UP, DOWN)


def dlogit_of(actions: np.ndarray, p_up: np.ndarray) -> np.ndarray:
    """d log pi(a|x) / d logit = y - p, with y = 1 for UP ("fake label")."""
    return (actions == UP).astype(p_up.dtype) - p_up


def zeros_like(params: Params) -> Params:
    return {k: np.zeros_like(v) for k, v in params.items()}
