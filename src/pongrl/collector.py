"""The collector: N games played with an algorithm's acting function, handed out as rollouts.

The games are stepped in G groups, in turn (`Config.groups`): while the
emulator runs one group's step in its threads, Python chooses the next
actions of another. One turn of group g:

1. if g has a step in flight: receive it and record it in g's rollout;
2. if the rollout is complete (see `collect`): stop, before g acts again;
3. else choose g's next actions with the acting function and send them.

The same code runs in this process and inside every Ray worker
(pongrl.distributed), where G = 1. Its state (the games, the steps in flight,
the random generator) is saved with `state()` and put back with `restore()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .checkpoint import rng_state, section, set_rng_state
from .env import PongVecEnv
from .inputs import WIDTHS
from .rollouts import EpisodeEnd, Rollout
from .schema import Spec, check
from .sparse import SparseRows, check_saved

MAX_INPUTS = max(WIDTHS.values())  # the widest input a network reads
IN_FLIGHT = {"logp": Spec("float32", ("n",), hi=0, optional=True), "values": Spec("float32", ("n",), optional=True)}
Act = Callable  # (params, x (n, 6400) int8, frames (n, 80, 80), rng) -> (actions (n,), SparseRows, extras)
Bootstrap = Callable  # (params, x, frames) -> dict of (n,) arrays for the input after a rollout


@dataclass
class Recording:
    """One group's steps in the rollout being collected."""

    blocks: list = field(default_factory=list)  # SparseRows (n, D) per step
    actions: list = field(default_factory=list)  # (n,) per step
    rewards: list = field(default_factory=list)
    dones: list = field(default_factory=list)
    extras: list = field(default_factory=list)  # dict of (n,) arrays per step
    finished: list = field(default_factory=list)

    def rollout(self, source: int, n: int, last: dict) -> Rollout:
        def stack(rows, dtype):
            return np.array(rows, dtype).reshape(len(rows), n)

        keys = self.extras[0].keys() if self.extras else ()
        return Rollout(
            source,
            SparseRows.concat(self.blocks),
            stack(self.actions, np.uint8),
            stack(self.rewards, np.float32),
            stack(self.dones, bool),
            {k: stack([e[k] for e in self.extras], np.float32) for k in keys},
            last,
            self.finished,
        )


class Collector:
    """G groups of games (one `PongVecEnv` each), an acting function and its random generator."""

    def __init__(
        self, envs: list[PongVecEnv], act: Act, bootstrap: Bootstrap, rng: np.random.Generator, source: int = 0
    ):
        self.envs, self.act, self.bootstrap, self.rng = envs, act, bootstrap, rng
        self.source = source  # the rollouts of group g come from source + g (a Ray worker: its index)
        self.x = [np.zeros((e.num_envs, 0), np.int8) for e in envs]  # per group: (n, 6400) current inputs
        self.pending: list[tuple | None] = [None] * len(envs)  # per group: (inputs, extras) of the step in flight
        self.next_group = 0
        self.turns = 0

    def reset(self) -> None:
        self.x = [env.reset() for env in self.envs]

    def collect(
        self, params, steps: int | None = None, episodes: int | None = None, budget: int | None = None
    ) -> list[Rollout]:
        """Play with `params` until every group has `steps` steps, or `episodes`
        episodes have ended, or `budget` env steps were taken (whichever comes
        first; at least one condition must be given). Returns one rollout per group."""
        if steps is None and episodes is None and budget is None:
            raise ValueError("collect needs steps, episodes or budget")
        recs = [Recording() for _ in self.envs]
        ended = taken = 0
        while True:
            g = self.next_group
            if self.pending[g] is not None:
                taken += self.envs[g].num_envs
                ended += self._receive(g, recs[g], taken)
                full = steps is not None and all(len(r.rewards) >= steps for r in recs)
                if full or (episodes is not None and ended >= episodes) or (budget is not None and taken >= budget):
                    break
            if steps is None or len(recs[g].rewards) < steps:
                self._send(g, params)
            elif all(p is None for p in self.pending):
                raise RuntimeError("no group of games can move")
            self.next_group = (g + 1) % len(self.envs)
        return [
            r.rollout(self.source + g, e.num_envs, self.bootstrap(params, self.x[g], e.cur))
            for g, (r, e) in enumerate(zip(recs, self.envs))
        ]

    def _send(self, g: int, params) -> None:
        env = self.envs[g]
        actions, xs, extras = self.act(params, self.x[g], env.cur, self.rng)
        env.send(actions)
        self.pending[g] = (xs, extras)

    def _receive(self, g: int, rec: Recording, taken: int) -> int:
        env = self.envs[g]
        actions = env.pending
        pending = self.pending[g]
        assert pending is not None  # collect receives only a group with a step in flight
        xs, extras = pending
        self.pending[g] = None
        self.x[g], rewards, dones, finished = env.recv()
        self.turns += 1
        rec.blocks.append(xs)
        rec.actions.append(actions)
        rec.rewards.append(rewards)
        rec.dones.append(dones)
        rec.extras.append(extras)
        rec.finished += [EpisodeEnd(f.env, f.ret, f.length, self.turns, taken) for f in finished]
        return len(finished)

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # -- exact save and restore
    def state(self) -> dict[str, np.ndarray]:
        out = {"next_group": np.int64(self.next_group), "turns": np.int64(self.turns), "rng": rng_state(self.rng)}
        for g, env in enumerate(self.envs):
            out |= {f"env{g}/{k}": v for k, v in env.state().items()}
            pending = self.pending[g]
            if pending is not None:
                xs, extras = pending
                out |= {f"pending{g}/x/indptr": xs.indptr, f"pending{g}/x/cols": xs.cols, f"pending{g}/x/vals": xs.vals}
                out |= {f"pending{g}/{k}": np.asarray(v) for k, v in extras.items()}
        return out

    def schema(self) -> dict[str, Spec]:
        """What the saved collector must be, besides its games (env.STATE) and the inputs in flight."""
        return {
            "next_group": Spec("int64", (), lo=0, hi=len(self.envs) - 1),
            "turns": Spec("int64", (), lo=0),
            "rng": Spec("uint64", (6,)),
        }

    def restore(self, s: dict[str, np.ndarray]) -> None:
        """Put the collector back where `state()` found it, its games included."""
        check(s, self.schema(), what="the collector's state")
        for g, env in enumerate(self.envs):
            self.x[g] = env.restore(section(s, f"env{g}/"))
            p = section(s, f"pending{g}/")
            if env.pending is not None:
                check_saved(p, "x/", env.num_envs, MAX_INPUTS, f"the inputs in flight of group {g}")
                check(p, IN_FLIGHT, {"n": env.num_envs}, f"the inputs in flight of group {g}")
                xs = SparseRows(p.pop("x/indptr"), p.pop("x/cols"), p.pop("x/vals"))
                self.pending[g] = (xs, p)
        set_rng_state(self.rng, s["rng"])
        self.next_group, self.turns = int(s["next_group"]), int(s["turns"])


def finished_in_order(rollouts: list[Rollout]) -> list[tuple[int, EpisodeEnd]]:
    """(source, episode) of every episode the rollouts saw end, in the order they ended."""
    ends = [(f.turn, r.source, k, f) for r in rollouts for k, f in enumerate(r.finished)]
    return [(source, f) for _, source, _, f in sorted(ends, key=lambda e: e[:3])]
