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
