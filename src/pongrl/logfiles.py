"""A run's log files on disk: CSV logs (`CsvLog` appends rows, each flushed;
`read_csv` reads one as numbers; `truncate_csv` drops the rows a crashed run wrote
after its last checkpoint) and JSON files replaced whole (`write_json`, via
`replace_file`: a temporary file renamed over the old one, so a crash or a full disk
leaves the old file as it was). Only regular files are read or appended to: a FIFO
or a device is a one-line UserError, never a wait."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

from .errors import UserError


class CsvLog:
    """Append rows to a CSV file, writing the header once; flushed after every row."""

    def __init__(self, path: str | Path, columns: list[str]):
        self.path, self.columns = Path(path), columns
        check_regular(self.path, missing_ok=True)  # a FIFO would block the run
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


def read_csv(path: str | Path, columns: list[str] | None = None) -> list[dict[str, float]]:
    """The rows of a CSV log as numbers; with `columns`, each of them must be there
    (else UserError naming the file and the column). Empty cells read as NaN. A file
    that is not a CSV log of numbers (a cell that is no number, binary bytes, a FIFO)
    is a one-line UserError."""
    path = Path(path)
    with open_text(path) as f:
        reader = csv.DictReader(f)
        try:
            missing = [c for c in columns or () if c not in (reader.fieldnames or ())]
            if missing:
                raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; is it a pongrl log?")
            return [
                {k: float(v) if v not in ("", None) else float("nan") for k, v in row.items() if k is not None}
                for row in reader
            ]
        except (ValueError, TypeError, csv.Error) as e:  # UnicodeDecodeError is a ValueError
            raise UserError(
                f"{path} holds a value that is not a number (line {reader.line_num}: {csv_reason(e)})"
            ) from None


def truncate_csv(path: str | Path, key: str, last: float) -> None:
    """Keep only rows with row[key] <= last: drops rows a crashed run wrote after its
    last checkpoint, so that a resumed run does not log them twice. A row that is not
    numbers (a cell that is no number, its key cell empty, cells missing or too many,
    binary bytes) is a one-line UserError, and the file is left as it was."""
    path = Path(path)
    if not path.exists():
        return
    with open_text(path) as f:
        reader = csv.DictReader(f)
        try:
            cols = reader.fieldnames or []
            if cols and key not in cols:
                raise UserError(f"{path} lacks the column {key}; is it a pongrl log?")
            rows = []
            for r in reader:
                if None in r or None in r.values():
                    raise ValueError(f"it has {len(r) - (None in r)} cells, its header {len(cols)}")
                for v in r.values():
                    if v != "":
                        float(v)  # every cell a number (or empty), as read_csv will read it
                if float(r[key]) <= last:
                    rows.append(r)
        except (ValueError, TypeError, csv.Error) as e:
            raise UserError(
                f"{path} has a damaged line {reader.line_num} ({csv_reason(e)}); mend or remove that line to resume"
            ) from None

    def write(f):
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)

    replace_file(path, write, newline="")


def write_json(path: str | Path, obj) -> None:
    """Write obj as JSON to a temporary file, then rename it over path."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    replace_file(path, lambda f: f.write(text))


def replace_file(path: str | Path, write, newline: str | None = None) -> None:
    """Call write(text file) on a temporary file beside `path` (NAME.pongrl-RANDOM.tmp),
    then rename it over `path`. On any failure (a full disk) the temporary file is
    removed and the error raised: `path` is as it was."""
    from .checkpoint import remove_quietly, replace_with, temp_file

    path = Path(path)
    fd, tmp = temp_file(path)
    try:
        with open(fd, "w", newline=newline) as f:
            write(f)
        replace_with(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def open_text(path: Path):
    """A regular file, opened to read text: a FIFO or a device is a UserError, never a wait."""
    check_regular(path)
    return open(path, newline="")


def check_regular(path: Path, missing_ok: bool = False) -> None:
    """UserError unless `path` is a regular file (or, with missing_ok, is not there)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is not a regular file")


def csv_reason(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "bytes that are not text"
    return " ".join(str(e).split())[:120]
