"""A run folder's ownership and contents: its lock, which files make it a run, the
temporary files pongrl may remove, and what `--resume` may find edited.

One command trains in a folder at a time: `FolderLock` holds an advisory lock
(flock) on RUN_DIR/.pongrl.lock, which the system drops when the process ends,
however it ends, so a lock of a dead process never blocks.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from . import checkpoint
from .config import TARGET_FIELDS, Config
from .errors import RunError, UserError


def check_saved_config(path: Path, cfg: Config) -> None:
    """config.json must be the run's config (its targets aside): --resume never silently undoes an edit."""
    if not path.exists():
        return
    try:
        saved = Config.from_json_file(path).to_dict()
    except UserError as e:
        raise RunError(f"{path} is not the run's config ({e}); put it back, or remove it to resume") from None
    changed = sorted(k for k, v in cfg.to_dict().items() if saved.get(k) != v and k not in TARGET_FIELDS)
    if changed:
        k = changed[0]
        raise RunError(
            f"{path} was edited ({k}: {saved.get(k)!r}, the run's is {getattr(cfg, k)!r}); --resume keeps "
            f"the run's config: put it back, or start a new run with --config {path}"
        )


LOCK_FILE = ".pongrl.lock"
RUN_FILES = ("checkpoint.npz", "config.json", "metrics.csv", "eval.csv", "best.npz", "system.json")


class FolderLock:
    """One owner per run folder: an advisory lock (flock) on RUN_DIR/.pongrl.lock, held
    while a command trains there. The system drops it when its process ends, however
    it ends, so a lock of a dead process never blocks."""

    def __init__(self, run_dir: Path):
        self.fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise RunError(
                f"{run_dir} is in use by another pongrl command (process {holder}); wait for it to end, or stop it"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the lock
            self.fd = -1


def remove_temporaries(run_dir: Path) -> None:
    """Remove the temporary files of pongrl's own writes that were killed (never finished files);
    any other file is the user's and stays."""
    for stale in run_dir.glob(checkpoint.TEMP_GLOB):
        stale.unlink(missing_ok=True)


def check_new_folder(run_dir: Path) -> None:
    """A new run's folder must be free: not a file, and without another run's files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--out {run_dir} is a file, not a folder; choose another --out")
    for parent in run_dir.parents:
        if parent.exists() and not parent.is_dir():
            raise RunError(f"--out {run_dir} is under {parent}, which is a file; choose another --out")
    if (run_dir / "checkpoint.npz").exists():
        raise RunError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    if (run_dir / "config.json").exists():
        raise RunError(
            f"{run_dir} holds a run that stopped before its first checkpoint; start it again with "
            f"--resume {run_dir}, or choose another --out"
        )
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        raise RunError(
            f"{run_dir} holds another run's files ({', '.join(found)}) but no checkpoint to resume; "
            "choose another --out, or move them away"
        )
