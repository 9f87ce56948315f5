"""Pong games for the agent: N games in lockstep that hand out difference frames.

`PongVecEnv` steps N Pong games at once and returns, for every game, the
tutorial's input: the difference of two consecutive 80x80 binary frames, as
int8. Two backends binarise the screen to the same frames (a test checks the
grayscale rule against the tutorial's channel-0 rule), though their sticky-action
random streams differ, so one seed gives different games on each:

- "ale": ale-py's `AtariVectorEnv` (C++ threads, grayscale frames), used when
  the env has a fixed frameskip (ALE/Pong-v5, PongNoFrameskip-v4, ...);
- "gym": one `gymnasium.make` env per game, stepped in a loop; used for envs
  such as the tutorial's Pong-v0, whose frameskip is random.

Every episode is reset with its own seed, drawn from a counter, so a run can be
restored exactly: `state()` records each game's episode seed and the actions
taken since, and `restore()` resets and replays them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .emulators import AleBackend, GymBackend, gym_module, make, uses_ale_vector
from .errors import UserError
from .preprocess import D, frame_diff

UP, DOWN = 2, 3  # ALE's RIGHT and LEFT, which move Pong's right paddle up and down
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
    turn: int = 0  # the collector's turn in which it ended: orders episodes across groups
    taken: int = 0  # env steps the rollout had taken when it ended (for logs)


class PongVecEnv:
    """N Pong games in lockstep, returning flat int8 difference frames (N, 6400).

    Each game is seeded at an *anchor*: at the start, and then at the first
    episode end after it has played `reseed_every` steps since its last anchor.
    In between, finished games restart from their own RNG. The anchor schedule
    depends only on step counts, so the games are a pure function of the run's
    seed and the actions; `state()` keeps each game's anchor seed and actions
    since, and `restore()` replays them (at most ~reseed_every steps per game).
    """

    def __init__(self, env_id: str, num_envs: int, seed: int, split: int = TRAIN_SEEDS,
                 backend: str = "auto", num_threads: int | None = None, reseed_every: int = 20_000,
                 stream: int = 0, streams: int = 1):
        check_env_id(env_id)
        spec_kwargs = dict(gym_module().spec(env_id).kwargs)
        if backend == "auto":
            backend = "ale" if uses_ale_vector(spec_kwargs) else "gym"
        if backend not in ("ale", "gym"):
            raise ValueError(f"backend must be 'auto', 'ale' or 'gym', got {backend!r}")
        threads = num_threads or min(num_envs, os.cpu_count() or 1)
        self.backend_name = backend
        self._be = AleBackend(spec_kwargs, num_envs, threads) if backend == "ale" else GymBackend(env_id, num_envs)
        self.env_id, self.num_envs, self.seed, self.split = env_id, num_envs, seed, split
        self.reseed_every = reseed_every
        self.stream, self.streams = stream, streams  # several envs of one run draw disjoint seeds
        self.pending: np.ndarray | None = None  # actions sent, results not yet received
        n = num_envs
        self.anchors = 0  # anchors made so far: the k-th uses episode_seed(seed, k)
        self.cur = np.zeros((n, 80, 80), np.uint8)  # binary frame now on screen
        self.prev = np.zeros((n, 80, 80), np.uint8)
        self.anchor_seed = np.zeros(n, np.int64)
        self.ep_return = np.zeros(n, np.float64)
        self.ep_len = np.zeros(n, np.int64)
        self._log = np.zeros((1024, n), np.uint8)  # actions since each game's anchor
        self._t = 0
        self._anchor_t = np.zeros(n, np.int64)

    # -- anchors and the action log
    def _anchor(self, mask: np.ndarray) -> None:
        ks = self.anchors + np.arange(int(mask.sum()))
        self.anchors += len(ks)
        seeds = np.array([episode_seed(self.seed, int(k) * self.streams + self.stream, self.split) for k in ks],
                         np.int64)
        frames = self._be.reseed(mask, seeds)
        self.anchor_seed[mask] = seeds
        self.cur[mask] = self.prev[mask] = frames[mask]
        self._anchor_t[mask] = self._t

    def _log_actions(self, actions: np.ndarray) -> None:
        if self._t == len(self._log):
            keep = int(self._anchor_t.min())
            if keep < len(self._log) // 2:  # grow
                self._log = np.concatenate([self._log, np.zeros_like(self._log)])
            else:  # drop rows no game needs any more
                self._log[: self._t - keep] = self._log[keep:self._t]
                self._t -= keep
                self._anchor_t -= keep
        self._log[self._t] = actions
        self._t += 1

    # -- the gymnasium-like API
    def reset(self) -> np.ndarray:
        """Start every game; returns zero inputs (N, 6400) int8."""
        self._anchor(np.ones(self.num_envs, bool))
        self.ep_return[:] = 0.0
        self.ep_len[:] = 0
        return np.zeros((self.num_envs, D), np.int8)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Finished]]:
        """Act in every game. Returns inputs x (N, 6400) int8, rewards (N,) float32,
        dones (N,) bool and the finished episodes. A finished game restarts at once,
        so its next input is zeros."""
        self.send(actions)
        return self.recv()

    def send(self, actions: np.ndarray) -> None:
        """First half of `step`: the games start stepping in the background (ALE backend)."""
        if self.pending is not None:
            raise RuntimeError("send() twice without recv()")
        self.pending = np.asarray(actions)
        self._be.send(self.pending)

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Finished]]:
        """Second half of `step`: wait for the games and return what `step` returns."""
        if self.pending is None:
            raise RuntimeError("recv() without send()")
        self._log_actions(self.pending)
        self.pending = None
        frames, rewards, dones = self._be.recv()
        self.ep_return += rewards
        self.ep_len += 1
        self.prev, self.cur = self.cur, frames
        finished = []
        if dones.any():
            finished = [Finished(int(i), float(self.ep_return[i]), int(self.ep_len[i])) for i in np.flatnonzero(dones)]
            self.prev[dones] = self.cur[dones]  # first input of an episode is zeros
            self.ep_return[dones] = 0.0
            self.ep_len[dones] = 0
            due = dones & (self._t - self._anchor_t >= self.reseed_every)
            if due.any():
                self._anchor(due)
        return frame_diff(self.cur, self.prev), rewards, dones, finished

    def close(self) -> None:
        self._be.close()

    # -- exact save and restore
    def state(self) -> dict[str, np.ndarray]:
        """Arrays to rebuild this env exactly, actions in flight (sent, not received) included."""
        lengths = self._t - self._anchor_t
        logs = [self._log[s:self._t, i] for i, s in enumerate(self._anchor_t)]
        return {
            "anchors": np.int64(self.anchors),
            "anchor_seed": self.anchor_seed.copy(),
            "log_lengths": lengths.astype(np.int64),
            "log_actions": np.concatenate(logs),
            "ep_return": self.ep_return.copy(),
            "ep_len": self.ep_len.copy(),
            "pending": np.zeros(0, np.int64) if self.pending is None else self.pending.astype(np.int64),
        }

    def restore(self, state: dict[str, np.ndarray], report=None) -> np.ndarray:
        """Put every game back where `state()` found it: reseed it from its anchor and
        replay its actions. Returns the current inputs (N, 6400)."""
        n = self.num_envs
        check_state(state, n, self.reseed_every)
        lengths = np.asarray(state["log_lengths"], np.int64)
        seeds = np.asarray(state["anchor_seed"], np.int64)
        logs = np.split(np.asarray(state["log_actions"], np.uint8), np.cumsum(lengths)[:-1])
        longest = int(lengths.max(initial=0))
        begin = longest - lengths  # replay step at which each game starts from its anchor
        replay(self._be, seeds, logs, begin, self.cur, self.prev, report)
        self.anchors = int(state["anchors"])
        self.anchor_seed[:] = seeds
        self.ep_return[:] = state["ep_return"]
        self.ep_len[:] = state["ep_len"]
        self._log = np.zeros((max(1024, 2 * longest), n), np.uint8)
        for i, log in enumerate(logs):
            self._log[longest - len(log):longest, i] = log
        self._t = longest
        self._anchor_t = begin.copy()
        pending = np.asarray(state.get("pending", np.zeros(0)), np.int64)
        if len(pending):
            self.send(pending)
        return frame_diff(self.cur, self.prev)


ACTIONS = 6  # Pong's minimal action set: ids 0-5
MAX_EPISODE_STEPS = 27_000  # 108,000 frames at frameskip 4


def check_state(state: dict[str, np.ndarray], n: int, reseed_every: int) -> None:
    """An env state fits n games and can be replayed: ValueError saying what is wrong.
    A game's log is never longer than reseed_every plus one episode."""
    shapes = {"anchor_seed": (n,), "log_lengths": (n,), "ep_return": (n,), "ep_len": (n,), "anchors": ()}
    for key, shape in shapes.items():
        if key not in state or np.shape(state[key]) != shape:
            raise ValueError(f"env state {key} is missing or not of shape {shape} ({n} games)")
    lengths, log = np.asarray(state["log_lengths"]), np.asarray(state["log_actions"])
    if lengths.min(initial=0) < 0 or lengths.max(initial=0) > reseed_every + MAX_EPISODE_STEPS:
        raise ValueError(f"env state logs have lengths outside [0, {reseed_every + MAX_EPISODE_STEPS}]")
    if log.ndim != 1 or len(log) != lengths.sum():
        raise ValueError("env state log_actions do not add up to its log_lengths")
    pending = np.asarray(state.get("pending", np.zeros(0, np.int64)))
    for key, a in (("log_actions", log), ("pending", pending)):
        if len(a) and (a.min() < 0 or a.max() >= ACTIONS):
            raise ValueError(f"env state {key} holds action ids outside 0-{ACTIONS - 1}")
    if pending.shape not in ((0,), (n,)):
        raise ValueError(f"env state pending actions are not for {n} games")


def replay(backend, seeds: np.ndarray, logs: list[np.ndarray], begin: np.ndarray, cur: np.ndarray,
           prev: np.ndarray, report=None) -> None:
    """Reseed every game from its anchor seed and replay its logged actions, the
    longest log first: game i starts at replay step begin[i], so all end together.
    Fills cur and prev (N, 80, 80) with the frames where the games now are.
    report(k), if given, hears every 1,000 replayed steps (a progress bar)."""
    longest = max((b + len(log) for b, log in zip(begin, logs)), default=0)
    cur[:] = prev[:] = backend.reseed(np.ones(len(seeds), bool), seeds)
    for k in range(longest + 1):
        starting = (begin == k) & (k > 0)
        if starting.any():
            cur[starting] = prev[starting] = backend.reseed(starting, seeds[starting])[starting]
        if k == longest:
            break
        acts = np.array([log[k - b] if k >= b else 0 for log, b in zip(logs, begin)], np.int64)
        frames, _, dones = backend.step(acts)
        if report is not None and k % 1000 == 999:
            report(1000)
        going = begin <= k
        prev[going], cur[going] = cur[going], frames[going]
        prev[going & dones] = cur[going & dones]
