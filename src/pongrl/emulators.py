"""The emulators behind `PongVecEnv`: N Pong games, in child processes.

Each game is one ale-py ALEInterface. `Games` splits N games over child
processes (`emulator_process`), which step while the learner works: seeding
(`seed`: a seeded start reloads the ROM, ~0.2 s a game), stepping, and
saving and restoring every game's whole state. A finished game is reset at
once and goes on with its own random streams. Screens are read in grayscale
and binarised to the tutorial's 80x80 frames (pongrl.preprocess).

pongrl draws the env's randomness itself, per game: sticky actions (with
probability repeat_action_probability a frame keeps the previous frame's
action, as ALE does) and, for envs such as the tutorial's Pong-v0, the random
frameskip. ALE's own sticky actions remember the last action outside the state
it can save; these are saved with the game, so a restored game goes on exactly.

In `send`/`step`, an action id of -1 leaves that game as it is. A child that
dies or stops answering raises `EmulatorError` (a one-line user error).
"""

from __future__ import annotations

import random
import warnings

import numpy as np

from .emulator_process import EmulatorError  # noqa: F401  (what a dead or stopped child raises)
from .emulator_process import PACKED, GamesProcess, decode_states, encode_states, handle, serve, unpack_frames
from .preprocess import preprocess_gray

UNSEEN = 255  # a palette index whose class is not known yet
STICKY_STREAM = 7  # the generator of a game seeded s is random.Random(s * 1_000_003 + 7)
TAIL = 625 * 4 + 8  # bytes after the ALE state in a saved game: its generator and its last action


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


# --------------------------------------------------------------------------- ALE games
class AleGames:
    """k Pong games, one ALEInterface each, stepped in a loop (the work of one emulator process).

    Like ale-py's envs: sticky actions drawn every frame, the frameskip (fixed,
    or drawn from [lo, hi) every step), a frameskip that stops at the end of a
    game, and a finished game reset at once. The loop is the hot path of the
    emulator processes: it works on plain Python values, and each game draws
    from its own `random.Random` (Mersenne Twister, seeded from the game's seed)."""

    def __init__(self, spec: dict, k: int):
        import ale_py
        from ale_py import roms

        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        self.rom = roms.get_rom_path(spec.get("game", "pong"))
        skip = spec.get("frameskip", 4)
        self.skip = (int(skip), int(skip) + 1) if isinstance(skip, int) else (int(skip[0]), int(skip[1]))
        self.sticky = float(spec.get("repeat_action_probability", 0.25))
        self.ales = [ale_py.ALEInterface() for _ in range(k)]
        for ale in self.ales:
            ale.setFloat("repeat_action_probability", 0.0)  # drawn here, see the module's docstring
            ale.setInt("max_num_frames_per_episode", int(spec.get("max_num_frames_per_episode", 108_000)))
        self.n = k
        self.rands = [random.Random(0) for _ in range(k)]
        self.last = [0] * k  # action id of each game's last frame (0: NOOP after a reset)
        self.loaded = [False] * k
        self.screens = np.zeros((k, 210, 160), np.uint8)  # palette indices, as the emulator draws them
        self.binary = np.full(256, UNSEEN, np.uint8)  # palette index -> 0 background, 1 not; filled as seen
        self.action_set: list = []

    def _load(self, i: int, seed: int) -> None:
        ale = self.ales[i]
        ale.setInt("random_seed", int(seed))
        ale.loadROM(self.rom)
        ale.reset_game()
        self.rands[i], self.last[i], self.loaded[i] = random.Random(seed * 1_000_003 + STICKY_STREAM), 0, True
        if not self.action_set:
            self.action_set = list(ale.getMinimalActionSet())

    def seed(self, seeds: np.ndarray) -> np.ndarray:
        """Start a new game from seeds[i] where it is >= 0 -> frames (k, 80, 80)."""
        for i in np.flatnonzero(seeds >= 0):
            self._load(int(i), int(seeds[i]))
            self.ales[i].getScreen(self.screens[i])
        return self.frames()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One agent step of every game whose action id is >= 0."""
        rewards, dones = [0] * self.n, [False] * self.n
        for i, a in enumerate(actions.tolist()):
            if a >= 0:
                rewards[i], dones[i] = self._step_one(i, a)
                self.ales[i].getScreen(self.screens[i])
        return self.frames(), np.array(rewards, np.float32), np.array(dones, bool)

    def _step_one(self, i: int, action: int) -> tuple[int, bool]:
        ale, rand, p = self.ales[i], self.rands[i], self.sticky
        lo, hi = self.skip
        frames = lo if hi == lo + 1 else rand.randrange(lo, hi)
        last, r = self.last[i], 0
        for _ in range(frames):
            if rand.random() >= p:  # else this frame keeps the last frame's action
                last = action
            r += ale.act(self.action_set[last])
            if ale.game_over():
                ale.reset_game()
                self.last[i] = 0
                return r, True
        self.last[i] = last
        return r, False

    def frames(self) -> np.ndarray:
        """The screens binarised: (k, 80, 80) uint8. Reading palette indices is much cheaper
        than ALE's grayscale conversion; each index's class comes from that conversion
        (pongrl.preprocess's grayscale rule) the first time the index shows."""
        field = self.screens[:, 35:195:2, ::2]  # (k, 80, 80) palette indices: preprocess's crop
        out = self.binary[field]
        if (out == UNSEEN).any():
            self._learn_colours(field, out == UNSEEN)
            out = self.binary[field]
        return out

    def _learn_colours(self, field: np.ndarray, unseen: np.ndarray) -> None:
        gray = np.zeros((210, 160), np.uint8)
        for i in np.flatnonzero(unseen.any(axis=(1, 2))):
            self.ales[i].getScreenGrayscale(gray)
            binary = preprocess_gray(gray)  # (80, 80)
            self.binary[field[i][unseen[i]]] = binary[unseen[i]]

    def rgb(self, i: int) -> np.ndarray:
        """Game i's screen in colour, (210, 160, 3) uint8: what a video shows."""
        return self.ales[i].getScreenRGB()

    def states(self) -> list[bytes]:
        """Every game's whole state: the emulator's, its generator and its last action."""
        return [ale.cloneState(include_rng=True).serialize() + rand_state(rand) + np.int64(last).tobytes()
                for ale, rand, last in zip(self.ales, self.rands, self.last)]

    def set_states(self, states: list[bytes]) -> None:
        import ale_py

        for i, s in enumerate(states):
            if len(s) <= TAIL:
                raise ValueError(f"a saved game has {len(s)} bytes, too few for a game")
            if not self.loaded[i]:
                self._load(i, 0)
            self.ales[i].restoreState(ale_py.ALEState(s[:-TAIL]))
            set_rand_state(self.rands[i], s[-TAIL:-8])
            self.last[i] = int(np.frombuffer(s[-8:], np.int64)[0])
            if not 0 <= self.last[i] < len(self.action_set):
                raise ValueError(f"a saved game's last action {self.last[i]} is not an action id")


def rand_state(rand: random.Random) -> bytes:
    """A Mersenne Twister's state (624 words and its position) as 625 uint32."""
    return np.array(rand.getstate()[1], np.uint32).tobytes()


def set_rand_state(rand: random.Random, b: bytes) -> None:
    words = np.frombuffer(b, np.uint32)
    if len(words) != 625 or words[-1] > 624 or not words[:624].any():  # all zero: it would draw only zeros
        raise ValueError("a saved game's generator is damaged")
    rand.setstate((3, tuple(int(w) for w in words), None))


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
        states = [st for r, s in zip(self._ask(b"g", [b""] * len(self.parts)), self.slices)
                  for st in decode_states(r, s.stop - s.start)]
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
    return {"games": np.frombuffer(b"".join(states), np.uint8).copy(),
            "game_sizes": np.array([len(s) for s in states], np.int64)}


def arrays_to_states(state: dict[str, np.ndarray], n: int) -> list[bytes]:
    sizes, data = np.asarray(state["game_sizes"]), np.asarray(state["games"])
    if sizes.shape != (n,) or data.ndim != 1 or (sizes < 1).any() or sizes.sum() != len(data):
        raise ValueError(f"the saved games do not add up to {n} emulator states")
    ends = np.cumsum(sizes)
    return [data[e - s:e].tobytes() for s, e in zip(sizes, ends)]


def serve_games(argv: list[str]) -> None:
    """The child of a `GamesProcess`: its games, serving the parent's commands until it goes."""
    import json
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    fd_in, fd_out, spec, k = argv
    games = AleGames(json.loads(spec), int(k))
    serve(Connection(int(fd_in), writable=False), Connection(int(fd_out), readable=False), games)
