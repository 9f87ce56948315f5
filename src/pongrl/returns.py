"""Discounted returns for Pong: the running sum restarts at every point."""

from __future__ import annotations

import numpy as np


def discount_rewards(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """(T,) rewards of one episode -> (T,) discounted returns.

    In Pong a nonzero reward ends a point, so the sum is reset there: an action
    is credited only with the point it helped to win or lose.
    """
    rewards = np.asarray(rewards, np.float64)
    out = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        if rewards[t] != 0:
            running = 0.0
        running = running * gamma + rewards[t]
        out[t] = running
    return out


def normalize(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Zero mean, unit std; eps keeps an all-equal episode finite."""
    return (x - x.mean()) / (x.std() + eps)
