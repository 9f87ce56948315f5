"""The emulators behind `PongVecEnv`: N Pong games, in child processes.

`Games` splits N games over child processes (`emulator_process`), which step while
the learner works: seeding (`seed`: a seeded start reloads the ROM, ~0.2 s a game),
stepping, and saving and restoring every game's whole state (as two arrays:
`states_to_arrays`). Each child runs `serve_games`: its games (`ale_games.AleGames`)
answering the parent's commands (`emulator_protocol`); with no processes,
`LocalGames` runs them in this process. A finished game is reset at once and goes
on with its own random streams.

In `send`/`step`, an action id of -1 leaves that game as it is. A child that
dies or stops answering raises `EmulatorError` (a one-line user error).
"""

from __future__ import annotations

import warnings

import numpy as np

from .ale_games import AleGames
from .emulator_process import (
    EmulatorError,  # noqa: F401  (what a dead or stopped child raises)
    GamesProcess,
)
from .emulator_protocol import PACKED, decode_states, encode_states, handle, serve, unpack_frames


def gym_module():
    """gymnasium, with ale-py's envs registered and its start-up banner off."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no start-up banner
    return gym


def make(env_id: str, **kwargs):
    """gymnasium.make, without its warning that an old id (the tutorial's Pong-v0) is out of date:
    the user chose it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        return gym_module().make(env_id, **kwargs)


class LocalGames:
    """`GamesProcess`'s interface over games in this process (no child)."""

    def __init__(self, spec: dict, k: int):
        self.games, self.k, self._reply = AleGames(spec, k), k, b""

    def send(self, command: bytes, payload: bytes = b"") -> None:
        self._reply = handle(self.games, command, payload)

    def reply(self) -> bytes:
        return self._reply

    def close(self) -> None:
        pass

    quit = join = close


class Games:
    """N ALE games split over `processes` child processes (0: stepped in this process)."""

    def __init__(self, spec_kwargs: dict, n: int, processes: int):
        bounds = np.linspace(0, n, max(processes, 1) + 1).astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        make_part = GamesProcess if processes > 0 else LocalGames
        self.parts = []
        try:
            for s in self.slices:
                self.parts.append(make_part(spec_kwargs, s.stop - s.start))
        except BaseException:
            self.close()
            raise
        self.n = n

    def rgb(self, i: int) -> np.ndarray:
        """Game i's screen in colour (210, 160, 3); only for games stepped in this process (processes=0)."""
        part = self.parts[0]
        if not isinstance(part, LocalGames) or len(self.parts) != 1:
            raise RuntimeError("colour screens are read from games stepped in this process only (processes=0)")
        return part.games.rgb(i)

    def _ask(self, command: bytes, payloads: list[bytes]) -> list[bytes]:
        for part, p in zip(self.parts, payloads):
            part.send(command, p)
        return [part.reply() for part in self.parts]

    def seed(self, seeds: np.ndarray) -> np.ndarray:
        """Start every game from its seed (N,) -> frames (N, 80, 80)."""
        replies = self._ask(b"r", [np.asarray(seeds, np.int64)[s].tobytes() for s in self.slices])
        return np.concatenate([unpack_frames(r, s.stop - s.start) for r, s in zip(replies, self.slices)])

    def send(self, actions: np.ndarray) -> None:
        """Start stepping; the emulator processes run while Python does other work."""
        a = np.asarray(actions).astype(np.int8)
        for part, s in zip(self.parts, self.slices):
            part.send(b"s", a[s].tobytes())

    def recv(self):
        frames = np.empty((self.n, 80, 80), np.uint8)
        rewards, dones = np.empty(self.n, np.float32), np.empty(self.n, bool)
        for part, s in zip(self.parts, self.slices):
            r, k = part.reply(), s.stop - s.start
            frames[s] = unpack_frames(r, k)
            rewards[s] = np.frombuffer(r, np.float32, k, k * PACKED)
            dones[s] = np.frombuffer(r, np.bool_, k, k * PACKED + 4 * k)
        return frames, rewards, dones

    def step(self, actions: np.ndarray):
        self.send(actions)
        return self.recv()

    def state(self) -> dict[str, np.ndarray]:
        states = [
            st
            for r, s in zip(self._ask(b"g", [b""] * len(self.parts)), self.slices)
            for st in decode_states(r, s.stop - s.start)
        ]
        return states_to_arrays(states)

    def restore(self, state: dict[str, np.ndarray]) -> None:
        states = arrays_to_states(state, self.n)
        try:
            self._ask(b"p", [encode_states(states[s]) for s in self.slices])
        except (RuntimeError, ValueError) as e:  # RuntimeError: from a child process, or from ale-py here
            raise ValueError(f"the saved games cannot be restored ({str(e).splitlines()[-1]})") from None

    def close(self) -> None:
        """All children asked to leave first, then waited for: they leave together, and one that
        is dead or stopped is ended without holding up the others (never raises, never hangs)."""
        for part in self.parts:
            part.quit()
        for part in self.parts:
            part.join()


def states_to_arrays(states: list[bytes]) -> dict[str, np.ndarray]:
    """Emulator states as arrays: all bytes, and each game's size."""
    return {
        "games": np.frombuffer(b"".join(states), np.uint8).copy(),
        "game_sizes": np.array([len(s) for s in states], np.int64),
    }


def arrays_to_states(state: dict[str, np.ndarray], n: int) -> list[bytes]:
    sizes, data = np.asarray(state["game_sizes"]), np.asarray(state["games"])
    if sizes.shape != (n,) or data.ndim != 1 or (sizes < 1).any() or sizes.sum() != len(data):
        raise ValueError(f"the saved games do not add up to {n} emulator states")
    ends = np.cumsum(sizes)
    return [data[e - s : e].tobytes() for s, e in zip(sizes, ends)]


def serve_games(argv: list[str]) -> None:
    """The child of a `GamesProcess`: its games, serving the parent's commands until it goes."""
    import json
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    fd_in, fd_out, spec, k = argv
    games = AleGames(json.loads(spec), int(k))
    serve(Connection(int(fd_in), writable=False), Connection(int(fd_out), readable=False), games)
