"""REINFORCE as in the tutorial: sum the policy gradient over a batch of whole
episodes, then take one RMSProp step.

Each action's advantage is its discounted per-point return, normalised within
its episode; there is no critic and no clipping. Locally, a rollout ends as
soon as the batch is complete, so the next action is taken with the updated
policy: with one game this is exactly the tutorial's loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import policy
from .collector import finished_in_order
from .inputs import compact
from .optim import guard, linear_decay, rmsprop_step
from .parallel import SERIAL, Pool
from .returns import discount_rewards, normalize
from .rollouts import EpisodeBuffer, Episodes, Rollout, concat_episodes
from .schema import Spec, check, require
from .sparse import SparseRows

CHUNK = 512  # rows per chunk of the update: small temporaries stay in cache


@dataclass
class ReinforceConfig:
    """REINFORCE's settings (with algo="reinforce"; the tutorial's by default); a
    run's `Config` holds them beside the shared ones."""

    hidden: int = 200
    """Hidden ReLU units of the 2-layer MLP."""
    batch_size: int = 10
    """Episodes whose gradients are summed before one RMSProp step."""
    lr: float = 1e-4
    """RMSProp learning rate (at the start, if lr_anneal_steps)."""
    lr_anneal_steps: int = 0
    """The learning rate decays linearly to 0 over this many env steps, then stays 0
    (0: constant, the tutorial's)."""
    lr_floor: float = 0.0
    """With lr_anneal_steps, the decaying rate is held here once it falls to it:
    lr * max(1 - env_steps / lr_anneal_steps, 0), never below lr_floor."""
    gamma: float = 0.99
    """REINFORCE's discount factor; the discounted sum restarts at every point (PPO's is ppo_gamma)."""
    decay_rate: float = 0.99
    """RMSProp decay of the running mean of squared gradients."""
    rms_eps: float = 1e-5
    """RMSProp epsilon added to the root of that mean."""

    CHOICES: ClassVar[dict[str, tuple]] = {}
    RANGES: ClassVar[dict[str, str]] = {
        "hidden": "in [1, 65536]",
        "batch_size": "in [1, 1000000]",
        "lr": "> 0",
        "lr_anneal_steps": ">= 0",
        "lr_floor": ">= 0",
        "gamma": "in [0, 1]",
        "decay_rate": "in [0, 1)",
        "rms_eps": "> 0",
    }

    def check_reinforce(self) -> list[str]:
        """What is wrong across REINFORCE's fields (empty: nothing)."""
        if self.lr_floor > self.lr:
            return [f"lr_floor must be in [0, lr] (lr is {self.lr!r}), got {self.lr_floor!r}"]
        return []


# ------------------------------------------------------------------ acting
def act(
    params: policy.Params, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, SparseRows, dict]:
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
def episode_advantages(rewards: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted returns of each episode, normalised within that episode."""
    parts = np.split(rewards, np.cumsum(lengths)[:-1])
    return np.concatenate([normalize(discount_rewards(r, gamma)) for r in parts])


def policy_gradient(
    params: policy.Params, eps: Episodes, gamma: float, pool: Pool = SERIAL
) -> tuple[policy.Params, dict]:
    """Gradient of sum_t A_t log pi(a_t | x_t) over the episodes (sparse, in chunks of rows).
    The pool's threads take a range of chunks each and sum their gradients in thread order."""
    adv = episode_advantages(eps.rewards, eps.lengths, gamma).astype(params["W2"].dtype)
    starts = range(0, eps.x.rows, CHUNK)
    parts = pool.run(lambda r: chunks_gradient(params, eps, adv, starts[r[0] : r[1]]), pool.ranges(len(starts)))
    grads = parts[0][0] if parts else policy.zeros_like(params)
    for g, _ in parts[1:]:
        for k in grads:
            grads[k] += g[k]
    p = np.concatenate([q for _, q in parts]) if parts else np.zeros(0, adv.dtype)  # (T,) P(UP)
    logp = np.log(np.maximum(np.where(eps.actions == policy.UP, p, 1 - p), 1e-12))
    plogp = p * np.log(np.maximum(p, 1e-12)) + (1 - p) * np.log(np.maximum(1 - p, 1e-12))
    objective, entropy = 0.0, 0.0
    for a in starts:  # summed chunk by chunk, in order
        objective += float(adv[a : a + CHUNK] @ logp[a : a + CHUNK])
        entropy -= float(np.sum(plogp[a : a + CHUNK]))
    n = max(eps.x.rows, 1)
    return grads, {"losses/policy_loss": -objective / n, "losses/entropy": entropy / n}


def chunks_gradient(
    params: policy.Params, eps: Episodes, adv: np.ndarray, starts: range
) -> tuple[policy.Params, np.ndarray]:
    """The gradient summed over the chunks of rows that begin at `starts`, and P(UP) of their rows."""
    grads, probs = policy.zeros_like(params), []
    for a in starts:
        x = compact(eps.x.slice(a, min(a + CHUNK, eps.x.rows)), params["W1"].dtype)  # (B, U) occurring pixels
        p, h = policy.forward_sparse(params, x)
        dlogit = policy.dlogit_of(eps.actions[a : a + CHUNK], p)
        policy.backward_sparse(params, x, h, adv[a : a + CHUNK] * dlogit, grads)
        probs.append(p)
    return grads, np.concatenate(probs) if probs else np.zeros(0, adv.dtype)


# ------------------------------------------------------------------ the learner
class Reinforce:
    """The learner: parameters, RMSProp cache, and an episode buffer per source of games.

    Episodes are taken for an update in the order in which they ended."""

    def __init__(
        self, cfg: ReinforceConfig, params: policy.Params, worker_steps: int | None = None, pool: Pool = SERIAL
    ):
        self.cfg, self.params, self.worker_steps, self.pool = cfg, params, worker_steps, pool
        self.cache = policy.zeros_like(params)
        self.buffers: dict[int, EpisodeBuffer] = {}  # by rollout source (group or Ray worker)
        self.order: list[int] = []  # source of every finished episode not yet used
        self.updates = 0

    def rollout_size(self) -> tuple[int | None, int | None]:
        """(steps per game, episodes) that complete a rollout: locally, the episodes
        the batch still lacks; with Ray workers, worker_steps steps."""
        lacking = max(self.cfg.batch_size - len(self.order), 1)
        return (self.worker_steps, None) if self.worker_steps else (None, lacking)

    def learn(self, rollouts: list[Rollout], env_steps: int) -> dict | None:
        """Store the rollouts; one update per `batch_size` finished episodes. The stats of the last."""
        for r in rollouts:
            self.buffers.setdefault(r.source, EpisodeBuffer(r.rewards.shape[1])).add(r)
        self.order += [source for source, _ in finished_in_order(rollouts)]
        stats = None
        decayed = self.cfg.lr * linear_decay(env_steps, self.cfg.lr_anneal_steps)  # env_steps: before the rollouts
        lr = max(self.cfg.lr_floor, decayed)
        while len(self.order) >= self.cfg.batch_size:
            stats = self.update(lr, env_steps)
        return stats

    def update(self, lr: float, env_steps: int) -> dict:
        take, self.order = self.order[: self.cfg.batch_size], self.order[self.cfg.batch_size :]
        eps = concat_episodes([b.pop_finished(take.count(s)) for s, b in sorted(self.buffers.items()) if s in take])
        grads, stats = policy_gradient(self.params, eps, self.cfg.gamma, self.pool)
        stats["charts/grad_norm"] = float(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads.values())))
        where = f"in update {self.updates + 1}, after env step {env_steps}"
        guard({"policy loss": stats["losses/policy_loss"], "gradient norm": stats["charts/grad_norm"]}, where)
        rmsprop_step(self.params, grads, self.cache, lr, self.cfg.decay_rate, self.cfg.rms_eps, self.pool)
        guard({f"parameters {k}": v for k, v in self.params.items()}, where)
        self.updates += 1
        return stats | {"charts/learning_rate": lr}

    # -- checkpointing
    def state(self) -> dict[str, np.ndarray]:
        out = {f"params/{k}": v for k, v in self.params.items()}
        out |= {f"rmsprop/{k}": v for k, v in self.cache.items()}
        for s, b in self.buffers.items():
            out |= {f"buffer{s}/{k}": v for k, v in b.state().items()}
        return out | {
            "sources": np.array(sorted(self.buffers), np.int64),
            "games": self.games(),
            "order": np.array(self.order, np.int64),
            "updates": np.int64(self.updates),
        }

    def games(self) -> np.ndarray:
        return np.array([self.buffers[s].n for s in sorted(self.buffers)], np.int64)

    def schema(self) -> dict[str, Spec]:
        """What the saved state must be: the network's shapes, RMSProp's cache >= 0, the sources of games."""
        out: dict[str, Spec] = {}
        for k, v in self.params.items():
            out |= {f"params/{k}": Spec("float32", v.shape), f"rmsprop/{k}": Spec("float32", v.shape, lo=0)}
        return out | {
            "sources": Spec("int64", ("S",), lo=0, hi=100_000),
            "games": Spec("int64", ("S",), lo=1, hi=256),
            "order": Spec("int64", ("*",), lo=0),
            "updates": Spec("int64", (), lo=0, hi=2**40),
        }

    def restore(self, s: dict[str, np.ndarray]) -> None:
        check(s, self.schema(), {"S": len(np.asarray(s.get("sources", ())))}, "REINFORCE's learner state")
        sources, order = [int(v) for v in s["sources"]], [int(v) for v in s["order"]]
        require(
            sources == sorted(set(sources)) and set(order) <= set(sources) and len(order) < self.cfg.batch_size,
            "REINFORCE's learner state: its episode order does not fit its sources of games",
        )
        buffers = {}
        for source, n in zip(sources, s["games"]):
            buffers[source] = b = EpisodeBuffer(int(n))
            b.restore({k.split("/", 1)[1]: v for k, v in s.items() if k.startswith(f"buffer{source}/")})
            require(
                len(b.finished) == order.count(source),
                f"REINFORCE's learner state: buffer {source} holds {len(b.finished)} finished episodes, "
                f"its order {order.count(source)}",
            )
        self.params = {k: s[f"params/{k}"] for k in self.params}
        self.cache = {k: s[f"rmsprop/{k}"] for k in self.cache}
        self.buffers, self.order, self.updates = buffers, order, int(s["updates"])
