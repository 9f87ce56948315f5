"""A convolution over the frame and the difference frame, on their nonzero pixels only.

F filters of 8x8 pixels over 2 channels (the frame, then the difference frame),
at stride 4, with no bias, then ReLU: 19x19 windows a side, so 361 F features,
feature (window p, filter f) at column p F + f. A pixel lies in at most 2x2
windows, and a window that holds no pixel gives exactly 0 (there is no bias),
so the features are as sparse as the frames and feed the same sparse first
layer (`Inputs`). The filters Wc (128, F) are shared by every window: what a
filter learns about the ball in one place it knows everywhere.

The input is the compacted 'frame+diff' part of a network's inputs (columns
0..12799: frame pixels, then difference pixels); `actor_critic` passes any block
columns after it straight to the first layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .inputs import Inputs
from .parallel import SERIAL, Pool
from .preprocess import D, H

K, S = 8, 4  # kernel side, stride
CHANNELS = 2  # frame, difference frame
TAPS = CHANNELS * K * K  # 128 weights per filter
OUT = (H - K) // S + 1  # 19 windows a side
P = OUT * OUT  # 361 windows
PIXELS = CHANNELS * D  # 12800 input columns the convolution reads


@dataclass
class Saved:
    """What `backward` needs of a `forward` pass."""

    cols: np.ndarray  # (U,) the feature columns present, as in the returned Inputs
    patches: np.ndarray  # (T, TAPS) the pixels of each touched (sample, window) pair
    z: np.ndarray  # (T, F) the filters' responses there, before ReLU
    sample: np.ndarray  # (T,) the pair's sample
    slot: np.ndarray  # (T,) the pair's window among the windows present


def windows(x: Inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (pixel, window) pair of the nonzero pixels of x (B, 12800): their
    sample (E,), window (E,), tap (E,) in [0, TAPS) and value (E,)."""
    b, u = np.nonzero(x.X)
    c, v = x.cols[u], x.X[b, u]
    ch, y, xx = c // D, c % D // H, c % H
    parts = []
    for dy in (0, 1):  # pixel row y lies in the windows that start at rows 4 (y // 4) and 4 (y // 4 - 1)
        for dx in (0, 1):
            oy, ox = y // S - dy, xx // S - dx
            ok = (oy >= 0) & (oy < OUT) & (ox >= 0) & (ox < OUT)
            tap = ch * K * K + (y - S * oy) * K + (xx - S * ox)
            parts.append((b[ok], (oy * OUT + ox)[ok], tap[ok], v[ok]))
    sample, window, tap, value = (np.concatenate(a) for a in zip(*parts))
    return sample, window, tap, value


def responses(Wc: np.ndarray, x: Inputs, r: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (sample, window) pairs (T,) touched by samples [r0, r1) of x, ascending, as sample P + window;
    their pixels (T, TAPS) and the filters' responses (T, F)."""
    b, window, tap, v = windows(Inputs(x.cols, x.X[r[0] : r[1]]))
    pairs, pair = np.unique((b + r[0]) * P + window, return_inverse=True)
    patches = np.zeros((len(pairs), TAPS), Wc.dtype)
    patches[pair, tap] = v  # each (pixel, window) pair is one tap of one pair: no sums needed
    return pairs, patches, patches @ Wc


def forward(Wc: np.ndarray, x: Inputs, pool: Pool = SERIAL) -> tuple[Inputs, Saved]:
    """Filters Wc (TAPS, F) over inputs x (B, 12800) -> features (B, P F) as Inputs.
    The pool's threads take a range of samples each."""
    n, F = len(x.X), Wc.shape[1]
    parts = pool.run(lambda r: responses(Wc, x, r), pool.ranges(n) or [(0, 0)])
    pairs, patches, z = parts[0] if len(parts) == 1 else (np.concatenate(a) for a in zip(*parts))
    sample, where = pairs // P, pairs % P
    present, slot = np.unique(where, return_inverse=True)  # (W,) windows present in the batch
    X = np.zeros((n, len(present), F), Wc.dtype)
    X[sample, slot] = np.maximum(z, 0)
    cols = (present[:, None] * F + np.arange(F)).reshape(-1)  # (W F,) ascending
    return Inputs(cols, X.reshape(n, -1)), Saved(cols, patches, z, sample, slot)


def backward(dX: np.ndarray, s: Saved) -> np.ndarray:
    """dLoss/dWc (TAPS, F) from dLoss/d features (B, W F), the features' columns s.cols."""
    dz = dX.reshape(len(dX), -1, s.z.shape[1])[s.sample, s.slot] * (s.z > 0)  # (T, F)
    return s.patches.T @ dz


def filter_images(Wc: np.ndarray) -> np.ndarray:
    """Wc (TAPS, F) -> (F, 8, 16): each filter's frame taps (left) and difference taps (right)."""
    F = Wc.shape[1]
    return Wc.T.reshape(F, CHANNELS, K, K).transpose(0, 2, 1, 3).reshape(F, K, CHANNELS * K)
