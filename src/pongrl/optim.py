"""Optimizers, as pure in-place updates over dicts of arrays (gradient ascent)."""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]


def rmsprop_step(params: Params, grads: Params, cache: Params, lr: float, decay: float, eps: float) -> None:
    """cache <- decay * cache + (1 - decay) * g^2 ; param <- param + lr * g / (sqrt(cache) + eps)."""
    for k, g in grads.items():
        cache[k] *= decay
        cache[k] += (1 - decay) * g * g
        params[k] += lr * g / (np.sqrt(cache[k]) + eps)
