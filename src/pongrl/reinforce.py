"""REINFORCE as in the tutorial: sum the policy gradient over a batch of whole
episodes, then take one RMSProp step.

Each action's advantage is its discounted per-point return, normalised within
its episode; there is no critic and no clipping. Locally, a rollout ends as
soon as the batch is complete, so the next action is taken with the updated
policy: with one game this is exactly the tutorial's loop.
"""

from __future__ import annotations

import numpy as np

from . import policy
from .collector import finished_in_order
from .config import Config
from .inputs import compact
from .optim import linear_decay, rmsprop_step
from .returns import discount_rewards, normalize
from .rollouts import EpisodeBuffer, Episodes, Rollout, concat_episodes
from .sparse import SparseRows

CHUNK = 512  # rows per chunk of the update: small temporaries stay in cache


# ------------------------------------------------------------------ acting
def act(params: policy.Params, x: np.ndarray, frames: np.ndarray,
        rng: np.random.Generator) -> tuple[np.ndarray, SparseRows, dict]:
    """UP/DOWN (N,) sampled from P(UP | x) for inputs x (N, 6400) int8, and x as CSR."""
    p, xs = policy.p_up(params, x)
    return policy.actions_from_probs(p, rng.random(len(p), dtype=p.dtype)), xs, {}


def greedy_actions(params: policy.Params, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """UP where P(UP | x) > 1/2, else DOWN."""
    p, _ = policy.p_up(params, x)
    return policy.actions_from_probs(p, np.full(len(p), 0.5, p.dtype))


def bootstrap(params: policy.Params, x: np.ndarray, frames: np.ndarray) -> dict:
    """REINFORCE learns from whole episodes: nothing to bootstrap."""
    return {}


# ------------------------------------------------------------------ the gradient
def episode_advantages(rewards: np.ndarray, lengths: np.ndarray, gamma: float, norm: str = "episode") -> np.ndarray:
    """Discounted returns of each episode, normalised within that episode (norm 'episode')
    or over all the episodes together ('batch')."""
    parts = np.split(rewards, np.cumsum(lengths)[:-1])
    if norm == "batch":
        return normalize(np.concatenate([discount_rewards(r, gamma) for r in parts]))
    return np.concatenate([normalize(discount_rewards(r, gamma)) for r in parts])


def policy_gradient(params: policy.Params, eps: Episodes, gamma: float,
                    norm: str = "episode") -> tuple[policy.Params, dict]:
    """Gradient of sum_t A_t log pi(a_t | x_t) over the episodes (sparse, chunked)."""
    adv = episode_advantages(eps.rewards, eps.lengths, gamma, norm).astype(params["W2"].dtype)
    grads = policy.zeros_like(params)
    objective, entropy = 0.0, 0.0
    for a in range(0, eps.x.rows, CHUNK):
        x = compact(eps.x.slice(a, min(a + CHUNK, eps.x.rows)), params["W1"].dtype)  # (B, U) occurring pixels
        p, h = policy.forward_sparse(params, x)
        dlogit = policy.dlogit_of(eps.actions[a:a + CHUNK], p)
        policy.backward_sparse(params, x, h, adv[a:a + CHUNK] * dlogit, grads)
        logp = np.log(np.maximum(np.where(eps.actions[a:a + CHUNK] == policy.UP, p, 1 - p), 1e-12))
        objective += float(adv[a:a + CHUNK] @ logp)
        entropy -= float(np.sum(p * np.log(np.maximum(p, 1e-12)) + (1 - p) * np.log(np.maximum(1 - p, 1e-12))))
    n = max(eps.x.rows, 1)
    return grads, {"losses/policy_loss": -objective / n, "losses/entropy": entropy / n}


# ------------------------------------------------------------------ the learner
class Reinforce:
    """The learner: parameters, RMSProp cache, and an episode buffer per source of games.

    Episodes are taken for an update in the order in which they ended."""

    def __init__(self, cfg: Config, params: policy.Params):
        self.cfg, self.params = cfg, params
        self.cache = policy.zeros_like(params)
        self.buffers: dict[int, EpisodeBuffer] = {}  # by rollout source (group or Ray worker)
        self.order: list[int] = []  # source of every finished episode not yet used
        self.updates = 0

    def rollout_size(self) -> tuple[int | None, int | None]:
        """(steps per game, episodes) that complete a rollout: locally, the episodes
        the batch still lacks; with Ray workers, worker_steps steps."""
        lacking = max(self.cfg.batch_size - len(self.order), 1)
        return (self.cfg.worker_steps, None) if self.cfg.workers else (None, lacking)

    def learn(self, rollouts: list[Rollout], env_steps: int) -> dict | None:
        """Store the rollouts; one update per `batch_size` finished episodes. The stats of the last."""
        for r in rollouts:
            self.buffers.setdefault(r.source, EpisodeBuffer(r.rewards.shape[1])).add(r)
        self.order += [source for source, _ in finished_in_order(rollouts)]
        stats = None
        decayed = self.cfg.lr * linear_decay(env_steps, self.cfg.lr_anneal_steps)  # env_steps: before the rollouts
        lr = max(self.cfg.lr_floor, decayed)
        while len(self.order) >= self.cfg.batch_size:
            stats = self.update(lr)
        return stats

    def update(self, lr: float) -> dict:
        take, self.order = self.order[:self.cfg.batch_size], self.order[self.cfg.batch_size:]
        eps = concat_episodes([b.pop_finished(take.count(s)) for s, b in sorted(self.buffers.items()) if s in take])
        grads, stats = policy_gradient(self.params, eps, self.cfg.gamma, self.cfg.adv_norm)
        rmsprop_step(self.params, grads, self.cache, lr, self.cfg.decay_rate, self.cfg.rms_eps)
        self.updates += 1
        stats["charts/grad_norm"] = float(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads.values())))
        return stats | {"charts/learning_rate": lr}

    # -- checkpointing
    def state(self) -> dict[str, np.ndarray]:
        out = {f"params/{k}": v for k, v in self.params.items()}
        out |= {f"rmsprop/{k}": v for k, v in self.cache.items()}
        for s, b in self.buffers.items():
            out |= {f"buffer{s}/{k}": v for k, v in b.state().items()}
        return out | {"sources": np.array(sorted(self.buffers), np.int64), "games": self.games(),
                      "order": np.array(self.order, np.int64), "updates": np.int64(self.updates)}

    def games(self) -> np.ndarray:
        return np.array([self.buffers[s].n for s in sorted(self.buffers)], np.int64)

    def restore(self, s: dict[str, np.ndarray]) -> None:
        self.params = {k: s[f"params/{k}"] for k in self.params}
        self.cache = {k: s[f"rmsprop/{k}"] for k in self.cache}
        self.buffers = {}
        for source, n in zip(s["sources"], s["games"]):
            self.buffers[int(source)] = b = EpisodeBuffer(int(n))
            b.restore({k.split("/", 1)[1]: v for k, v in s.items() if k.startswith(f"buffer{source}/")})
        self.order = [int(g) for g in s["order"]]
        self.updates = int(s["updates"])
