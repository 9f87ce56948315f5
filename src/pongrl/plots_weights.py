"""Pictures of what a network learned: its first-layer weights as images.

Each hidden unit's row of W1 is drawn as the screen it looks at (the frame
and difference-frame panels, then the block panels of its input kind); a
network with a convolution is drawn by its filters. Figures use matplotlib's
object API, as in pongrl.plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import algos, conv
from .agent import initial_params
from .inputs import POOLS, kind_of_width
from .plots import DPI, figure, save
from .preprocess import D, H, W

TILE_GAP, UNIT_GAP = 1, 8  # pixels between units' images in the weights mosaic: 8 where a unit has several panels
TITLE_LINE_PX, TITLE_CHAR_PX = 18, 8  # title strip of the weights picture: per line of text, per character
FILTER_TAP_PX = 10  # a convolution filter's tap, drawn as a square of this side


def unit_images(W1: np.ndarray) -> np.ndarray:
    """W1 (U, inputs) -> (U, 80, 80 n): each hidden unit's input weights as an
    image, its n input panels side by side.

    Difference-frame inputs (REINFORCE's, PPO's 'diff') are one panel. PPO's
    'frame+diff' inputs are two: the current frame's 6400 pixels on the left,
    the difference frame's on the right. 'frame+diff+pyramid' adds two panels of
    20x20 block weights (frame, then difference), each block drawn as the 4x4
    pixels it covers, and two more of 10x10 blocks (8x8 pixels)."""
    units, d = W1.shape
    kind = kind_of_width(d)
    W1 = np.asarray(W1)
    k = d // D  # pixel panels: 1 or 2
    panels, start = [W1[:, : k * D].reshape(units, k, H, W)], k * D  # (U, k, 80, 80)
    for pool in POOLS[kind]:
        side = H // pool
        blocks = W1[:, start : start + 2 * side * side].reshape(units, 2, side, side)  # (U, 2, side, side)
        panels.append(blocks.repeat(pool, axis=2).repeat(pool, axis=3))  # (U, 2, 80, 80)
        start += 2 * side * side
    return np.concatenate(panels, axis=1).transpose(0, 2, 1, 3).reshape(units, H, -1)  # (U, 80, 80 n)


def scale_blocks(images: np.ndarray, inputs: int) -> np.ndarray:
    """Rescale each level of block panels of unit_images (U, 80, 80 n), frame and
    difference together, to the largest |weight| of each unit's pixel panels: one
    block weight stands for 16 or 64 pixels and would otherwise dwarf them."""
    k = inputs // D
    fine = images[:, :, : k * W]  # (U, 80, 80 k)
    top_fine = np.abs(fine).max(axis=(1, 2), keepdims=True)  # (U, 1, 1)
    out = [fine]
    for start in range(k * W, images.shape[2], 2 * W):  # one level: frame | diff blocks
        level = images[:, :, start : start + 2 * W]  # (U, 80, 160)
        top = np.abs(level).max(axis=(1, 2), keepdims=True)  # (U, 1, 1)
        top[top == 0] = 1.0
        out.append(level / top * top_fine)
    return np.concatenate(out, axis=2)


def unit_order(params: dict[str, np.ndarray], algo: str) -> np.ndarray:
    """First-layer hidden units, most influential on the policy first (pongrl.algos: unit_weights)."""
    return np.argsort(-algos.get(algo).unit_weights(params), kind="stable")


def grid_shape(n: int, tile_h: int, tile_w: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid of n tiles of tile_h x tile_w."""
    cols = max(1, int(np.ceil(np.sqrt(n * tile_h / tile_w))))
    return int(np.ceil(n / cols)), cols


def mosaic(tiles: np.ndarray, gap: int = TILE_GAP) -> np.ndarray:
    """(N, h, w) tiles -> one image, row-major on a near-square grid; each tile is
    scaled by its largest |value| to [-1, 1]; gaps and empty cells are NaN."""
    n, h, w = tiles.shape
    rows, cols = grid_shape(n, h, w)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    scale = np.abs(tiles).reshape(n, -1).max(axis=1)  # (N,)
    scale[scale == 0] = 1.0
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tiles[i] / scale[i]
    return out


def weights_image(params: dict[str, np.ndarray], algo: str, units: int | None = None) -> np.ndarray:
    """The mosaic of weights_figure. A network with a convolution (Wc) draws its
    filters instead: each 8x8 tap on the frame | the difference, 10 px a tap."""
    if "Wc" in params:
        filters = conv.filter_images(params["Wc"][:, :units].astype(np.float64))  # (F, 8, 16)
        return mosaic(filters.repeat(FILTER_TAP_PX, axis=1).repeat(FILTER_TAP_PX, axis=2), UNIT_GAP)
    order = unit_order(params, algo)[:units]
    tiles = scale_blocks(unit_images(params["W1"][order].astype(np.float64)), params["W1"].shape[1])  # (U, 80, 80 n)
    return mosaic(tiles, TILE_GAP if tiles.shape[2] == W else UNIT_GAP)


def weights_figure(params: dict[str, np.ndarray], algo: str, units: int | None = None, title: str = ""):
    """A grid of the hidden units' input weights (rows of W1), each drawn as an
    80x80 image (80x160 for 'frame+diff': frame | diff; then 80x160 more per level of blocks), red positive, blue
    negative, each unit on its own scale (8 px apart if it has several panels); most influential first. One
    weight is one pixel: the picture is the mosaic's size plus a title strip."""
    import textwrap

    import matplotlib

    image = weights_image(params, algo, units)
    height, width = image.shape
    total = params["Wc"].shape[1] if "Wc" in params else params["W1"].shape[0]
    title = title or weights_title(params, algo, min(units or total, total))
    lines = textwrap.wrap(title, max(10, width // TITLE_CHAR_PX))
    strip = TITLE_LINE_PX * (len(lines) + 1)  # px
    fig = figure(width / DPI, (height + strip) / DPI)
    ax = fig.add_axes((0, 0, 1, height / (height + strip)))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(image, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    fig.text(0.5, 1 - 0.5 * strip / (height + strip), "\n".join(lines), ha="center", va="center", fontsize=10)
    return fig


def weights_title(params: dict[str, np.ndarray], algo: str, units: int, minus_init: bool = False) -> str:
    change = " (minus their initial values)" if minus_init else ""
    if "Wc" in params:
        return (
            f"{algo}: {units} of {params['Wc'].shape[1]} convolution filters, 8×8 taps on the frame (left) "
            f"and the difference frame (right){change}"
        )
    d = params["W1"].shape[1]
    blocks = " and ".join(f"{p}×{p}" for p in POOLS[kind_of_width(d)])
    what = {D: "80×80 difference-frame weights", 2 * D: "weights on the frame (left) and difference frame (right)"}.get(
        d,
        f"weights on the frame, the difference frame, and the {blocks} blocks of each (left to right; "
        "the blocks on their own scale)",
    )
    return f"{algo}: {units} of {params['W1'].shape[0]} hidden units, most influential first; {what}{change}"


def agent_weights_figure(agent, units: int | None = None, minus_init: bool = False):
    """The weights mosaic of an Agent (pongrl.evaluate.Agent). With `minus_init`,
    draw what training changed: W1 minus the run's initial W1."""
    params = dict(agent.params)
    drawn = "Wc" if "Wc" in params else "W1"  # filters (columns of Wc) or hidden units (rows of W1)
    if minus_init:
        params[drawn] = params[drawn].astype(np.float64) - initial_params(agent.cfg)[drawn]
    total = params["Wc"].shape[1] if drawn == "Wc" else params["W1"].shape[0]
    n = min(units or total, total)
    return weights_figure(params, agent.cfg.algo, n, weights_title(params, agent.cfg.algo, n, minus_init))


def plot_weights(agent, out: str | Path, units: int | None = None, minus_init: bool = False) -> Path:
    """`agent_weights_figure` -> PNG path."""
    return save(agent_weights_figure(agent, units, minus_init), out)
