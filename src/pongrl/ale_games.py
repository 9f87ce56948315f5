"""Pong games on ale-py, the work of one emulator process: `AleGames`.

Each game is one ale-py ALEInterface, stepped in a loop. Screens are read as
palette indices and binarised to the tutorial's 80x80 frames (pongrl.preprocess's
grayscale rule, learnt once per palette index).

pongrl draws the env's randomness itself, per game: sticky actions (with
probability repeat_action_probability a frame keeps the previous frame's
action, as ALE does) and, for envs such as the tutorial's Pong-v0, the random
frameskip. ALE's own sticky actions remember the last action outside the state
it can save; these are saved with the game (`states`: the emulator's state, then
`rand_state` and the last action), so a restored game goes on exactly.
"""

from __future__ import annotations

import random

import numpy as np

from .preprocess import preprocess_gray

UNSEEN = 255  # a palette index whose class is not known yet
STICKY_STREAM = 7  # the generator of a game seeded s is random.Random(s * 1_000_003 + 7)
TAIL = 625 * 4 + 8  # bytes after the ALE state in a saved game: its generator and its last action


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
        # get_rom_path gives None only for a game ale-py does not know; loadROM then refuses it
        ale.loadROM(self.rom)  # type: ignore[arg-type]
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
        return [
            ale.cloneState(include_rng=True).serialize() + rand_state(rand) + np.int64(last).tobytes()
            for ale, rand, last in zip(self.ales, self.rands, self.last)
        ]

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
