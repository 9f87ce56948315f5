"""Pictures: learning curves and what the network sees (frames); what it learned
(weights) is pongrl.plots_weights'.

Figures use matplotlib's object API (`matplotlib.figure.Figure`), never pyplot:
nothing selects a backend, so PNGs render headless and notebooks show them inline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError
from .logfiles import read_csv
from .logger import EVAL_COLUMNS, METRIC_COLUMNS

DPI = 100


def figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI)


def save(fig, out: str | Path, dpi: int = DPI) -> Path:
    """Write a figure (format from the file suffix, e.g. .png) -> the path. It is drawn
    to a temporary file beside `out` (OUT.pongrl-RANDOM.tmp), then renamed: a failure
    (a full disk) leaves no partial picture and no temporary file."""
    from .checkpoint import remove_quietly, replace_with, temp_file

    out = Path(out) if Path(out).suffix else Path(out).with_suffix(".png")  # `-o curve` writes curve.png
    kinds = fig.canvas.get_supported_filetypes()
    kind = out.suffix.lstrip(".").lower()
    if kind not in kinds:
        raise UserError(
            f"cannot write a picture to {out}: its name must end in one of {', '.join('.' + k for k in sorted(kinds))}"
        )
    try:
        fd, tmp = temp_file(out)
    except OSError as e:
        raise UserError(f"cannot write a picture to {out}: {e.strerror or e}") from None
    try:
        with open(fd, "wb") as f:
            fig.savefig(f, dpi=dpi, format=kind)
        replace_with(tmp, out)
    except BaseException:
        remove_quietly(tmp)
        raise
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


def curves_figure(metrics: list[dict], evals: list[dict] | None = None, title: str = "", greedy: bool | None = False):
    """Return and running reward against episodes and against env steps; with
    evaluation rows (eval.csv), a third panel: the evaluation score (mean ± std)
    and win rate against env steps. Its title says how the evaluations chose
    actions: `greedy` True (the most likely one), False (sampled) or None (unknown)."""
    panels = 3 if evals else 2
    fig = figure(5.5 * panels, 4)
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
    win.legend(
        handles,
        [h.get_label() for h in handles],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        fontsize=8,
        frameon=False,
    )


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
    from .config import read_json_object

    try:
        saved = read_json_object(Path(run_dir) / "config.json", "config")
    except (OSError, UserError):
        return None
    return saved.get("eval_greedy", False) is True


# ------------------------------------------------------------------ frames
def sample_frames(env_id: str = "ALE/Pong-v5", seed: int = 0, steps: int = 60):
    """A raw RGB frame (210, 160, 3), its 80x80 binary version and the difference
    frame (80, 80) int8 with the frame before, after `steps` random moves."""
    from .env import PongVecEnv
    from .preprocess import H, W

    env = PongVecEnv(env_id, 1, seed, processes=0)  # the games pongrl trains on, game 0 of seed `seed`
    rng = np.random.default_rng(seed)
    try:
        x = env.reset()
        for _ in range(steps):
            x, *_ = env.step(rng.integers(2, 4, size=1))
        return env.rgb(), env.cur[0].copy(), x[0].reshape(H, W)
    finally:
        env.close()


def frames_figure(raw: np.ndarray, binary: np.ndarray, diff: np.ndarray):
    """Raw frame | preprocessed 80x80 | difference frame, side by side (1000x420 px)."""
    fig = figure(10, 4.2)
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
