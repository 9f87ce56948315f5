"""REINFORCE as in the tutorial: sum the policy gradient over a batch of whole
episodes, then take one RMSProp step.

`EpisodeBuffer` keeps each game's transitions (sparse inputs, actions,
rewards) until its episode ends; `Reinforce` samples actions from the policy and
updates it every `batch_size` finished episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import policy
from .config import Config
from .optim import rmsprop_step
from .returns import discount_rewards, normalize
from .sparse import SparseRows

CHUNK = 512  # rows per chunk of the update: small temporaries stay in cache


@dataclass
class Episodes:
    """Finished episodes, one after another."""

    x: SparseRows  # (T, 6400) inputs
    actions: np.ndarray  # (T,) UP or DOWN
    rewards: np.ndarray  # (T,)
    lengths: np.ndarray  # (E,) steps of each episode


class EpisodeBuffer:
    """Transitions of N games, grouped into episodes: add / pop_finished."""

    def __init__(self, num_envs: int):
        self.n = num_envs
        self.blocks: list[SparseRows] = []  # one per vector step, N rows each
        self.actions: list[np.ndarray] = []
        self.rewards: list[np.ndarray] = []
        self.first = 0  # vector step of blocks[0]
        self.t = 0  # vector steps added so far
        self.ep_start = np.zeros(num_envs, np.int64)  # step at which each game's episode began
        self.finished: list[tuple[int, int, int]] = []  # (env, start, stop) in finishing order

    def add(self, x: SparseRows, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray) -> None:
        self.blocks.append(x)
        self.actions.append(actions.astype(np.uint8))
        self.rewards.append(rewards.astype(np.float32))
        self.t += 1
        for i in np.flatnonzero(dones):
            self.finished.append((int(i), int(self.ep_start[i]), self.t))
            self.ep_start[i] = self.t

    def pop_finished(self, count: int) -> Episodes:
        """The first `count` finished episodes, removed from the buffer."""
        eps, self.finished = self.finished[:count], self.finished[count:]
        lo = min(s for _, s, _ in eps)
        hi = max(e for _, _, e in eps)
        big = SparseRows.concat(self.blocks[lo - self.first:hi - self.first])
        acts = np.stack(self.actions[lo - self.first:hi - self.first])  # (steps, N)
        rews = np.stack(self.rewards[lo - self.first:hi - self.first])
        rows = np.concatenate([(np.arange(s, e) - lo) * self.n + i for i, s, e in eps])
        out = Episodes(big.take(rows), acts.reshape(-1)[rows], rews.reshape(-1)[rows],
                       np.array([e - s for _, s, e in eps], np.int64))
        self._drop_unneeded()
        return out

    def _drop_unneeded(self) -> None:
        keep = min([int(self.ep_start.min())] + [s for _, s, _ in self.finished])
        k = keep - self.first
        if k > 0:
            del self.blocks[:k], self.actions[:k], self.rewards[:k]
            self.first = keep

    @property
    def stored_bytes(self) -> int:
        return sum(b.nbytes for b in self.blocks) + sum(a.nbytes + r.nbytes for a, r in zip(self.actions, self.rewards))

    # -- checkpointing
    def state(self) -> dict[str, np.ndarray]:
        big = SparseRows.concat(self.blocks)
        fin = np.array(self.finished, np.int64).reshape(-1, 3)
        return {
            "indptr": big.indptr, "cols": big.cols, "vals": big.vals,
            "actions": np.array(self.actions, np.uint8).reshape(-1, self.n),
            "rewards": np.array(self.rewards, np.float32).reshape(-1, self.n),
            "steps": np.array([self.first, self.t], np.int64), "ep_start": self.ep_start.copy(), "finished": fin,
        }

    def restore(self, s: dict[str, np.ndarray]) -> None:
        big = SparseRows(s["indptr"].astype(np.int64), s["cols"].astype(np.int16), s["vals"].astype(np.int8))
        self.first, self.t = (int(v) for v in s["steps"])
        steps = self.t - self.first
        if big.rows != steps * self.n or s["actions"].shape != (steps, self.n) or s["ep_start"].shape != (self.n,):
            raise ValueError("episode buffer arrays do not fit together")
        self.blocks = [big.slice(b * self.n, (b + 1) * self.n) for b in range(steps)]
        self.actions, self.rewards = list(s["actions"]), list(s["rewards"])
        self.ep_start = s["ep_start"].astype(np.int64)
        self.finished = [tuple(int(v) for v in row) for row in s["finished"]]


def episode_advantages(rewards: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted returns of each episode, normalised within that episode."""
    parts = np.split(rewards, np.cumsum(lengths)[:-1])
    return np.concatenate([normalize(discount_rewards(r, gamma)) for r in parts])


def policy_gradient(params: policy.Params, eps: Episodes, gamma: float) -> tuple[policy.Params, dict]:
    """Gradient of sum_t A_t log pi(a_t | x_t) over the episodes (sparse, chunked)."""
    adv = episode_advantages(eps.rewards, eps.lengths, gamma).astype(params["W2"].dtype)
    grads = policy.zeros_like(params)
    objective, entropy = 0.0, 0.0
    for a in range(0, eps.x.rows, CHUNK):
        x = eps.x.slice(a, min(a + CHUNK, eps.x.rows))
        p, h = policy.forward_sparse(params, x)
        dlogit = policy.dlogit_of(eps.actions[a:a + CHUNK], p)
        policy.backward_sparse(params, x, h, adv[a:a + CHUNK] * dlogit, grads)
        logp = np.log(np.maximum(np.where(eps.actions[a:a + CHUNK] == policy.UP, p, 1 - p), 1e-12))
        objective += float(adv[a:a + CHUNK] @ logp)
        entropy -= float(np.sum(p * np.log(np.maximum(p, 1e-12)) + (1 - p) * np.log(np.maximum(1 - p, 1e-12))))
    n = max(eps.x.rows, 1)
    return grads, {"losses/policy_loss": -objective / n, "losses/entropy": entropy / n}


def sample_step(params: policy.Params, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, SparseRows]:
    """UP/DOWN (N,) sampled from P(UP | x) for inputs x (N, 6400) int8, and x as CSR:
    how the learner acts (here, or in a Ray worker: pongrl.distributed)."""
    p, xs = policy.p_up(params, x)
    return policy.actions_from_probs(p, rng.random(len(p), dtype=p.dtype)), xs


class Reinforce:
    """The learner: parameters, RMSProp cache, and an episode buffer per group of games.

    The training loop may step the games in G groups (see Config.groups); each
    group has its own buffer, and episodes are taken for an update in the order
    in which they finished.
    """

    def __init__(self, cfg: Config, rng: np.random.Generator):
        self.cfg = cfg
        self.params = policy.init_params(cfg.hidden, rng)
        self.cache = policy.zeros_like(self.params)
        self.buffers = [EpisodeBuffer(cfg.num_envs // cfg.num_groups) for _ in range(cfg.num_groups)]
        self.finish_order: list[int] = []  # group of every finished episode not yet used
        self.pending: dict[int, SparseRows] = {}  # inputs of actions in flight, by group
        self.updates = 0

    def act(self, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator, group: int = 0) -> np.ndarray:
        """Sample UP/DOWN for every game of the group from P(UP | x); x is kept for `observe`."""
        actions, self.pending[group] = sample_step(self.params, x, rng)
        return actions

    def ready(self, group: int) -> bool:
        """REINFORCE may always act: its gradient is taken at update time."""
        return True

    def finish(self) -> dict | None:
        """Nothing learns in the background here: no stats are held back."""
        return None

    def observe(self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray,
                x_next: np.ndarray | None = None, frames_next: np.ndarray | None = None,
                group: int = 0) -> dict | None:
        """Store the step; once `batch_size` episodes have ended, update. Returns update stats."""
        self.buffers[group].add(self.pending.pop(group), actions, rewards, dones)
        self.finish_order += [group] * int(dones.sum())
        if len(self.finish_order) < self.cfg.batch_size:
            return None
        take, self.finish_order = self.finish_order[:self.cfg.batch_size], self.finish_order[self.cfg.batch_size:]
        eps = concat_episodes([b.pop_finished(take.count(g)) for g, b in enumerate(self.buffers) if g in take])
        grads, stats = policy_gradient(self.params, eps, self.cfg.gamma)
        rmsprop_step(self.params, grads, self.cache, self.cfg.lr, self.cfg.decay_rate, self.cfg.rms_eps)
        self.updates += 1
        stats["charts/grad_norm"] = float(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads.values())))
        return stats

    # -- checkpointing
    def state(self) -> dict[str, np.ndarray]:
        out = {f"params/{k}": v for k, v in self.params.items()}
        out |= {f"rmsprop/{k}": v for k, v in self.cache.items()}
        for g, b in enumerate(self.buffers):
            out |= {f"buffer{g}/{k}": v for k, v in b.state().items()}
        for g, x in self.pending.items():
            out |= {f"pending{g}/indptr": x.indptr, f"pending{g}/cols": x.cols, f"pending{g}/vals": x.vals}
        out["finish_order"] = np.array(self.finish_order, np.int64)
        out["updates"] = np.int64(self.updates)
        return out

    def restore(self, s: dict[str, np.ndarray]) -> None:
        self.params = {k: _like(s[f"params/{k}"], v) for k, v in self.params.items()}
        self.cache = {k: _like(s[f"rmsprop/{k}"], v) for k, v in self.cache.items()}
        for g, b in enumerate(self.buffers):
            b.restore({k.split("/", 1)[1]: v for k, v in s.items() if k.startswith(f"buffer{g}/")})
        self.pending = {g: SparseRows(s[f"pending{g}/indptr"], s[f"pending{g}/cols"], s[f"pending{g}/vals"])
                        for g in range(len(self.buffers)) if f"pending{g}/indptr" in s}
        self.finish_order = [int(g) for g in s["finish_order"]]
        self.updates = int(s["updates"])


def _like(saved: np.ndarray, current: np.ndarray) -> np.ndarray:
    """A loaded array in the dtype and memory order of the one it replaces."""
    order = "F" if current.flags.f_contiguous and current.ndim > 1 else "C"
    return np.array(saved, dtype=current.dtype, order=order)


def concat_episodes(parts: list[Episodes]) -> Episodes:
    return Episodes(SparseRows.concat([p.x for p in parts]), np.concatenate([p.actions for p in parts]),
                    np.concatenate([p.rewards for p in parts]), np.concatenate([p.lengths for p in parts]))
