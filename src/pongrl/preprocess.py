"""From a 210x160 Atari frame to the tutorial's 80x80 binary image.

Crop rows 35:195 (the playing field), keep every 2nd row and column, erase the
two background colours and set every other pixel to 1. The result is uint8 in
{0, 1}; the network's input is the difference of two consecutive such frames.
"""

from __future__ import annotations

import numpy as np

H, W = 80, 80
D = H * W  # 6400 inputs

# Channel-0 (red) values of the two background colours, as in the tutorial.
BACKGROUND_RED = (144, 109)
# The same two colours in ALE's grayscale frames (ALE's luminance of the NTSC
# palette entries (144, 72, 17) and (109, 118, 43)); tests check that both
# rules give identical binary frames on real Pong.
BACKGROUND_GRAY = (87, 107)


def _binarise(field: np.ndarray, background: tuple[int, int]) -> np.ndarray:
    out = (field != background[0]) & (field != background[1])
    return out.view(np.uint8)


def preprocess(frame: np.ndarray) -> np.ndarray:
    """RGB frame(s) (..., 210, 160, 3) uint8 -> (..., 80, 80) uint8 in {0, 1}.

    The input is read, never written.
    """
    if frame.shape[-3:] != (210, 160, 3):
        raise ValueError(f"expected RGB frames of shape (..., 210, 160, 3), got {frame.shape}")
    return _binarise(frame[..., 35:195:2, ::2, 0], BACKGROUND_RED)


def preprocess_gray(frame: np.ndarray) -> np.ndarray:
    """Grayscale frame(s) (..., 210, 160) uint8 -> (..., 80, 80) uint8 in {0, 1}."""
    if frame.shape[-2:] != (210, 160):
        raise ValueError(f"expected grayscale frames of shape (..., 210, 160), got {frame.shape}")
    return _binarise(frame[..., 35:195:2, ::2], BACKGROUND_GRAY)


def frame_diff(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Difference of binary frames (..., 80, 80) -> flat int8 inputs (..., 6400) in {-1, 0, 1}."""
    d = cur.astype(np.int8) - prev.astype(np.int8)
    return d.reshape(*d.shape[:-2], D)


class PreviousFrame:
    """The network's input step for one game: each RGB frame becomes the difference
    with the frame before it; a game's first frame has none, so its input is zeros.
    (`pongrl.env.PongVecEnv` takes the same step for N games at once.)"""

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None  # (80, 80) the previous binary frame

    def reset(self) -> None:
        """A new game: forget the previous frame."""
        self.frame = None

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An RGB frame (210, 160, 3) -> its input (6400,) int8 and its binary frame (80, 80)."""
        cur = preprocess(np.asarray(rgb))
        x = frame_diff(cur, cur if self.frame is None else self.frame)
        self.frame = cur
        return x, cur
