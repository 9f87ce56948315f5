"""Pictures: learning curves, what the network sees (frames), what it learned (weights).

Figures use matplotlib's object API (`matplotlib.figure.Figure`), never pyplot:
nothing selects a backend, so PNGs render headless and notebooks show them inline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import algos, conv
from .errors import UserError
from .inputs import POOLS, kind_of_width
from .logger import EVAL_COLUMNS, METRIC_COLUMNS, read_csv
from .preprocess import D, H, W

DPI = 100
TILE_GAP, UNIT_GAP = 1, 8  # pixels between units' images in the weights mosaic: 8 where a unit has several panels
TITLE_LINE_PX, TITLE_CHAR_PX = 18, 8  # title strip of the weights picture: per line of text, per character
FILTER_TAP_PX = 10  # a convolution filter's tap, drawn as a square of this side


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI)


def save(fig, out: str | Path, dpi: int = DPI) -> Path:
    """Write a figure (format from the file suffix, e.g. .png) -> the path."""
    out = Path(out) if Path(out).suffix else Path(out).with_suffix(".png")  # `-o curve` writes curve.png
    kinds = fig.canvas.get_supported_filetypes()
    if out.suffix.lstrip(".").lower() not in kinds:
        raise UserError(f"cannot write a picture to {out}: its name must end in one of "
                        f"{', '.join('.' + k for k in sorted(kinds))}")
    fig.savefig(out, dpi=dpi)
    return out


# ------------------------------------------------------------------ learning curves
def read_run_curves(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """A run folder's metrics.csv rows and eval.csv rows ([] when it has no evaluations)."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        raise FileNotFoundError(f"no metrics.csv in {run_dir}")
    rows = read_csv(metrics, METRIC_COLUMNS)
    if not rows:
        raise UserError(f"{metrics} has no finished episodes yet")
    evals = run_dir / "eval.csv"
    return rows, (read_csv(evals, EVAL_COLUMNS) if evals.exists() else [])


def agent_curves(agent_path: str | Path) -> tuple[list[dict], list[dict]]:
    """The learning record of an agent file: NAME_metrics.csv and NAME_eval.csv
    beside NAME.npz (how the pretrained agent ships its curve), else the
    metrics.csv and eval.csv of the run folder the file is in."""
    path = Path(agent_path)
    beside = path.with_name(path.stem + "_metrics.csv")
    if beside.exists():
        evals = path.with_name(path.stem + "_eval.csv")
        return read_csv(beside), (read_csv(evals) if evals.exists() else [])
    return read_run_curves(path if path.is_dir() else path.parent)


def curves_figure(metrics: list[dict], evals: list[dict] | None = None, title: str = "",
                  greedy: bool | None = False):
    """Return and running reward against episodes and against env steps; with
    evaluation rows (eval.csv), a third panel: the evaluation score (mean ± std)
    and win rate against env steps. Its title says how the evaluations chose
    actions: `greedy` True (the most likely one), False (sampled) or None (unknown)."""
    panels = 3 if evals else 2
    fig = _figure(5.5 * panels, 4)
    axes = fig.subplots(1, panels, sharey=True)
    cols = {k: [r[k] for r in metrics] for k in ("episode", "env_steps", "return", "running_reward")}
    for ax, xkey, xlabel in ((axes[0], "episode", "episode"), (axes[1], "env_steps", "agent steps")):
        ax.plot(cols[xkey], cols["return"], ".", ms=3, alpha=0.4, label="episode return")
        ax.plot(cols[xkey], cols["running_reward"], "-", lw=2, label="running reward (EMA 0.99)")
        ax.set_xlabel(xlabel)
    if evals:
        _eval_panel(axes[2], evals, greedy)
        axes[1].sharex(axes[2])
    for ax in axes:
        ax.axhline(0, color="gray", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (agent − opponent)")
    axes[0].legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _eval_panel(ax, evals: list[dict], greedy: bool | None = False) -> None:
    steps = np.array([r["env_steps"] for r in evals])
    mean = np.array([r["mean"] for r in evals])
    std = np.array([r["std"] for r in evals])
    ax.fill_between(steps, mean - std, mean + std, color="C2", alpha=0.2, label="± std over games")
    ax.plot(steps, mean, "o-", color="C2", ms=3, lw=2, label="evaluation score (mean)")
    ax.set_xlabel("agent steps")
    actions = {True: "greedy actions", False: "sampled actions", None: "actions unknown"}[greedy]
    ax.set_title(f"evaluation ({actions}, full games, held-out seeds)", fontsize=10)
    win = ax.twinx()
    win.plot(steps, [r["win_rate"] for r in evals], ":", color="C3", lw=1.5, label="win rate (right axis)")
    win.set_ylim(-0.02, 1.02)
    win.set_ylabel("win rate (dotted)", color="C3")
    handles = [h for a in (ax, win) for h in a.get_legend_handles_labels()[0]]  # one legend, under the panel
    win.legend(handles, [h.get_label() for h in handles], loc="upper center", bbox_to_anchor=(0.5, -0.16),
               ncol=3, fontsize=8, frameon=False)


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """A run's learning curve (plus its evaluation curve, if it has eval.csv) -> PNG path."""
    run_dir = Path(run_dir)
    metrics, evals = read_run_curves(run_dir)
    fig = curves_figure(metrics, evals, title=f"pongrl: {run_dir.resolve().name}", greedy=evaluates_greedily(run_dir))
    return save(fig, out or run_dir / "learning_curve.png", dpi=110)


def evaluates_greedily(run_dir: str | Path) -> bool | None:
    """Whether a run folder's evaluations play the most likely action: its
    config.json's eval_greedy (False in a config that predates the field, which
    always sampled), or None when config.json is missing or unreadable."""
    try:
        saved = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return saved.get("eval_greedy", False) is True if isinstance(saved, dict) else None


# ------------------------------------------------------------------ frames
def sample_frames(env_id: str = "ALE/Pong-v5", seed: int = 0, steps: int = 60):
    """A raw RGB frame (210, 160, 3), its 80x80 binary version and the difference
    frame (80, 80) int8 with the frame before, after `steps` random moves."""
    from .env import make_env
    from .preprocess import preprocess

    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    try:
        obs, _ = env.reset(seed=seed)
        prev = obs
        for _ in range(steps):
            prev = obs
            obs, *_ = env.step(int(rng.integers(2, 4)))
    finally:
        env.close()
    return obs, preprocess(obs), preprocess(obs).astype(np.int8) - preprocess(prev).astype(np.int8)


def frames_figure(raw: np.ndarray, binary: np.ndarray, diff: np.ndarray):
    """Raw frame | preprocessed 80x80 | difference frame, side by side (1000x420 px)."""
    fig = _figure(10, 4.2)
    axes = fig.subplots(1, 3)
    axes[0].imshow(raw)
    axes[0].set_title(f"raw frame {'×'.join(map(str, raw.shape))}")
    axes[1].imshow(binary, cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("preprocessed 80×80 (0/1)")
    axes[2].set_title(f"difference frame ({int((diff != 0).sum())} nonzero)")
    key = fig.colorbar(axes[2].imshow(diff, cmap="bwr", vmin=-1, vmax=1), ax=axes[2], ticks=[-1, 0, 1], fraction=0.05)
    key.ax.set_yticklabels(["−1 blue: was\nthere, now gone", "0", "+1 red: new\nhere now"], fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_frames(out: str | Path, env_id: str = "ALE/Pong-v5", seed: int = 0) -> Path:
    """Raw frame | preprocessed 80x80 | difference frame, side by side -> PNG path."""
    return save(frames_figure(*sample_frames(env_id, seed)), out)


# ------------------------------------------------------------------ weights
def unit_images(W1: np.ndarray) -> np.ndarray:
    """W1 (U, inputs) -> (U, 80, 80 n): each hidden unit's input weights as an
    image, its n input panels side by side.

    Difference-frame inputs (REINFORCE's, PPO's 'diff') are one panel. PPO's
    'frame+diff' inputs are two: the current frame's 6400 pixels on the left,
    the difference frame's on the right. 'frame+diff+coarse' adds two panels of
    20x20 block weights (frame, then difference), each block drawn as the 4x4
    pixels it covers; 'frame+diff+pyramid' two more of 10x10 blocks (8x8 pixels),
    and 'frame+diff+pyramid3' two more again of 5x5 blocks (16x16 pixels)."""
    units, d = W1.shape
    kind = kind_of_width(d)
    W1 = np.asarray(W1)
    k = d // D  # pixel panels: 1 or 2
    panels, start = [W1[:, :k * D].reshape(units, k, H, W)], k * D  # (U, k, 80, 80)
    for pool in POOLS[kind]:
        side = H // pool
        blocks = W1[:, start:start + 2 * side * side].reshape(units, 2, side, side)  # (U, 2, side, side)
        panels.append(blocks.repeat(pool, axis=2).repeat(pool, axis=3))  # (U, 2, 80, 80)
        start += 2 * side * side
    return np.concatenate(panels, axis=1).transpose(0, 2, 1, 3).reshape(units, H, -1)  # (U, 80, 80 n)


def scale_blocks(images: np.ndarray, inputs: int) -> np.ndarray:
    """Rescale each level of block panels of unit_images (U, 80, 80 n), frame and
    difference together, to the largest |weight| of each unit's pixel panels: one
    block weight stands for 16 or 64 pixels and would otherwise dwarf them."""
    k = inputs // D
    fine = images[:, :, :k * W]  # (U, 80, 80 k)
    top_fine = np.abs(fine).max(axis=(1, 2), keepdims=True)  # (U, 1, 1)
    out = [fine]
    for start in range(k * W, images.shape[2], 2 * W):  # one level: frame | diff blocks
        level = images[:, :, start:start + 2 * W]  # (U, 80, 160)
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
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tiles[i] / scale[i]
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
    fig = _figure(width / DPI, (height + strip) / DPI)
    ax = fig.add_axes((0, 0, 1, height / (height + strip)))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(image, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    fig.text(0.5, 1 - 0.5 * strip / (height + strip), "\n".join(lines), ha="center", va="center", fontsize=10)
    return fig


def initial_params(cfg) -> dict[str, np.ndarray]:
    """The parameters a run of this Config started from: those of cfg.init_from
    (a fine-tuned run), else the random ones of its seed."""
    from .runs import init_weights

    if cfg.init_from is not None:
        if not Path(cfg.init_from).exists():
            raise FileNotFoundError(f"this agent was fine-tuned from {cfg.init_from}, which is not here")
        return init_weights(cfg)
    return algos.get(cfg.algo).init_params(cfg, np.random.default_rng(cfg.seed))


def weights_title(params: dict[str, np.ndarray], algo: str, units: int, minus_init: bool = False) -> str:
    change = " (minus their initial values)" if minus_init else ""
    if "Wc" in params:
        return (f"{algo}: {units} of {params['Wc'].shape[1]} convolution filters, 8×8 taps on the frame (left) "
                f"and the difference frame (right){change}")
    d = params["W1"].shape[1]
    blocks = " and ".join(f"{p}×{p}" for p in POOLS[kind_of_width(d)])
    what = {D: "80×80 difference-frame weights",
            2 * D: "weights on the frame (left) and difference frame (right)"}.get(
        d, f"weights on the frame, the difference frame, and the {blocks} blocks of each (left to right; "
           "the blocks on their own scale)")
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
