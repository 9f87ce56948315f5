"""What passes from the games to a learner (`Rollout`), and how learners store it.

A collector (pongrl.collector) plays T steps of n games and hands out one
`Rollout` per group of games, in-process or from a Ray worker alike. The
learners keep what they need of it:

- PPO: `RolloutBuffer` (add / compute_returns / get), one whole rollout per update;
- REINFORCE: `EpisodeBuffer`, each game's steps until its episode ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .env import DOWN, UP
from .gae import gae
from .inputs import Inputs, compact
from .preprocess import D
from .schema import Spec, check, require
from .sparse import SparseRows, check_saved


@dataclass(frozen=True)
class EpisodeEnd:
    """An episode that ended during a rollout."""

    env: int  # the game, within its group
    ret: float  # agent points minus opponent points
    length: int  # agent steps
    turn: int  # the collector's turn in which it ended: orders episodes across groups
    taken: int  # env steps the rollout's games had taken together when it ended (for the logs)


@dataclass
class Rollout:
    """T steps of the n games of one group (or Ray worker). Flat row t * n + j of
    `x` is game j at step t."""

    source: int  # the group (local) or worker (Ray) that played it
    x: SparseRows  # (T*n, D) int8 inputs the actions were chosen on
    actions: np.ndarray  # (T, n) uint8 ALE action ids
    rewards: np.ndarray  # (T, n) float32
    dones: np.ndarray  # (T, n) bool: the game ended and restarted
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # (T, n) each: what acting kept (PPO: logp, values)
    last: dict[str, np.ndarray] = field(default_factory=dict)  # (n,) each: the same for the input after step T-1
    finished: list[EpisodeEnd] = field(default_factory=list)  # episodes that ended, in order

    @property
    def steps(self) -> int:
        return len(self.rewards)


# ------------------------------------------------------------------ PPO's storage
@dataclass
class Batch:
    """A minibatch of stored transitions (B rows)."""

    x: Inputs  # (B, D)
    actions: np.ndarray  # (B,) indices into the action set
    logp: np.ndarray  # (B,) log pi_old(a|x)
    values: np.ndarray  # (B,) V_old(x)
    advantages: np.ndarray  # (B,)
    returns: np.ndarray  # (B,) value targets


class RolloutBuffer:
    """Whole rollouts for one PPO update: add / compute_returns / get.

    Rows are the rollouts' flat rows, one rollout after another."""

    def __init__(self, action_ids: np.ndarray):
        self.index = np.zeros(256, np.uint8)  # ALE action id -> index into the action set
        self.index[action_ids] = np.arange(len(action_ids))
        self.rollouts: list[Rollout] = []
        self.values: list[np.ndarray] = []  # (T, n) float32 per rollout, in return units
        self.advantages: list[np.ndarray] = []
        self.returns: list[np.ndarray] = []

    def add(self, r: Rollout) -> None:
        self.rollouts.append(r)

    def compute_returns(self, gamma: float, lam: float) -> None:
        """GAE(lam) advantages and value targets of every rollout, bootstrapped from its last values."""
        for r in self.rollouts:
            values = r.extras["values"]  # (T, n) float32
            adv, ret = gae(
                r.rewards, values.astype(np.float64), r.dones, r.last["values"].astype(np.float64), gamma, lam
            )
            self.values.append(values)
            self.advantages.append(adv.astype(np.float32))
            self.returns.append(ret.astype(np.float32))

    def flat(self, key: str) -> np.ndarray:
        """(rows,) of a per-step array: 'actions' (as indices), 'logp', 'values', 'advantages', 'returns'."""
        if key == "actions":
            parts = [self.index[r.actions] for r in self.rollouts]
        elif key in ("values", "advantages", "returns"):
            parts = getattr(self, key)
        else:
            parts = [r.extras[key] for r in self.rollouts]
        return np.concatenate([p.reshape(-1) for p in parts])

    def get(self, num_minibatches: int, rng: np.random.Generator):
        """Yield every row once, as `num_minibatches` Batches in a random order."""
        x = SparseRows.concat([r.x for r in self.rollouts])
        flat = {k: self.flat(k) for k in ("actions", "logp", "values", "advantages", "returns")}
        for idx in np.array_split(rng.permutation(x.rows), num_minibatches):
            yield Batch(
                compact(x.take(idx)),
                flat["actions"][idx].astype(np.int64),
                flat["logp"][idx],
                flat["values"][idx],
                flat["advantages"][idx],
                flat["returns"][idx],
            )


# ------------------------------------------------------------------ REINFORCE's storage
@dataclass
class Episodes:
    """Finished episodes, one after another."""

    x: SparseRows  # (T, 6400) inputs
    actions: np.ndarray  # (T,) UP or DOWN
    rewards: np.ndarray  # (T,)
    lengths: np.ndarray  # (E,) steps of each episode


class EpisodeBuffer:
    """Steps of n games, grouped into episodes: add / pop_finished."""

    def __init__(self, num_envs: int):
        self.n = num_envs
        self.blocks: list[SparseRows] = []  # one per vector step, n rows each
        self.actions: list[np.ndarray] = []  # (n,) uint8 each
        self.rewards: list[np.ndarray] = []  # (n,) float32 each
        self.first = 0  # vector step of blocks[0]
        self.t = 0  # vector steps added so far
        self.ep_start = np.zeros(num_envs, np.int64)  # step at which each game's episode began
        self.finished: list[tuple[int, int, int]] = []  # (env, start, stop) in finishing order

    def add(self, r: Rollout) -> None:
        for t in range(r.steps):
            self.blocks.append(r.x.slice(t * self.n, (t + 1) * self.n))
            self.actions.append(r.actions[t])
            self.rewards.append(r.rewards[t])
            self.t += 1
            for i in np.flatnonzero(r.dones[t]):
                self.finished.append((int(i), int(self.ep_start[i]), self.t))
                self.ep_start[i] = self.t

    def pop_finished(self, count: int) -> Episodes:
        """The first `count` finished episodes, removed from the buffer."""
        eps, self.finished = self.finished[:count], self.finished[count:]
        lo, hi = min(s for _, s, _ in eps), max(e for _, _, e in eps)
        big = SparseRows.concat(self.blocks[lo - self.first : hi - self.first])
        acts = np.stack(self.actions[lo - self.first : hi - self.first])  # (steps, n)
        rews = np.stack(self.rewards[lo - self.first : hi - self.first])
        rows = np.concatenate([(np.arange(s, e) - lo) * self.n + i for i, s, e in eps])
        out = Episodes(
            big.take(rows),
            acts.reshape(-1)[rows],
            rews.reshape(-1)[rows],
            np.array([e - s for _, s, e in eps], np.int64),
        )
        self._drop_unneeded()
        return out

    def _drop_unneeded(self) -> None:
        keep = min([int(self.ep_start.min())] + [s for _, s, _ in self.finished])
        k = keep - self.first
        if k > 0:
            del self.blocks[:k], self.actions[:k], self.rewards[:k]
            self.first = keep

    def state(self) -> dict[str, np.ndarray]:
        big = SparseRows.concat(self.blocks)
        return {
            "indptr": big.indptr,
            "cols": big.cols,
            "vals": big.vals,
            "actions": np.array(self.actions, np.uint8).reshape(-1, self.n),
            "rewards": np.array(self.rewards, np.float32).reshape(-1, self.n),
            "steps": np.array([self.first, self.t], np.int64),
            "ep_start": self.ep_start.copy(),
            "finished": np.array(self.finished, np.int64).reshape(-1, 3),
        }

    def schema(self) -> dict[str, Spec]:
        """What the saved buffer must be, besides its sparse inputs (`sparse.check_saved`)."""
        return {
            "actions": Spec("uint8", ("T", self.n), lo=UP, hi=DOWN),
            "rewards": Spec("float32", ("T", self.n), -1, 1),
            "steps": Spec("int64", (2,), lo=0, hi=2**40),
            "ep_start": Spec("int64", (self.n,), lo=0),
            "finished": Spec("int64", ("*", 3), lo=0),
        }

    def restore(self, s: dict[str, np.ndarray]) -> None:
        what = "an episode buffer"
        check(s, {"steps": self.schema()["steps"]}, what=what)
        first, t = (int(v) for v in s["steps"])
        steps = t - first
        require(steps >= 0, f"{what}: its first step {first} is after its last {t}")
        check(s, self.schema(), {"T": steps}, what)
        check_saved(s, "", steps * self.n, D, what)
        ends = np.asarray(s["finished"])
        require(
            bool((first <= s["ep_start"]).all() and (s["ep_start"] <= t).all()),
            f"{what}: an episode starts outside its steps {first}-{t}",
        )
        require(
            bool(
                (ends[:, 0] < self.n).all()
                and (first <= ends[:, 1]).all()
                and (ends[:, 1] < ends[:, 2]).all()
                and (ends[:, 2] <= t).all()
            ),
            f"{what}: a finished episode lies outside its games or steps",
        )
        big = SparseRows(s["indptr"], s["cols"], s["vals"])
        self.first, self.t = first, t
        self.blocks = [big.slice(b * self.n, (b + 1) * self.n) for b in range(steps)]
        self.actions, self.rewards = list(s["actions"]), list(s["rewards"])
        self.ep_start = s["ep_start"].copy()
        self.finished = [(int(i), int(a), int(b)) for i, a, b in s["finished"]]  # rows of 3: checked above


def concat_episodes(parts: list[Episodes]) -> Episodes:
    return Episodes(
        SparseRows.concat([p.x for p in parts]),
        np.concatenate([p.actions for p in parts]),
        np.concatenate([p.rewards for p in parts]),
        np.concatenate([p.lengths for p in parts]),
    )
