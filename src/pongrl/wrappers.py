"""Gymnasium wrappers that give pongrl's preprocessing to any library.

    env = DifferenceFrameObservation(gym.make("ALE/Pong-v5"))
    obs, info = env.reset(seed=0)     # obs: int8 (6400,), all zeros at the start of a game

The observation is the tutorial's input: the difference of the current and the
previous 80x80 binary frame, flattened, with values -1, 0 or +1.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from .preprocess import D, PreviousFrame


class DifferenceFrameObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """RGB Pong frames (210, 160, 3) -> difference frames int8 (6400,) in {-1, 0, 1}."""

    def __init__(self, env: gym.Env):
        shape = getattr(env.observation_space, "shape", None)
        if shape != (210, 160, 3):
            raise ValueError(
                f"DifferenceFrameObservation needs RGB frames of shape (210, 160, 3), "
                f"got an observation space of shape {shape}"
            )
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = gym.spaces.Box(-1, 1, (D,), np.int8)
        self._observe = PreviousFrame()

    def reset(self, *, seed=None, options=None):
        self._observe.reset()  # the first frame of a game has no previous one
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return self._observe(observation)[0]
