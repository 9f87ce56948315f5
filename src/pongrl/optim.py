"""Optimizers, as pure in-place updates over dicts of arrays.

RMSProp is the tutorial's (gradient ascent); Adam is PyTorch's formula
(descent), with the first layer's gradient given for the occurring rows only.
"""

from __future__ import annotations

import numpy as np

from .errors import RunError
from .parallel import SERIAL, Pool

Params = dict[str, np.ndarray]
ADAM_BETAS = (0.9, 0.999)


class Diverged(RunError):
    """A loss, gradient or parameter stopped being a finite number: training cannot go on."""


def guard(values: dict[str, float | np.ndarray], where: str) -> None:
    """Diverged, naming the first of `values` (loss terms, gradient norm, parameters) that is not finite."""
    for name, v in values.items():
        if not np.isfinite(v).all():
            raise Diverged(
                f"training diverged {where}: the {name} is not finite; the last checkpoint is kept "
                "(a smaller learning rate or coefficient may help)"
            )


def linear_decay(env_steps: int, anneal_steps: int) -> float:
    """Fraction of a learning rate left after env_steps: 1 falling linearly to 0 at
    anneal_steps, then 0 (anneal_steps 0: always 1, a constant rate)."""
    if anneal_steps == 0:
        return 1.0
    return max(1.0 - env_steps / anneal_steps, 0.0)


def rmsprop_step(
    params: Params, grads: Params, cache: Params, lr: float, decay: float, eps: float, pool: Pool = SERIAL
) -> None:
    """cache <- decay * cache + (1 - decay) * g^2 ; param <- param + lr * g / (sqrt(cache) + eps).
    Elementwise: the pool's threads take a range of W1.T's rows each, with the same numbers."""
    for k, g in grads.items():
        if k != "W1" or pool.threads == 1:
            _rmsprop(params[k], g, cache[k], lr, decay, eps)
    if "W1" in grads and pool.threads > 1:
        p, gT, c = params["W1"].T, grads["W1"].T, cache["W1"].T  # (D, H) views, C-contiguous

        def rows(r: tuple[int, int]) -> None:
            _rmsprop(p[r[0] : r[1]], gT[r[0] : r[1]], c[r[0] : r[1]], lr, decay, eps)

        pool.run(rows, pool.ranges(len(gT)))


def _rmsprop(p: np.ndarray, g: np.ndarray, cache: np.ndarray, lr: float, decay: float, eps: float) -> None:
    """One RMSProp step of one array, in place."""
    cache *= decay
    cache += (1 - decay) * g * g
    p += lr * g / (np.sqrt(cache) + eps)


def clip_grad_norm(grads: Params, max_norm: float) -> float:
    """Scale grads in place so that their global L2 norm is at most max_norm (as
    torch's clip_grad_norm_); returns the norm before clipping."""
    norm = float(np.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values())))
    scale = max_norm / (norm + 1e-6)
    if scale < 1:
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


TINY = 1e-30
"""Adam's moments below this are set to 0 every FLUSH_EVERY steps. The moments of a pixel
that stops occurring decay by 0.9 (and 0.999) a step into float32's denormal numbers
(below 1.18e-38), where x86 arithmetic is many times slower, and stay there (0.9 x 4
denormal units rounds back to 4). A moment this small moves no float32 weight: its step
is below 1e-28, and its sqrt(v) is under eps's rounding."""
FLUSH_EVERY = 64  # steps: a moment above TINY needs over 600 steps of decay to become denormal


def adam_step(
    params: Params,
    grads: Params,
    rows: np.ndarray,
    m: Params,
    v: Params,
    t: int,
    lr: float,
    eps: float,
    pool: Pool = SERIAL,
) -> None:
    """Adam step t (1-based) in place over every array, all of W1 included;
    grads["W1"] (U, H) holds only the rows `rows` of W1.T (the others are zero).
    W1's step is elementwise: the pool's threads take a range of W1.T's rows each."""
    for k, g in grads.items():
        if k != "W1":
            adam_update(params[k], m[k], v[k], g, t, lr, eps)
    W1 = (params["W1"].T, m["W1"].T, v["W1"].T)  # (D, H) views, C-contiguous
    g, flush = grads["W1"], t % FLUSH_EVERY == 0
    pool.run(lambda r: adam_rows(*W1, g, rows, t, lr, eps, r, flush), pool.ranges(len(W1[0])))
    if flush:
        for a in (*m.values(), *v.values()):
            if a is not m["W1"] and a is not v["W1"]:
                flush_tiny(a)


def adam_rows(
    p: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    g: np.ndarray,
    rows: np.ndarray,
    t: int,
    lr: float,
    eps: float,
    span: tuple[int, int],
    flush: bool = False,
    chunk: int = 1 << 18,
) -> None:
    """Adam's step of rows span = [r0, r1) of p (D, H) in place, chunk by chunk (the
    passes over a chunk stay in cache); g (U, H) is the gradient of p's rows `rows`,
    all other rows' is zero. With flush, then sets moments below TINY to 0."""
    b1, b2 = ADAM_BETAS
    step = max(1, chunk // max(p.shape[1], 1))
    scratch = np.empty((2, min(step, span[1] - span[0]), p.shape[1]), p.dtype)  # reused: no page faults
    for c0 in range(span[0], span[1], step):
        c1 = min(c0 + step, span[1])
        mc, vc = m[c0:c1], v[c0:c1]
        mc *= b1
        vc *= b2
        lo, hi = np.searchsorted(rows, (c0, c1))  # rows ascending (Inputs.cols)
        gs, at = g[lo:hi], rows[lo:hi] - c0
        mc[at] += (1 - b1) * gs
        vc[at] += (1 - b2) * gs * gs
        _adam_apply(p[c0:c1], mc, vc, t, lr, eps, scratch[:, : c1 - c0])
        if flush:
            for a in (mc, vc):
                np.copyto(a, 0, where=np.abs(a) < TINY)


def flush_tiny(a: np.ndarray, chunk: int = 1 << 18) -> None:
    """Set the entries of a (C- or Fortran-ordered) with |a| < TINY to 0, in place, chunk by chunk."""
    flat = (a.T if a.flags.f_contiguous and not a.flags.c_contiguous else a).reshape(-1)
    if not np.shares_memory(flat, a):
        raise ValueError("flush_tiny needs a contiguous array")
    for s in range(0, flat.size, chunk):
        part = flat[s : s + chunk]
        np.copyto(part, 0, where=np.abs(part) < TINY)


def adam_update(
    p: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    g: np.ndarray,
    t: int,
    lr: float,
    eps: float,
    chunk: int = 1 << 18,
) -> None:
    """One Adam step of one array, with its whole gradient g, in place."""
    b1, b2 = ADAM_BETAS
    m *= b1
    v *= b2
    m += (1 - b1) * g
    v += (1 - b2) * g * g
    if not (p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        return _adam_apply(p, m, v, t, lr, eps)
    p, m, v = p.reshape(-1), m.reshape(-1), v.reshape(-1)  # views
    for s in range(0, p.size, chunk):  # elementwise: the same numbers, with the passes kept in cache
        _adam_apply(p[s : s + chunk], m[s : s + chunk], v[s : s + chunk], t, lr, eps)


def _adam_apply(
    p: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float, eps: float, scratch: np.ndarray | None = None
) -> None:
    """p -= lr * m_hat / (sqrt(v_hat) + eps), in place, from the updated moments; scratch (2, *p.shape)
    holds the temporaries if given."""
    b1, b2 = ADAM_BETAS
    denom, step = (None, None) if scratch is None else scratch
    denom = np.sqrt(v, out=denom)
    denom /= np.sqrt(1 - b2**t)
    denom += eps
    step = np.multiply(m, lr / (1 - b1**t), out=step)
    step /= denom
    p -= step
