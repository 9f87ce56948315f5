"""The emulators behind `PongVecEnv`: two backends that step N Pong games.

A backend steps N games and resets finished ones by itself, continuing each
game's own RNG (no seed: a seeded reset reloads the ROM, ~90 ms). `reseed`
starts a new episode in the masked games from the given seeds. Both binarise
the screen to the same 80x80 frames (pongrl.preprocess):

- `AleBackend`: ale-py's `AtariVectorEnv` (C++ threads, grayscale frames), for
  envs with a fixed frameskip (ALE/Pong-v5, PongNoFrameskip-v4, ...);
- `GymBackend`: one `gymnasium.make` env per game, stepped in a loop; for envs
  such as the tutorial's Pong-v0, whose frameskip is random.
"""

from __future__ import annotations

import warnings

import numpy as np

from .preprocess import preprocess, preprocess_gray


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


# A backend steps N games and resets finished ones by itself, continuing each
# game's own RNG (no seed: a seeded reset reloads the ROM, ~90 ms). `reseed`
# starts a new episode in the masked games from the given seeds.
class AleBackend:
    """`AtariVectorEnv` with raw 210x160 grayscale frames and no extra wrappers."""

    def __init__(self, spec_kwargs: dict, n: int, num_threads: int):
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        self.env = AtariVectorEnv(
            spec_kwargs.get("game", "pong"), n, num_threads=num_threads,
            img_height=210, img_width=160, grayscale=True, stack_num=1, maxpool=False,
            frameskip=int(spec_kwargs.get("frameskip", 4)),
            repeat_action_probability=float(spec_kwargs.get("repeat_action_probability", 0.25)),
            max_num_frames_per_episode=int(spec_kwargs.get("max_num_frames_per_episode", 108_000)),
            noop_max=0, reward_clipping=False, use_fire_reset=False, episodic_life=False,
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
        self.n = n

    def reseed(self, mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        if mask.all():
            obs, _ = self.env.reset(seed=seeds.astype(np.int64))
        else:
            obs, _ = self.env.reset(seed=seeds.astype(np.int64), options={"reset_mask": mask})
        return preprocess_gray(obs[:, 0])

    def send(self, actions: np.ndarray) -> None:
        """Start stepping; the emulator threads run while Python does other work."""
        self.env.send(actions.astype(np.int32))

    def recv(self):
        obs, r, term, trunc, _ = self.env.recv()
        return preprocess_gray(obs[:, 0]), r.astype(np.float32), term | trunc

    def step(self, actions: np.ndarray):
        self.send(actions)
        return self.recv()

    def close(self) -> None:
        self.env.close()


class GymBackend:
    """One gymnasium env per game, stepped in a Python loop (any Pong id)."""

    def __init__(self, env_id: str, n: int):
        self.envs = [make(env_id) for _ in range(n)]
        self.frames = np.zeros((n, 80, 80), np.uint8)

    def reseed(self, mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        for i, s in zip(np.flatnonzero(mask), seeds):
            obs, _ = self.envs[i].reset(seed=int(s))
            self.frames[i] = preprocess(obs)
        return self.frames.copy()

    def send(self, actions: np.ndarray) -> None:
        self._actions = actions

    def recv(self):
        return self.step(self._actions)

    def step(self, actions: np.ndarray):
        n = len(self.envs)
        rewards, dones = np.zeros(n, np.float32), np.zeros(n, bool)
        for i, (env, a) in enumerate(zip(self.envs, actions)):
            obs, r, term, trunc, _ = env.step(int(a))
            rewards[i], dones[i] = r, term or trunc
            if dones[i]:
                obs, _ = env.reset()  # the game's RNG goes on: deterministic, and no ROM reload
            self.frames[i] = preprocess(obs)
        return self.frames.copy(), rewards, dones

    def close(self) -> None:
        for e in self.envs:
            e.close()


def uses_ale_vector(spec_kwargs: dict) -> bool:
    return isinstance(spec_kwargs.get("frameskip", 4), int) and not spec_kwargs.get("full_action_space", False)
