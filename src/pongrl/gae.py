"""Generalized advantage estimation (GAE, Schulman et al. 2015) over a rollout.

A rollout holds T steps of N games. `dones[t, i]` says that the step taken in
game i at time t ended its episode: the game was reset, so nothing after it
belongs to the same episode and the value of the next input is not used
(terminal). Pong episodes end by a player reaching 21 points; the env's frame
limit (a truncation) is practically never reached, so truncations are treated
as terminals too.
"""

from __future__ import annotations

import numpy as np


def gae(
    rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """GAE(lambda) advantages and lambda-returns of a rollout.

    rewards, values, dones: (T, N); last_values: (N,) the value of the input
    that follows step T-1 in every game. Returns (advantages, returns), both
    (T, N) float64, with returns = advantages + values (the value targets).

        delta_t = r_t + gamma * (1 - done_t) * V_{t+1} - V_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
    """
    T = len(rewards)
    values = np.asarray(values, np.float64)
    nonterminal = 1.0 - np.asarray(dones, np.float64)  # (T, N)
    next_values = np.concatenate([values[1:], np.asarray(last_values, np.float64)[None]])  # (T, N)
    deltas = np.asarray(rewards, np.float64) + gamma * nonterminal * next_values - values  # (T, N)
    adv = np.zeros_like(deltas)
    running = np.zeros(deltas.shape[1:])  # (N,)
    for t in range(T - 1, -1, -1):
        running = deltas[t] + gamma * lam * nonterminal[t] * running
        adv[t] = running
    return adv, adv + values
