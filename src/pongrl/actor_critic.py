"""PPO's actor-critic network, in NumPy, with a sparse first layer: its shapes,
forward and backward passes, and acting with it (the policy; pongrl.ppo learns).

Network: sparse inputs (D,) [-> F convolution filters] -> H ReLU units (shared)
-> a softmax policy head over (UP, DOWN) and a scalar value head. Parameters
live in a plain dict:

    W1 (H, D') Fortran order, so that W1.T (D', H) is C-contiguous
    b1 (H,)   Wpi (2, H)   bpi (2,)   Wv (H,)   bv (1,)
    Wc (128, F)             only with a convolution (`ppo_conv`, pongrl.conv)

where D' is D, or with a convolution D with its 12800 frame and difference
pixels replaced by the 361 F features. The input kind (pongrl.inputs) is read
off the shapes: a params dict is all acting needs. The backward pass (`backprop`) takes the
loss's gradients w.r.t. the logits and values; the W1 gradient is row-sparse:
(U, H) for the rows `Inputs.cols` of W1.T (the inputs present in the minibatch).
"""

from __future__ import annotations

import numpy as np

from . import conv
from .env import DOWN, UP
from .inputs import WIDTHS, Inputs, compact, encode, kind_of_width
from .parallel import SERIAL, Pool
from .sparse import SparseRows

ACTIONS = (UP, DOWN)  # ALE action ids of the policy head's outputs, in order

Params = dict[str, np.ndarray]


# ---------------------------------------------------------------- the network
def param_shapes(obs: str, hidden: int, filters: int) -> dict[str, tuple]:
    """Shapes of the network's parameters for an input kind, H hidden units and F filters."""
    width, a = WIDTHS[obs] + (conv.P * filters - conv.PIXELS if filters else 0), len(ACTIONS)
    shapes = {"W1": (hidden, width), "b1": (hidden,), "Wpi": (a, hidden), "bpi": (a,), "Wv": (hidden,), "bv": (1,)}
    return shapes | ({"Wc": (conv.TAPS, filters)} if filters else {})


def init_network(obs: str, hidden: int, filters: int, rng: np.random.Generator) -> Params:
    """The initial parameters of the network of `param_shapes(obs, hidden, filters)`, drawn from rng."""
    return init_params(param_shapes(obs, hidden, filters)["W1"][1], hidden, len(ACTIONS), rng, filters=filters)


def action_set(params: Params) -> np.ndarray:
    """ALE action ids of the policy head's outputs, in order."""
    return np.array(ACTIONS)


def init_params(
    inputs: int, hidden: int, n_actions: int, rng: np.random.Generator, dtype=np.float32, filters: int = 0
) -> Params:
    """W1 ~ N(0, 1/inputs) as the tutorial; a near-zero policy head (uniform
    initial policy, like CleanRL's 0.01 gain); value head ~ N(0, 1/H); zero biases;
    filters > 0 convolution filters Wc ~ N(0, 2/128), drawn last."""
    W1 = rng.standard_normal((hidden, inputs)) / np.sqrt(inputs)
    Wpi = 0.01 * rng.standard_normal((n_actions, hidden)) / np.sqrt(hidden)
    Wv = rng.standard_normal(hidden) / np.sqrt(hidden)
    p = {
        "W1": np.asfortranarray(W1),
        "b1": np.zeros(hidden),
        "Wpi": Wpi,
        "bpi": np.zeros(n_actions),
        "Wv": Wv,
        "bv": np.zeros(1),
    }
    if filters:
        p["Wc"] = rng.standard_normal((conv.TAPS, filters)) * np.sqrt(2 / conv.TAPS)
    return {k: (np.asfortranarray(v, dtype) if k == "W1" else v.astype(dtype)) for k, v in p.items()}


def forward(params: Params, x: Inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (B, D) -> logits (B, A), values (B,) and the hidden activations (B, H)."""
    return layers(params, first_inputs(params, x)[0])


def first_inputs(params: Params, x: Inputs, pool: Pool = SERIAL) -> tuple[Inputs, conv.Saved | None]:
    """What the first layer reads (B, D'): x itself; or, with filters Wc, their
    features of x's frame and difference pixels, then x's block columns."""
    if "Wc" not in params:
        return x, None
    split = int(np.searchsorted(x.cols, conv.PIXELS))  # x's columns before it are pixels
    feats, saved = conv.forward(params["Wc"], Inputs(x.cols[:split], x.X[:, :split]), pool)
    shift = conv.P * params["Wc"].shape[1] - conv.PIXELS  # block columns move past the features
    return Inputs(np.concatenate([feats.cols, x.cols[split:] + shift]), np.hstack([feats.X, x.X[:, split:]])), saved


def layers(params: Params, x: Inputs, pool: Pool = SERIAL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first layer's inputs (B, D') -> forward's logits, values and activations."""
    W = params["W1"].T[x.cols]  # (U, H): gathered in one thread (a gather holds the GIL)
    h = np.maximum(pool.matmul(x.X, lambda j0, j1: W[:, j0:j1], W.shape[1]) + params["b1"], 0)  # (B, H)
    logits = h @ params["Wpi"].T + params["bpi"]  # (B, A)
    values = h @ params["Wv"] + params["bv"][0]  # (B,)
    return logits, values, h


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(B, A) -> (B, A) log probabilities."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def unit_weights(params: Params) -> np.ndarray:
    """(H,) the norm of each hidden unit's column of the policy head Wpi: its sway on the policy."""
    return np.linalg.norm(params["Wpi"].astype(np.float64), axis=0)


# ---------------------------------------------------------------- acting
def input_kind(params: Params) -> str:
    """The input kind (pongrl.inputs) the network reads, from the width of W1."""
    width = params["W1"].shape[1]
    if "Wc" in params:
        width += conv.PIXELS - conv.P * params["Wc"].shape[1]
    return kind_of_width(width)


def encode_for(params: Params, x: np.ndarray, frames: np.ndarray) -> SparseRows:
    """The inputs (N, D) of the kind the network was trained on."""
    return encode(x, frames, input_kind(params))


def probabilities(params: Params, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Action probabilities (N, A) for difference frames x (N, 6400) and frames
    (N, 80, 80); column j is the ALE action `action_set(params)[j]`."""
    logits, _, _ = forward(params, compact(encode_for(params, x, frames), params["W1"].dtype))
    return np.exp(log_softmax(logits))


def greedy_actions(params: Params, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """ALE action ids (N,) of the most probable action in every game."""
    return action_set(params)[np.argmax(probabilities(params, x, frames), axis=1)]


def act(
    params: Params, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, SparseRows, dict]:
    """Sample an action in every game: ALE ids (N,), the encoded inputs (N, D) and
    {"logp": log pi(a|x) (N,), "values": V(x) (N,)}, which the learner stores."""
    xs = encode_for(params, x, frames)
    logits, values, _ = forward(params, compact(xs))
    logp = log_softmax(logits)
    a = sample(logp, rng.random(len(logp)))
    return action_set(params)[a], xs, {"logp": logp[np.arange(len(a)), a], "values": values}


def bootstrap(params: Params, x: np.ndarray, frames: np.ndarray) -> dict:
    """{"values": V(x) (N,)} of the inputs that follow a rollout (GAE's bootstrap)."""
    _, values, _ = forward(params, compact(encode_for(params, x, frames)))
    return {"values": values}


def sample(logp: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices (B,) drawn from log probabilities (B, A) by inverting the CDF at u (B,) in [0, 1)."""
    cdf = np.cumsum(np.exp(logp), axis=1)  # (B, A)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), logp.shape[1] - 1)


# ---------------------------------------------------------------- the backward pass
def backprop(
    params: Params,
    x: Inputs,
    h: np.ndarray,
    dlogits: np.ndarray,
    dv: np.ndarray,
    saved: conv.Saved | None = None,
    pool: Pool = SERIAL,
) -> Params:
    """Gradients of the loss from its gradients w.r.t. logits (B, A) and values (B,);
    x and h (B, H) are the first layer's inputs and the activations (first_inputs,
    layers), saved the convolution's (if any). grads["W1"] is (U, H): the
    gradient of the rows x.cols of W1.T (all others are 0)."""
    grads = {"Wpi": dlogits.T @ h, "bpi": dlogits.sum(axis=0), "Wv": h.T @ dv, "bv": np.array([dv.sum()], h.dtype)}
    dh = dlogits @ params["Wpi"] + dv[:, None] * params["Wv"]  # (B, H)
    dh[h <= 0] = 0  # ReLU
    grads["b1"] = dh.sum(axis=0)
    grads["W1"] = pool.matmul(x.X.T, lambda j0, j1: dh[:, j0:j1], dh.shape[1])  # (U, H)
    if saved is not None:  # through the features (B, W F)
        W = params["W1"].T[saved.cols]  # (W F, H)
        grads["Wc"] = conv.backward(pool.matmul(dh, lambda j0, j1: W[j0:j1].T, len(W)), saved)
    return grads
