"""Pong games for the agent: N games in lockstep that hand out difference frames.

`PongVecEnv` steps N Pong games at once and returns, for every game, the
tutorial's input: the difference of two consecutive 80x80 binary frames, as
int8. The games run in child processes (pongrl.emulators) that step while the
learner works, with the settings of the env id's gymnasium spec (frameskip,
sticky actions); a test checks the grayscale binarisation against the
tutorial's channel-0 rule.

Each game is seeded once, from a counter, and `state()` saves every game's
whole emulator state, so a run is restored exactly and at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .emulators import Games, gym_module, make
from .errors import UserError
from .preprocess import D, frame_diff
from .schema import Spec, check

UP, DOWN = 2, 3  # ALE's RIGHT and LEFT, which move Pong's right paddle up and down
ACTIONS = 6  # Pong's minimal action set: ids 0-5
TRAIN_SEEDS, EVAL_SEEDS = 0, 1


class EnvError(UserError):
    """The env id is not a Pong env that this machine can make."""


def pong_ids() -> list[str]:
    """All registered Pong ids (gymnasium + ale-py)."""
    return sorted(k for k in gym_module().envs.registry if "Pong" in k and "Doubl" not in k)


def check_env_id(env_id: str) -> None:
    ids = pong_ids()
    if env_id not in ids:
        raise EnvError(f"unknown env {env_id!r}; Pong ids are: {', '.join(ids)}")


def make_env(env_id: str, render_mode: str | None = None):
    """One gymnasium Pong env (RGB observations)."""
    check_env_id(env_id)
    return make(env_id, render_mode=render_mode)


def env_info(env_id: str) -> dict:
    """The env's spaces and action meanings, as the tutorial's first section shows them."""
    env = make_env(env_id)
    try:
        return {
            "env_id": env_id,
            "observation_space": str(env.observation_space),
            "action_space": str(env.action_space),
            "action_meanings": env.unwrapped.get_action_meanings(),
            "spec_kwargs": dict(env.spec.kwargs),
        }
    finally:
        env.close()


def episode_seed(seed: int, k: int, split: int = TRAIN_SEEDS) -> int:
    """Reset seed of the k-th episode of a run. Training seeds lie in [0, 2**30),
    evaluation seeds in [2**30, 2**31): the two never meet."""
    return split * 2**30 + (seed * 1_000_003 + k) % 2**30


# --------------------------------------------------------------------------- the vector env
@dataclass
class Finished:
    """One finished episode."""

    env: int
    ret: float  # agent points minus opponent points
    length: int  # agent steps


class PongVecEnv:
    """N Pong games in lockstep, returning flat int8 difference frames (N, 6400).

    Game i is seeded once, by `reset()`, with the run's episode seed number
    i * streams + stream (several envs of one run draw disjoint seeds); its
    later episodes continue the game's own random stream. So the games are a
    pure function of the seed and the actions. `state()` keeps every game's
    whole emulator state, random stream included, and `restore()` puts it back
    as it was, in about the time it takes to start the games.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        seed: int,
        split: int = TRAIN_SEEDS,
        processes: int | None = None,
        stream: int = 0,
        streams: int = 1,
    ):
        check_env_id(env_id)
        spec = {k: v for k, v in gym_module().spec(env_id).kwargs.items() if k != "obs_type"}
        if processes is None:
            processes = min(num_envs, os.cpu_count() or 1)  # 0: the games step in this process
        self._games = Games(spec, num_envs, processes)
        self.env_id, self.num_envs, self.seed, self.split = env_id, num_envs, seed, split
        self.stream, self.streams = stream, streams
        self.pending: np.ndarray | None = None  # actions sent, results not yet received
        self._ready: tuple | None = None  # results of the pending actions, if state() fetched them
        n = num_envs
        self.cur = np.zeros((n, 80, 80), np.uint8)  # binary frame now on screen
        self.prev = np.zeros((n, 80, 80), np.uint8)
        self.ep_return = np.zeros(n, np.float64)
        self.ep_len = np.zeros(n, np.int64)

    def game_seeds(self) -> np.ndarray:
        """The seed of every game: (N,) int64."""
        ks = np.arange(self.num_envs) * self.streams + self.stream
        return np.array([episode_seed(self.seed, int(k), self.split) for k in ks], np.int64)

    # -- the gymnasium-like API
    def reset(self) -> np.ndarray:
        """Start every game; returns zero inputs (N, 6400) int8."""
        self.cur[:] = self.prev[:] = self._games.seed(self.game_seeds())
        self.ep_return[:] = 0.0
        self.ep_len[:] = 0
        return np.zeros((self.num_envs, D), np.int8)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Finished]]:
        """Act in every game. Returns inputs x (N, 6400) int8, rewards (N,) float32,
        dones (N,) bool and the finished episodes. A finished game restarts at once,
        so its next input is zeros. A game whose action id is -1 stands still."""
        self.send(actions)
        return self.recv()

    def send(self, actions: np.ndarray) -> None:
        """First half of `step`: the games start stepping in the background."""
        if self.pending is not None:
            raise RuntimeError("send() twice without recv()")
        self.pending = np.asarray(actions)
        self._games.send(self.pending)

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Finished]]:
        """Second half of `step`: wait for the games and return what `step` returns."""
        if self.pending is None:
            raise RuntimeError("recv() without send()")
        frames, rewards, dones = self._ready or self._games.recv()
        self.ep_return += rewards
        self.ep_len += self.pending >= 0  # an action id of -1 left its game as it was
        self.pending = self._ready = None
        self.prev, self.cur = self.cur, frames
        finished = []
        if dones.any():
            finished = [Finished(int(i), float(self.ep_return[i]), int(self.ep_len[i])) for i in np.flatnonzero(dones)]
            self.prev[dones] = self.cur[dones]  # first input of an episode is zeros
            self.ep_return[dones] = 0.0
            self.ep_len[dones] = 0
        return frame_diff(self.cur, self.prev), rewards, dones, finished

    def rgb(self, i: int = 0) -> np.ndarray:
        """Game i's screen in colour, (210, 160, 3) uint8 (games made with processes=0 only)."""
        return self._games.rgb(i)

    def close(self) -> None:
        self._games.close()

    # -- exact save and restore
    def state(self) -> dict[str, np.ndarray]:
        """Arrays to rebuild this env exactly. Actions in flight are waited for, and
        their results kept for `recv()`."""
        out = {
            "cur": self.cur.copy(),
            "prev": self.prev.copy(),
            "ep_return": self.ep_return.copy(),
            "ep_len": self.ep_len.copy(),
        }
        if self.pending is not None:
            self._ready = self._ready or self._games.recv()
            frames, rewards, dones = self._ready
            out |= {
                "pending": self.pending.astype(np.int64),
                "ready/frames": frames.copy(),
                "ready/rewards": rewards.copy(),
                "ready/dones": dones.copy(),
            }
        return out | self._games.state()

    def restore(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """Put every game back where `state()` found it. Returns the current inputs (N, 6400)."""
        check_state(state, self.num_envs)
        self._games.restore(state)
        self.cur[:], self.prev[:] = state["cur"], state["prev"]
        self.ep_return[:] = state["ep_return"]
        self.ep_len[:] = state["ep_len"]
        self.pending = self._ready = None
        if "pending" in state:
            self.pending = np.asarray(state["pending"], np.int64)
            self._ready = (
                np.array(state["ready/frames"], np.uint8),
                np.array(state["ready/rewards"], np.float32),
                np.array(state["ready/dones"], bool),
            )
        return frame_diff(self.cur, self.prev)


MAX_POINTS = 10**6  # no episode of any Pong env scores this many points
STATE = {  # what `state()` saves for n games; the games themselves are pongrl.emulators'
    "cur": Spec("uint8", ("n", 80, 80), hi=1),
    "prev": Spec("uint8", ("n", 80, 80), hi=1),
    "ep_return": Spec("float64", ("n",), -MAX_POINTS, MAX_POINTS),
    "ep_len": Spec("int64", ("n",), lo=0, hi=2**40),
}
IN_FLIGHT = {  # ... and, with actions in flight, those and their results
    "pending": Spec("int64", ("n",), lo=-1, hi=ACTIONS - 1),
    "ready/frames": Spec("uint8", ("n", 80, 80), hi=1),
    "ready/rewards": Spec("float32", ("n",), -MAX_POINTS, MAX_POINTS),
    "ready/dones": Spec("bool", ("n",)),
}


def check_state(state: dict[str, np.ndarray], n: int) -> None:
    """An env state fits n games: StateError (a ValueError) saying what is wrong."""
    check(state, STATE | (IN_FLIGHT if "pending" in state else {}), {"n": n}, "a game's state")
