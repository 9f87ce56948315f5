"""The algorithm registry: the one place that knows what differs between algorithms.

Each `Algorithm` gives its network's parameter shapes and initialisation, how
it acts (sampled, as in training, and greedy), what a rollout's end needs
(`bootstrap`) and its learner. Everything else (the collector, the training
loop, checkpoints, evaluation, pictures, Ray workers) asks `get(name)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import actor_critic, policy, ppo, reinforce
from .config import Config
from .parallel import SERIAL

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Algorithm:
    name: str
    param_shapes: Callable[[Config], dict[str, tuple]]  # the network's arrays and their shapes
    init_params: Callable[[Config, np.random.Generator], Params]  # drawn from the run's generator
    act: Callable  # (params, x (N, 6400), frames (N, 80, 80), rng) -> (ALE actions (N,), inputs, extras)
    greedy: Callable  # (params, x, frames) -> ALE actions (N,) of the most likely action
    bootstrap: Callable  # (params, x, frames) -> dict of (N,) arrays for the input after a rollout
    learner: Callable  # (cfg, params, pool) -> an object with rollout_size, learn, state, restore, params, updates
    unit_weights: Callable  # (params) -> (H,) how much each first-layer unit sways the policy (for pictures)


def ppo_network(cfg: Config) -> tuple[str, int, int]:
    """What PPO's network is made of: (input kind, hidden units, convolution filters)."""
    return cfg.ppo_obs, cfg.ppo_hidden, cfg.ppo_conv


REGISTRY = {
    "reinforce": Algorithm(
        "reinforce",
        param_shapes=lambda cfg: {"W1": (cfg.hidden, policy.D), "W2": (cfg.hidden,)},
        init_params=lambda cfg, rng: policy.init_params(cfg.hidden, rng),
        act=reinforce.act,
        greedy=reinforce.greedy_actions,
        bootstrap=reinforce.bootstrap,
        learner=lambda cfg, params, pool=SERIAL: reinforce.Reinforce(
            cfg, params, cfg.worker_steps if cfg.workers else None, pool
        ),
        unit_weights=lambda params: np.abs(params["W2"].astype(np.float64)),
    ),
    "ppo": Algorithm(
        "ppo",
        param_shapes=lambda cfg: actor_critic.param_shapes(*ppo_network(cfg)),
        init_params=lambda cfg, rng: actor_critic.init_network(*ppo_network(cfg), rng),
        act=actor_critic.act,
        greedy=actor_critic.greedy_actions,
        bootstrap=actor_critic.bootstrap,
        learner=lambda cfg, params, pool=SERIAL: ppo.PPO(cfg, params, cfg.seed, pool),
        unit_weights=actor_critic.unit_weights,
    ),
}


def get(name: str) -> Algorithm:
    if name not in REGISTRY:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]
