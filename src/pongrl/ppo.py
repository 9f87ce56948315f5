"""PPO with a clipped surrogate objective (Schulman et al. 2017), actor-critic,
in NumPy, with a sparse first layer.

Network: sparse inputs (D,) -> H ReLU units (shared) [-> H2 ReLU units] -> a
softmax policy head over the action set and a scalar value head. Parameters
live in a plain dict:

    W1 (H, D) Fortran order, so that W1.T (D, H) is C-contiguous
    b1 (H,)   Wpi (A, T)   bpi (A,)   Wv (T,)   bv (1,)
    W2 (H2, H)   b2 (H2,)   only with a second layer (`ppo_hidden2`)

where T, the width the heads sit on, is H2 with a second layer, else H.

Inputs ("obs"): "diff" is the tutorial's difference frame (6400 inputs);
"frame+diff" puts the current binary frame in front of it (12800 inputs);
"frame+diff+coarse" appends the same two at 20x20 resolution (a cell is 1 if
its 4x4 pixel block holds anything; the coarse difference is the change of
those cells): 13600 inputs. A weight on a block is shared by its 16 pixels,
so what a unit learns about a ball at one pixel carries over to its
neighbours (learned faster and further than frame+diff: bench/TIME_TO_WIN.md).
"frame+diff+pyramid" adds a second level, 8x8 blocks (10x10 cells): 13800.
Action sets ("actions"): "updown" = (UP, DOWN), "noop+updown" = (NOOP, UP, DOWN).
Both are read off the parameter shapes, so a params dict is all that
`probabilities` / `greedy_actions` (used to play a checkpoint) need.

Loss of a minibatch of B samples (minimised):

    L = pg_loss + vf_coef * value_loss - ent_coef * entropy
    pg_loss    = mean(max(-A r, -A clip(r, 1-c, 1+c))),  r = pi(a|x) / pi_old(a|x)
    value_loss = 0.5 mean(max((v - R)^2, (v_old + clip(v - v_old, -c, c) - R)^2))
    entropy    = mean(-sum_a pi log pi)

Its gradient is written by hand (`loss_and_grads`) and checked in float64
against finite differences by the tests. The W1 gradient is row-sparse: only
the input pixels present in the minibatch get one, returned as (U, H) for the
rows `Inputs.cols` of W1.T, and never made dense. Adam either updates all of
W1 (the default: standard Adam, the moments of the other rows decay and keep
moving them) or, with `ppo_lazy_adam`, just those rows ("lazy" Adam: faster
updates, but it learned slower per env step in our runs; bench/TIME_TO_WIN.md).

To play a params dict (e.g. a checkpoint's "params/..." arrays):
`probabilities`, `greedy_actions`, `sample_actions`; the input kind and action
set are read off the array shapes (`obs_of`, `action_set`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .config import Config
from .env import DOWN, UP
from .gae import gae
from .preprocess import D, H
from .sparse import SparseRows, indptr_of

NOOP = 0
ACTION_SETS = {"updown": (UP, DOWN), "noop+updown": (NOOP, UP, DOWN)}
POOLS = {"diff": (), "frame+diff": (), "frame+diff+coarse": (4,), "frame+diff+pyramid": (4, 8)}
"""Sides of the pixel blocks each input kind max-pools, finest first (after its 80x80 panels)."""
OBS_INPUTS = {obs: (1 if obs == "diff" else 2) * D + sum(2 * D // p**2 for p in pools)
              for obs, pools in POOLS.items()}  # 6400, 12800, 13600, 13800
OBS_OF_INPUTS = {n: obs for obs, n in OBS_INPUTS.items()}  # W1's width -> input kind
ADAM_BETAS = (0.9, 0.999)

Params = dict[str, np.ndarray]


# ---------------------------------------------------------------- inputs and network
def sparse_rows(d: np.ndarray) -> SparseRows:
    """(N, K) int8 -> SparseRows, like SparseRows.from_dense but ~5x faster on
    frames with 0.4% nonzeros: it scans 8 pixels at a time as one uint64 word."""
    d = np.ascontiguousarray(d, np.int8)
    if d.size % 8:
        return SparseRows.from_dense(d)
    words = np.flatnonzero(d.reshape(-1).view(np.uint64))  # words holding a nonzero pixel
    sub = np.flatnonzero(d.reshape(-1, 8)[words])  # (nnz,) position among those words' pixels
    idx = words[sub // 8] * 8 + sub % 8  # (nnz,) flat index, ascending
    rows = idx // d.shape[1]
    return SparseRows(indptr_of(rows, len(d)), (idx - rows * d.shape[1]).astype(np.int16), d.reshape(-1)[idx])


def encode(x: np.ndarray, frames: np.ndarray, obs: str) -> SparseRows:
    """Difference frames x (N, 6400) int8 and binary frames (N, 80, 80) -> sparse inputs."""
    if obs not in OBS_INPUTS:
        raise ValueError(f"unknown obs {obs!r}; choose one of {', '.join(OBS_INPUTS)}")
    if obs == "diff":
        return sparse_rows(x)
    f = np.ascontiguousarray(frames).reshape(len(frames), D).view(np.int8)  # (N, 6400) in {0, 1}
    parts = [f, x]  # frame+diff: (N, 12800)
    if POOLS[obs]:
        cur, prev, side = f, f - x, H  # f - x is the previous frame
        for pool in POOLS[obs]:  # each level pools the one before: a max of maxes
            k = pool * side // H  # block side in cells of the previous level
            cur, prev, side = block_max(cur, side, k), block_max(prev, side, k), side // k  # (N, side**2) each
            parts += [cur, cur - prev]  # e.g. frame+diff+coarse: (N, 13600)
    return sparse_rows(np.concatenate(parts, axis=1))


def block_max(f: np.ndarray, side: int, k: int) -> np.ndarray:
    """Binary side x side images (N, side**2) -> (N, (side/k)**2): 1 where a k x k block holds any."""
    n, out = len(f), side // k
    m = max_last(f.reshape(n, side, out, k))  # (n, side, out): each pixel row pooled in runs of k
    return max_last(m.reshape(n, out, k, out).swapaxes(2, 3)).reshape(n, out * out)  # then k rows at a time


def max_last(a: np.ndarray) -> np.ndarray:
    """(..., k) -> (...) maximum over the last axis, as k - 1 elementwise maxima:
    ~10x faster than a single .max() over strided axes for small k."""
    m = a[..., 0].copy()
    for i in range(1, a.shape[-1]):
        np.maximum(m, a[..., i], out=m)
    return m


def obs_of(params: Params) -> str:
    """The input kind a params dict was trained on (from the width of W1)."""
    return OBS_OF_INPUTS[params["W1"].shape[1]]


def action_set(params: Params) -> np.ndarray:
    """ALE action ids of the policy head's outputs, in order (from the height of Wpi)."""
    return np.array({len(v): v for v in ACTION_SETS.values()}[params["Wpi"].shape[0]])


def init_params(inputs: int, hidden: int, n_actions: int, rng: np.random.Generator, dtype=np.float32,
                hidden2: int = 0) -> Params:
    """W1 ~ N(0, 1/inputs) as the tutorial; a near-zero policy head (uniform
    initial policy, like CleanRL's 0.01 gain); value head ~ N(0, 1/T); zero biases.
    hidden2 > 0 adds a second layer W2 ~ N(0, 2/H) (He's scale for ReLU inputs)."""
    top = hidden2 or hidden  # T
    W1 = rng.standard_normal((hidden, inputs)) / np.sqrt(inputs)
    Wpi = 0.01 * rng.standard_normal((n_actions, top)) / np.sqrt(top)
    Wv = rng.standard_normal(top) / np.sqrt(top)
    p = {"W1": np.asfortranarray(W1), "b1": np.zeros(hidden), "Wpi": Wpi, "bpi": np.zeros(n_actions),
         "Wv": Wv, "bv": np.zeros(1)}
    if hidden2:
        p |= {"W2": rng.standard_normal((hidden2, hidden)) * np.sqrt(2 / hidden), "b2": np.zeros(hidden2)}
    return {k: (np.asfortranarray(v, dtype) if k == "W1" else v.astype(dtype)) for k, v in p.items()}


@dataclass
class Inputs:
    """Sparse inputs (B, D) restricted to the U columns (pixels) that occur in them.

    With U ~ 1.3k of D = 12800 for a minibatch of 512, X @ W1.T[cols] and
    X.T @ dh are small dense matrix products that BLAS runs faster than the
    O(nnz * H) gather-and-reduce of sparse.matmul / matmul_t (measured: 13 ms
    vs 50 ms for each direction; for the 16 rows of one step 0.11 ms vs 0.32),
    and X.T @ dh is directly the row-sparse W1 gradient that lazy Adam wants.
    """

    cols: np.ndarray  # (U,) int64 sorted pixel indices
    X: np.ndarray  # (B, U) values in {-1, 0, 1}


def compact(x: SparseRows, dtype=np.float32) -> Inputs:
    """SparseRows (B, D) -> Inputs (the occurring columns and a dense (B, U) block)."""
    seen = np.zeros(int(x.cols.max()) + 1 if len(x.cols) else 0, bool)
    seen[x.cols] = True  # np.unique's sorted columns, without its sort (~2x faster)
    cols = np.flatnonzero(seen)  # (U,)
    X = np.zeros((x.rows, len(cols)), dtype)
    X[x.row_ids(), (np.cumsum(seen) - 1)[x.cols]] = x.vals  # position of each entry's column among cols
    return Inputs(cols, X)


def forward(params: Params, x: Inputs) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Inputs (B, D) -> logits (B, A), values (B,) and the hidden layers'
    activations: [(B, H)], or [(B, H), (B, H2)] with a second layer."""
    hs = [np.maximum(x.X @ params["W1"].T[x.cols] + params["b1"], 0)]  # (B, H)
    if "W2" in params:
        hs.append(np.maximum(hs[0] @ params["W2"].T + params["b2"], 0))  # (B, H2)
    logits = hs[-1] @ params["Wpi"].T + params["bpi"]  # (B, A)
    values = hs[-1] @ params["Wv"] + params["bv"][0]  # (B,)
    return logits, values, hs


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(B, A) -> (B, A) log probabilities."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def probabilities(params: Params, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Action probabilities (N, A) for difference frames x (N, 6400) and frames
    (N, 80, 80); column j is the ALE action `action_set(params)[j]`."""
    logits, _, _ = forward(params, compact(encode(x, frames, obs_of(params)), params["W1"].dtype))
    return np.exp(log_softmax(logits))


def greedy_actions(params: Params, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """ALE action ids (N,) of the most probable action in every game."""
    return action_set(params)[np.argmax(probabilities(params, x, frames), axis=1)]


def sample_actions(params: Params, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ALE action ids (N,) sampled from the policy, as in training."""
    logits, _, _ = forward(params, compact(encode(x, frames, obs_of(params)), params["W1"].dtype))
    return action_set(params)[sample(log_softmax(logits), rng.random(len(logits)))]


def sample_step(params: Params, x: np.ndarray, frames: np.ndarray, obs: str,
                rng: np.random.Generator) -> tuple[SparseRows, np.ndarray, np.ndarray, np.ndarray]:
    """How the learner acts (here, or in a Ray worker: pongrl.distributed): the encoded
    inputs (N, D), sampled action indices (N,), their log-probabilities (N,) and the
    values (N,), for difference frames x (N, 6400) and frames (N, 80, 80)."""
    xs = encode(x, frames, obs)
    logits, values, _ = forward(params, compact(xs))
    logp = log_softmax(logits)
    a = sample(logp, rng.random(len(logp)))
    return xs, a, logp[np.arange(len(a)), a], values


def sample(logp: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices (B,) drawn from log probabilities (B, A) by inverting the CDF at u (B,) in [0, 1)."""
    cdf = np.cumsum(np.exp(logp), axis=1)  # (B, A)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), logp.shape[1] - 1)


# ---------------------------------------------------------------- loss terms and their gradients
def policy_term(logp: np.ndarray, actions: np.ndarray, old_logp: np.ndarray, adv: np.ndarray,
                clip: float) -> tuple[float, np.ndarray, dict]:
    """Clipped surrogate loss, its gradient w.r.t. the logits (B, A) and diagnostics.
    logp (B, A) log probabilities, actions (B,) indices, old_logp (B,), adv (B,)."""
    B = len(actions)
    rows = np.arange(B)
    logratio = logp[rows, actions] - old_logp  # (B,)
    ratio = np.exp(logratio)
    pg1, pg2 = -adv * ratio, -adv * np.clip(ratio, 1 - clip, 1 + clip)
    # the clipped term has zero gradient; where it is the max, so is the loss's
    dlogpa = np.where(pg1 >= pg2, -adv * ratio, 0.0) / B  # (B,) dL / d log pi(a|x)
    dlogits = -np.exp(logp) * dlogpa[:, None]  # d log pi(a) / d z_j = [j = a] - pi_j
    dlogits[rows, actions] += dlogpa
    stats = {"losses/approx_kl": float(np.mean((ratio - 1) - logratio)),
             "losses/clipfrac": float(np.mean(np.abs(ratio - 1) > clip))}
    return float(np.maximum(pg1, pg2).mean()), dlogits, stats


def entropy_term(logp: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean entropy of the policies (B, A) and its gradient w.r.t. the logits:
    dH/dz_j = -pi_j (log pi_j + H)."""
    p = np.exp(logp)
    ent = -(p * logp).sum(axis=1)  # (B,)
    return float(ent.mean()), -p * (logp + ent[:, None]) / len(logp)


def value_term(v: np.ndarray, old_v: np.ndarray, returns: np.ndarray, clip: float | None) -> tuple[float, np.ndarray]:
    """0.5 * mean squared error (clipped around old_v unless clip is None) and its gradient (B,)."""
    B = len(v)
    if clip is None:
        return float(0.5 * np.mean((v - returns) ** 2)), (v - returns) / B
    vc = old_v + np.clip(v - old_v, -clip, clip)
    l1, l2 = (v - returns) ** 2, (vc - returns) ** 2
    dv = np.where(l1 >= l2, v - returns, np.where(np.abs(v - old_v) < clip, vc - returns, 0.0))
    return float(0.5 * np.mean(np.maximum(l1, l2))), dv / B


def backprop(params: Params, x: Inputs, hs: list[np.ndarray], dlogits: np.ndarray, dv: np.ndarray) -> Params:
    """Gradients of the loss from its gradients w.r.t. logits (B, A) and values (B,);
    hs are forward's hidden activations. grads["W1"] is (U, H): the gradient of
    the rows x.cols of W1.T (all others are 0)."""
    h = hs[-1]  # (B, T)
    grads = {"Wpi": dlogits.T @ h, "bpi": dlogits.sum(axis=0), "Wv": h.T @ dv, "bv": np.array([dv.sum()], h.dtype)}
    dh = dlogits @ params["Wpi"] + dv[:, None] * params["Wv"]  # (B, T)
    dh[h <= 0] = 0  # ReLU
    if "W2" in params:
        grads["W2"], grads["b2"] = dh.T @ hs[0], dh.sum(axis=0)  # (H2, H), (H2,)
        dh = dh @ params["W2"]  # (B, H)
        dh[hs[0] <= 0] = 0
    grads["b1"] = dh.sum(axis=0)
    grads["W1"] = x.X.T @ dh  # (U, H)
    return grads


@dataclass
class Batch:
    """A minibatch of stored transitions (B rows)."""

    x: Inputs  # (B, D)
    actions: np.ndarray  # (B,) indices into the action set
    logp: np.ndarray  # (B,) log pi_old(a|x)
    values: np.ndarray  # (B,) V_old(x)
    advantages: np.ndarray  # (B,)
    returns: np.ndarray  # (B,) value targets


@dataclass
class Coefs:
    """Coefficients of one update's loss."""

    clip: float = 0.1
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    vclip: float | None = 0.1  # None: unclipped value loss


def loss_and_grads(params: Params, b: Batch, c: Coefs) -> tuple[float, dict, Params, np.ndarray]:
    """Loss of a minibatch (advantages used as given), stats, grads and the rows of
    W1.T that grads["W1"] (U, H) belongs to."""
    logits, v, hs = forward(params, b.x)
    logp = log_softmax(logits)
    pg, dpg, stats = policy_term(logp, b.actions, b.logp, b.advantages, c.clip)
    ent, dent = entropy_term(logp)
    vl, dv = value_term(v, b.values, b.returns, c.vclip)
    dt = logits.dtype
    dlogits = (dpg - c.ent_coef * dent).astype(dt, copy=False)
    grads = backprop(params, b.x, hs, dlogits, (c.vf_coef * dv).astype(dt, copy=False))
    stats |= {"losses/policy_loss": pg, "losses/value_loss": vl, "losses/entropy": ent}
    return pg + c.vf_coef * vl - c.ent_coef * ent, stats, grads, b.x.cols


# ---------------------------------------------------------------- optimiser
def clip_grad_norm(grads: Params, max_norm: float) -> float:
    """Scale grads in place so that their global L2 norm is at most max_norm (as
    torch's clip_grad_norm_); returns the norm before clipping."""
    norm = float(np.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values())))
    scale = max_norm / (norm + 1e-6)
    if scale < 1:
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


def _adam_update(p: np.ndarray, m: np.ndarray, v: np.ndarray, g: np.ndarray, t: int, lr: float, eps: float,
                 rows: np.ndarray | None = None, chunk: int = 1 << 18) -> None:
    """One Adam step (torch's formula) in place. With `rows`, g holds the gradient
    of those rows of p only (all other rows: zero), and is never made dense."""
    b1, b2 = ADAM_BETAS
    m *= b1
    v *= b2
    if rows is None:
        m += (1 - b1) * g
        v += (1 - b2) * g * g
    else:
        m[rows] += (1 - b1) * g
        v[rows] += (1 - b2) * g * g
    if not (p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        return _adam_apply(p, m, v, t, lr, eps)
    p, m, v = p.reshape(-1), m.reshape(-1), v.reshape(-1)  # views
    for s in range(0, p.size, chunk):  # elementwise: the same numbers, with the passes kept in cache (~1.3x faster)
        _adam_apply(p[s:s + chunk], m[s:s + chunk], v[s:s + chunk], t, lr, eps)


def _adam_apply(p: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float, eps: float) -> None:
    """p -= lr * m_hat / (sqrt(v_hat) + eps), in place, from the updated moments."""
    b1, b2 = ADAM_BETAS
    denom = np.sqrt(v)
    denom /= np.sqrt(1 - b2**t)
    denom += eps
    step = m * (lr / (1 - b1**t))
    step /= denom
    p -= step


def adam_step(params: Params, grads: Params, rows: np.ndarray, m: Params, v: Params, t: int,
              lr: float, eps: float, lazy: bool) -> None:
    """Adam step t (1-based) in place; grads["W1"] holds only the rows `rows` of W1.T.
    lazy: update only those rows of W1 (and their moments); else all of W1."""
    for k, g in grads.items():
        if k != "W1":
            _adam_update(params[k], m[k], v[k], g, t, lr, eps)
    pT, mT, vT = params["W1"].T, m["W1"].T, v["W1"].T  # (D, H) views
    if lazy:
        p_r, m_r, v_r = pT[rows], mT[rows], vT[rows]  # (U, H) copies
        _adam_update(p_r, m_r, v_r, grads["W1"], t, lr, eps)
        pT[rows], mT[rows], vT[rows] = p_r, m_r, v_r
    else:
        _adam_update(pT, mT, vT, grads["W1"], t, lr, eps, rows)


# ---------------------------------------------------------------- rollout buffer
FLAT_KEYS = ("actions", "logp", "values", "advantages", "returns")


class RolloutBuffer:
    """num_steps x num_envs transitions: add / compute_returns_and_advantages / get.

    Inputs are kept as one SparseRows block (N rows, int16 cols, int8 vals) per
    step; the rest in (T, N) arrays. Flat row t * N + i is game i at step t.
    """

    def __init__(self, num_steps: int, num_envs: int):
        self.T, self.n = num_steps, num_envs
        self.blocks: list[SparseRows] = []
        self.actions = np.zeros((num_steps, num_envs), np.uint8)
        self.logp = np.zeros((num_steps, num_envs), np.float32)
        self.values = np.zeros((num_steps, num_envs), np.float32)
        self.rewards = np.zeros((num_steps, num_envs), np.float32)
        self.dones = np.zeros((num_steps, num_envs), bool)
        self.advantages = np.zeros((num_steps, num_envs), np.float32)
        self.returns = np.zeros((num_steps, num_envs), np.float32)

    @property
    def pos(self) -> int:
        return len(self.blocks)

    @property
    def full(self) -> bool:
        return self.pos == self.T

    def add(self, x: SparseRows, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray,
            values: np.ndarray, logp: np.ndarray) -> None:
        t = self.pos
        if t == self.T:
            raise ValueError("rollout buffer is full")
        self.blocks.append(x)
        self.actions[t], self.rewards[t], self.dones[t] = actions, rewards, dones
        self.values[t], self.logp[t] = values, logp

    def compute_returns_and_advantages(self, last_values: np.ndarray, gamma: float, lam: float) -> None:
        """GAE(lam) advantages and value targets of the full buffer; last_values (N,)
        is the value of the input that follows the last step."""
        adv, ret = gae(self.rewards, self.values, self.dones, last_values, gamma, lam)
        self.advantages[:], self.returns[:] = adv, ret

    def flat(self) -> tuple[SparseRows, dict[str, np.ndarray]]:
        """The full buffer as SparseRows (T*N rows) and flat (T*N,) arrays."""
        return SparseRows.concat(self.blocks), {k: getattr(self, k).reshape(-1) for k in FLAT_KEYS}

    def get(self, num_minibatches: int, rng: np.random.Generator):
        """Yield the full buffer as `num_minibatches` Batches in a random order."""
        return minibatches([self], num_minibatches, rng)

    def clear(self) -> None:
        self.blocks = []

    def state(self) -> dict[str, np.ndarray]:
        x = SparseRows.concat(self.blocks)
        return {"indptr": x.indptr, "cols": x.cols, "vals": x.vals, "pos": np.int64(self.pos),
                "actions": self.actions, "logp": self.logp, "values": self.values, "rewards": self.rewards,
                "dones": self.dones, "advantages": self.advantages, "returns": self.returns}

    def restore(self, s: dict[str, np.ndarray]) -> None:
        pos = int(s["pos"])
        x = SparseRows(s["indptr"].astype(np.int64), s["cols"].astype(np.int16), s["vals"].astype(np.int8))
        if not 0 <= pos <= self.T or x.rows != pos * self.n:
            raise ValueError("rollout buffer arrays do not fit together")
        self.blocks = [x.slice(t * self.n, (t + 1) * self.n) for t in range(pos)]
        for k in ("actions", "logp", "values", "rewards", "dones", "advantages", "returns"):
            getattr(self, k)[:] = s[k]


def minibatches(buffers: list[RolloutBuffer], num_minibatches: int, rng: np.random.Generator):
    """Yield all transitions of the (full) buffers as `num_minibatches` Batches, in a random order."""
    parts = [b.flat() for b in buffers]
    x = SparseRows.concat([p[0] for p in parts])
    flat = {k: np.concatenate([p[1][k] for p in parts]) for k in FLAT_KEYS}
    for idx in np.array_split(rng.permutation(x.rows), num_minibatches):
        yield Batch(compact(x.take(idx)), flat["actions"][idx].astype(np.int64), flat["logp"][idx],
                    flat["values"][idx], flat["advantages"][idx], flat["returns"][idx])


# ---------------------------------------------------------------- the learner
def schedule(cfg: Config, env_steps: int) -> float:
    """Fraction of the initial learning rate (and entropy coef, if annealed) after env_steps."""
    if cfg.ppo_anneal_steps == 0:
        return 1.0
    return max(1.0 - env_steps / cfg.ppo_anneal_steps, 0.0)


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - pred] / Var[target] (nan when the targets are constant)."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


PENDING_KEYS = ("indptr", "cols", "vals", "actions", "logp", "values")


class PPO:
    """The learner: parameters, Adam state, a rollout buffer per group of games
    (see Config.groups), the steps in flight and an update counter.

    A group whose buffer is full waits (`ready` is False) until every group's
    buffer is full; then one update uses them all.

    With `ppo_overlap`, that update runs in a thread on the full buffers while
    the games fill fresh ones, acted with `acting`: a copy of the parameters
    taken when the update started. Reading `params` (or saving) waits for the
    update to finish. Every result is a function of the data alone, never of
    the threads' timing.
    """

    def __init__(self, cfg: Config, rng: np.random.Generator):
        self.cfg = cfg
        self.action_ids = np.array(ACTION_SETS[cfg.ppo_actions])
        self._params = init_params(OBS_INPUTS[cfg.ppo_obs], cfg.ppo_hidden, len(self.action_ids), rng,
                                   hidden2=cfg.ppo_hidden2)
        self.acting = self._params  # the parameters that play (a lagged copy while an update runs)
        self.m = {k: np.zeros_like(v) for k, v in self._params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self._params.items()}
        self.t = 0  # Adam steps taken
        self.buffers = self.new_buffers()
        self.pending: dict[int, tuple] = {}  # group -> (inputs, action indices, logp, values) of its step in flight
        self.updates = 0
        self.learner: threading.Thread | None = None  # the update in flight (ppo_overlap)
        self.learned: dict | None = None  # its stats, until returned
        self.failed: BaseException | None = None  # what it raised, re-raised by wait()

    def new_buffers(self) -> list[RolloutBuffer]:
        g = self.cfg.num_groups
        return [RolloutBuffer(self.cfg.ppo_num_steps, self.cfg.num_envs // g) for _ in range(g)]

    @property
    def params(self) -> Params:
        """The learner's parameters, after the update in flight (if any) is done."""
        self.wait()
        return self._params

    @params.setter
    def params(self, value: Params) -> None:
        self.wait()
        self._params = value

    def act(self, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator, group: int = 0) -> np.ndarray:
        """Sample an ALE action for every game of the group; keeps what `observe` stores."""
        self.pending[group] = step = sample_step(self.acting, x, frames, self.cfg.ppo_obs, rng)
        return self.action_ids[step[1]]

    def ready(self, group: int) -> bool:
        """A group may act unless its rollout is complete and waits for the others'."""
        return not self.buffers[group].full

    def observe(self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray,
                x_next: np.ndarray, frames_next: np.ndarray, group: int = 0) -> dict | None:
        """Store the step. A group's rollout is complete after ppo_num_steps steps:
        GAE is computed then, bootstrapped from the value of x_next / frames_next
        under the parameters that acted. Once every group's is complete, learn
        from them and return the update's stats (with ppo_overlap: start the
        update, and return the stats of the previous one).

        `dones` are terminals: the env has restarted those games (their next
        input is zeros). Pong's time-limit truncations are rare and are treated
        as terminals too."""
        xs, a, logp, values = self.pending.pop(group)
        buf = self.buffers[group]
        buf.add(xs, a, rewards, dones, values, logp)
        if not buf.full:
            return None
        _, last_values, _ = forward(self.acting, compact(encode(x_next, frames_next, self.cfg.ppo_obs)))
        buf.compute_returns_and_advantages(last_values, self.cfg.gamma, self.cfg.ppo_gae_lambda)
        if not all(b.full for b in self.buffers):
            return None
        if not self.cfg.overlap:
            stats = self.update(self.buffers)
            for b in self.buffers:
                b.clear()
            self.updates += 1
            return stats
        stats = self.finish()
        self.acting = {k: v.copy(order="K") for k, v in self._params.items()}
        full, self.buffers = self.buffers, self.new_buffers()
        self.learner = threading.Thread(target=self._learn, args=(full,), name="pongrl-ppo-update", daemon=True)
        self.learner.start()
        return stats

    def _learn(self, buffers: list[RolloutBuffer]) -> None:
        try:
            self.learned = self.update(buffers)
        except BaseException as e:  # re-raised by wait(), in the training thread
            self.failed = e

    def wait(self) -> None:
        """Finish the update in flight, if any; its stats stay in `learned`
        until the next update starts (or `finish`) returns them."""
        if self.learner is None:
            return
        self.learner.join()
        self.learner = None
        if self.failed is not None:
            error, self.failed = self.failed, None
            raise error
        self.updates += 1

    def finish(self) -> dict | None:
        """Finish the update in flight, if any; the stats of an update not yet returned (once)."""
        self.wait()
        stats, self.learned = self.learned, None
        return stats

    def update(self, buffers: list[RolloutBuffer]) -> dict:
        """ppo_epochs passes over the full buffers in ppo_minibatches minibatches."""
        cfg, params = self.cfg, self._params
        frac = schedule(cfg, self.updates * cfg.ppo_num_steps * cfg.num_envs)
        lr = cfg.ppo_lr * frac
        ent = cfg.ppo_ent_coef * (frac if cfg.ppo_anneal_entropy else 1.0)
        coefs = Coefs(cfg.ppo_clip, cfg.ppo_vf_coef, ent, cfg.ppo_clip if cfg.ppo_clip_vloss else None)
        rng = np.random.default_rng([cfg.seed, self.updates])  # minibatch order: a function of the update
        sums: dict[str, float] = {}
        for _ in range(cfg.ppo_epochs):
            for b in minibatches(buffers, cfg.ppo_minibatches, rng):
                if cfg.ppo_norm_adv:
                    b.advantages = (b.advantages - b.advantages.mean()) / (b.advantages.std() + 1e-8)
                _, stats, grads, rows = loss_and_grads(params, b, coefs)
                stats["losses/grad_norm"] = clip_grad_norm(grads, cfg.ppo_max_grad_norm)
                self.t += 1
                adam_step(params, grads, rows, self.m, self.v, self.t, lr, cfg.ppo_adam_eps, cfg.ppo_lazy_adam)
                for k, val in stats.items():
                    sums[k] = sums.get(k, 0.0) + val
        out = {k: s / (cfg.ppo_epochs * cfg.ppo_minibatches) for k, s in sums.items()}
        values, returns = (np.concatenate([getattr(b, k).ravel() for b in buffers]) for k in ("values", "returns"))
        out["losses/explained_variance"] = explained_variance(values, returns)
        return out | {"charts/learning_rate": lr, "charts/ent_coef": ent, "charts/updates": self.updates + 1}

    # -- checkpointing
    def state(self) -> dict[str, np.ndarray]:
        out = {f"params/{k}": v for k, v in self.params.items()}
        if self.cfg.overlap:
            out |= {f"acting/{k}": v for k, v in self.acting.items()}
        out |= {f"adam/m/{k}": v for k, v in self.m.items()} | {f"adam/v/{k}": v for k, v in self.v.items()}
        for g, b in enumerate(self.buffers):
            out |= {f"buffer{g}/{k}": v for k, v in b.state().items()}
        for g, (xs, a, logp, values) in self.pending.items():
            arrays = (xs.indptr, xs.cols, xs.vals, a, logp, values)
            out |= {f"pending{g}/{k}": v for k, v in zip(PENDING_KEYS, arrays)}
        out |= {f"learned/{k}": np.asarray(v) for k, v in (self.learned or {}).items()}  # stats not yet returned
        return out | {"adam/t": np.int64(self.t), "updates": np.int64(self.updates)}

    def restore(self, s: dict[str, np.ndarray]) -> None:
        def fit(key: str, like: np.ndarray) -> np.ndarray:
            a = np.asarray(s[key])
            if a.shape != like.shape:
                raise ValueError(f"{key} has shape {a.shape}, expected {like.shape}")
            return np.array(a, like.dtype, order="F" if like.flags.f_contiguous and a.ndim == 2 else "C")

        self.params = {k: fit(f"params/{k}", v) for k, v in self.params.items()}
        self.acting = self._params
        if self.cfg.overlap:
            self.acting = {k: fit(f"acting/{k}", v) for k, v in self._params.items()}
        self.m = {k: fit(f"adam/m/{k}", v) for k, v in self.m.items()}
        self.v = {k: fit(f"adam/v/{k}", v) for k, v in self.v.items()}
        for g, b in enumerate(self.buffers):
            b.restore({k.split("/", 1)[1]: v for k, v in s.items() if k.startswith(f"buffer{g}/")})
        self.pending = {}
        for g in range(len(self.buffers)):
            if f"pending{g}/indptr" in s:
                indptr, cols, vals, a, logp, values = (s[f"pending{g}/{k}"] for k in PENDING_KEYS)
                xs = SparseRows(indptr.astype(np.int64), cols.astype(np.int16), vals.astype(np.int8))
                self.pending[g] = (xs, a.astype(np.int64), logp.astype(np.float32), values.astype(np.float32))
        self.learned = {k.removeprefix("learned/"): np.asarray(v).item() for k, v in s.items()
                        if k.startswith("learned/")} or None
        self.t, self.updates = int(s["adam/t"]), int(s["updates"])


def expected_shapes(cfg: Config) -> dict[str, tuple]:
    """Shapes of the parameter and Adam arrays of a PPO checkpoint of this config."""
    h, d, a = cfg.ppo_hidden, OBS_INPUTS[cfg.ppo_obs], len(ACTION_SETS[cfg.ppo_actions])
    h2 = cfg.ppo_hidden2
    top = h2 or h
    shapes = {"W1": (h, d), "b1": (h,), "Wpi": (a, top), "bpi": (a,), "Wv": (top,), "bv": (1,)}
    if h2:
        shapes |= {"W2": (h2, h), "b2": (h2,)}
    groups = ("params", "adam/m", "adam/v") + (("acting",) if cfg.overlap else ())
    return {f"{p}/{k}": s for p in groups for k, s in shapes.items()}
