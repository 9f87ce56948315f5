"""Learning curves from a run folder's metrics.csv, drawn headless (Agg)."""

from __future__ import annotations

from pathlib import Path

from .logger import read_csv


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Return and running reward against episodes and against env steps -> PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        raise FileNotFoundError(f"no metrics.csv in {run_dir}")
    rows = read_csv(metrics)
    if not rows:
        raise ValueError(f"{metrics} has no finished episodes yet")
    out = Path(out) if out else run_dir / "learning_curve.png"
    cols = {k: [r[k] for r in rows] for k in ("episode", "env_steps", "return", "running_reward")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, xkey, xlabel in ((axes[0], "episode", "episode"), (axes[1], "env_steps", "agent steps")):
        ax.plot(cols[xkey], cols["return"], ".", ms=3, alpha=0.4, label="episode return")
        ax.plot(cols[xkey], cols["running_reward"], "-", lw=2, label="running reward (EMA 0.99)")
        ax.axhline(0, color="gray", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (agent − opponent)")
    axes[0].legend(loc="best")
    fig.suptitle(f"pongrl: {run_dir.name}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def sample_frames(env_id: str = "ALE/Pong-v5", seed: int = 0, steps: int = 60):
    """A raw RGB frame, the one before it, and both preprocessed, after `steps` random moves."""
    import numpy as np

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


def plot_frames(out: str | Path, env_id: str = "ALE/Pong-v5", seed: int = 0) -> Path:
    """Raw frame | preprocessed 80x80 | difference frame, side by side -> PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw, binary, diff = sample_frames(env_id, seed)
    fig, axes = plt.subplots(1, 3, figsize=(10, 4.2))
    axes[0].imshow(raw)
    axes[0].set_title("raw frame 210×160×3")
    axes[1].imshow(binary, cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("preprocessed 80×80 (0/1)")
    axes[2].imshow(diff, cmap="bwr", vmin=-1, vmax=1)
    axes[2].set_title(f"difference frame ({int((diff != 0).sum())} nonzero)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
