"""Run logging: metrics.csv (one row per finished episode), eval.csv, a progress
bar, and optionally TensorBoard event files (`--tensorboard`, via tensorboardX)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

METRIC_COLUMNS = ["episode", "env_steps", "return", "running_reward", "length", "wall_s"]
EVAL_COLUMNS = ["env_steps", "wall_s", "mean", "std", "win_rate"]  # eval.csv: one row per evaluation


class CsvLog:
    """Append rows to a CSV file, writing the header once; flushed after every row."""

    def __init__(self, path: str | Path, columns: list[str]):
        self.path, self.columns = Path(path), columns
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=columns, extrasaction="ignore")
        if new:
            self._w.writeheader()
            self._f.flush()

    def write(self, row: dict) -> None:
        self._w.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_csv(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def truncate_csv(path: str | Path, key: str, last: float) -> None:
    """Keep only rows with row[key] <= last: drops rows a crashed run wrote after its
    last checkpoint, so that a resumed run does not log them twice."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        rows = [r for r in reader if float(r[key]) <= last]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def progress_bar(total: int | None, initial: int, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, disable=not enabled, dynamic_ncols=True, smoothing=0.05)


# ------------------------------------------------------------------ TensorBoard
TENSORBOARD_INSTALL = "pip install tensorboardX (pongrl's [tensorboard] extra)"


class MissingExtra(RuntimeError):
    """An optional dependency that the asked-for feature needs is not installed."""


def require_tensorboardx():
    """The tensorboardX module, or MissingExtra saying how to install it."""
    try:
        import tensorboardX
    except ImportError:
        raise MissingExtra(f"--tensorboard needs the tensorboardX package, which is not installed; "
                           f"install it with: {TENSORBOARD_INSTALL}") from None
    return tensorboardX


class TensorBoardLog:
    """Scalars for TensorBoard, written by tensorboardX (no deep-learning framework)
    as event files in the run folder, against env steps, with CleanRL's names
    (charts/episodic_return, charts/SPS, losses/value_loss, eval/mean_score, ...).

    A resumed run passes `purge_step` (its env steps at resume): TensorBoard then
    hides what an earlier session logged at or after that step and never saved in a
    checkpoint, so no step is shown twice.
    """

    def __init__(self, run_dir: str | Path, purge_step: int | None = None, flush_secs: int = 10):
        tbx = require_tensorboardx()
        self._w = tbx.SummaryWriter(str(run_dir), purge_step=purge_step, flush_secs=flush_secs)

    def write(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self._w.add_scalar(tag, float(value), int(step))

    def close(self) -> None:
        self._w.close()
