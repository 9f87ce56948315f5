"""Run logging: metrics.csv (one row per finished episode), eval.csv, system.json,
a progress bar, and optionally TensorBoard event files (`--tensorboard`, via tensorboardX).
The files themselves are written by `logfiles`."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from contextlib import ExitStack
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import UserError
from .logfiles import CsvLog, write_json
from .logfiles import read_csv as read_csv  # re-exported: runs.py and tests import these two from here
from .logfiles import truncate_csv as truncate_csv

METRIC_COLUMNS = ["episode", "env_steps", "return", "running_reward", "length", "wall_s"]
EVAL_COLUMNS = ["env_steps", "wall_s", "mean", "std", "win_rate"]  # eval.csv: one row per evaluation


# ------------------------------------------------------------------ system.json
PACKAGES = ("pongrl", "numpy", "gymnasium", "ale-py")
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f")  # what decides which NumPy / BLAS kernels run


def system_info() -> dict:
    """The software and CPU this process trains on. A seed reproduces a run bit
    for bit only with the same library versions and CPU kernels (BLAS picks its
    kernels, e.g. "Haswell" or "SkylakeX", by CPU), so run folders keep this."""
    import numpy  # noqa: F401  (loads the BLAS that threadpool_info reports)
    from threadpoolctl import threadpool_info

    blas = [
        {k: lib.get(k) for k in ("internal_api", "version", "architecture")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "cpu": cpu_info(),
        "blas": blas,
    }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def cpu_info() -> dict:
    """Model name, core count and SIMD flags (Linux: from /proc/cpuinfo; elsewhere the model only)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        model = fields.get("model name", model)
        flags = [f for f in CPU_FLAGS if f in fields.get("flags", "").split()]
    except OSError:
        pass
    return {"model": model, "count": os.cpu_count(), "flags": flags}


def record_system(path: str | Path, env_steps: int, placement: dict | None = None) -> None:
    """Keep system.json: a list of the systems the run has trained on, each with
    the env step it started at and how its cores were split (`placement`). A
    (re)start on the same system, split the same way, adds nothing."""
    path, info = Path(path), system_info() | ({"placement": placement} if placement else {})
    try:
        entries = json.loads(path.read_text())["systems"]
    except (OSError, ValueError, KeyError, TypeError):
        entries = []  # none yet (or unreadable: start the list again rather than fail a run)
    if not entries or {k: v for k, v in entries[-1].items() if k != "from_env_steps"} != info:
        write_json(path, {"systems": entries + [{"from_env_steps": env_steps, **info}]})


def progress_bar(total: int | None, initial: int, unit: str, enabled: bool, before_s: float = 0.0):
    """A tqdm bar whose clock shows the run's whole time: `before_s` seconds were
    trained before this session (a resumed run). Its rate and ETA are this session's."""
    from tqdm import tqdm

    class RunBar(tqdm):
        @property
        def format_dict(self):
            d = super().format_dict
            if hasattr(self, "start_t"):  # not while tqdm is still being set up
                d["elapsed"] = self._time() - self.start_t + before_s
            return d

    return RunBar(total=total, initial=initial, unit=unit, disable=not enabled, dynamic_ncols=True, smoothing=0.05)


# ------------------------------------------------------------------ TensorBoard
TENSORBOARD_INSTALL = "pip install tensorboardX (pongrl's [tensorboard] extra)"


class MissingExtra(UserError):
    """An optional dependency that the asked-for feature needs is not installed."""


def require_tensorboardx():
    """The tensorboardX module, or MissingExtra saying how to install it."""
    try:
        import tensorboardX
    except ImportError:
        raise MissingExtra(
            f"--tensorboard needs the tensorboardX package, which is not installed; "
            f"install it with: {TENSORBOARD_INSTALL}"
        ) from None
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


# ------------------------------------------------------------------ all of a run's logs
class Logs:
    """Where a run reports: metrics.csv, eval.csv, TensorBoard (optional) and the progress bar."""

    def __init__(self, run_dir: Path, cfg, c, resume: bool, progress: bool, tensorboard: bool):
        self.metrics = CsvLog(run_dir / "metrics.csv", METRIC_COLUMNS)
        self.evals = CsvLog(run_dir / "eval.csv", EVAL_COLUMNS) if cfg.eval_every else None
        self.tb = TensorBoardLog(run_dir, purge_step=c.env_steps if resume else None) if tensorboard else None
        # the bar counts what the run's target counts: episodes, or env steps (--steps alone)
        self.by_steps = cfg.steps is not None and cfg.episodes is None
        self.bar = progress_bar(
            cfg.steps if self.by_steps else cfg.episodes,
            c.env_steps if self.by_steps else c.episodes,
            "step" if self.by_steps else "ep",
            progress,
            c.wall_s,
        )
        self.contexts = ExitStack()
        if progress:
            from tqdm.contrib.logging import logging_redirect_tqdm

            # pongrl's log lines (a Ray worker died, ...) print above the bar, not glued to it
            self.contexts.enter_context(logging_redirect_tqdm([logging.getLogger("pongrl")], tqdm_class=type(self.bar)))
        self.start, self.steps0 = time.perf_counter(), c.env_steps

    def sps(self, c) -> float:
        return (c.env_steps - self.steps0) / max(time.perf_counter() - self.start, 1e-9)

    def episode(self, c, length: int) -> None:
        self.metrics.write(
            {
                "episode": c.episodes,
                "env_steps": c.env_steps,
                "return": c.last_return,
                "running_reward": round(c.running_reward, 6),
                "length": length,
                "wall_s": round(c.wall_s, 3),
            }
        )
        self.scalars(
            {
                "charts/episodic_return": c.last_return,
                "charts/episodic_length": length,
                "charts/running_reward": c.running_reward,
            },
            c.env_steps,
        )

    def turn(self, c, new_episodes: int, stats: dict | None) -> None:
        if new_episodes or stats:
            self.scalars({"charts/SPS": self.sps(c), **(stats or {})}, c.env_steps)
        if self.by_steps and c.env_steps > self.bar.n:
            self.bar.update(c.env_steps - self.bar.n)
        if new_episodes:
            if not self.by_steps:
                self.bar.update(new_episodes)
            self.bar.set_postfix(
                ep=c.episodes,
                steps=str(c.env_steps),
                sps=f"{self.sps(c):.0f}",
                ret=c.last_return,
                running=f"{c.running_reward:.2f}",
            )

    def evaluation(self, c, res: dict) -> None:
        assert self.evals is not None  # evaluations happen only when cfg.eval_every, which made eval.csv
        self.evals.write(
            {
                "env_steps": c.env_steps,
                "wall_s": round(c.wall_s, 3),
                "mean": res["mean"],
                "std": round(res["std"], 6),
                "win_rate": res["win_rate"],
            }
        )
        self.scalars(
            {"eval/mean_score": res["mean"], "eval/std_score": res["std"], "eval/win_rate": res["win_rate"]},
            c.env_steps,
        )
        self.bar.set_postfix(steps=str(c.env_steps), eval=f"{res['mean']:+.1f}", best=f"{c.best_eval:+.1f}")

    def scalars(self, values: dict, step: int) -> None:
        if self.tb is not None:
            self.tb.write(values, step)

    def close(self) -> None:
        self.contexts.close()
        for log in (self.bar, self.metrics, self.evals, self.tb):
            if log is not None:
                log.close()
