"""Run logging: metrics.csv (one row per finished episode) and a progress bar."""

from __future__ import annotations

import csv
import os
from pathlib import Path

METRIC_COLUMNS = ["episode", "env_steps", "return", "running_reward", "length", "wall_s"]


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
