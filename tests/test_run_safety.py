"""Nothing a user does loses or mixes work: one command per run folder, SIGTERM handled as
Ctrl-C, a run stopped before its first checkpoint started again, an edited config.json
never undone in silence, and training that diverges stopped before it saves NaN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config

from pongrl import checkpoint
from pongrl.cli import main
from pongrl.folders import LOCK_FILE

TINY = ["--num-envs", "2", "--hidden", "16", "--batch-size", "1", "--no-progress"]


def pongrl(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pongrl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def episodes_logged(run: Path) -> int:
    path = run / "metrics.csv"
    return max(len(path.read_text().splitlines()) - 1, 0) if path.exists() else 0


# ------------------------------------------------------------------ one owner per run folder
@pytest.mark.slow
def test_a_second_command_on_a_run_folder_is_refused_and_the_first_goes_on(tmp_path):
    run = tmp_path / "run"
    first = pongrl("train", "--out", str(run), "--checkpoint-every", "1", *TINY)
    wait_for(lambda: (run / "checkpoint.npz").exists(), first)
    for argv in (["train", "--out", str(run)], ["train", "--resume", str(run)]):
        second = subprocess.run(
            [sys.executable, "-m", "pongrl", *argv, *TINY[-1:]], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2
        assert f"in use by another pongrl command (process {first.pid})" in one_line(second.stderr)
    before = episodes_logged(run)
    wait_for(lambda: episodes_logged(run) > before, first)  # untouched: it goes on
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 143 and "terminated: checkpoint saved" in one_line(err)
    rows = [json.loads(json.dumps(r)) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    episodes = [int(r.split(",")[0]) for r in rows]
    assert episodes == list(range(1, len(episodes) + 1))  # one writer: no duplicates, no gaps
    # the lock of a process that ended never blocks: resume to two more episodes
    done = checkpoint.load(run / "checkpoint.npz")[1]["counters"]["episodes"]
    assert (run / LOCK_FILE).exists()
    assert main(["train", "--resume", str(run), "--episodes", str(done + 2), "--no-progress"]) == 0


def test_a_stale_lock_file_does_not_block(tmp_path):
    from pongrl.train import train

    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text("999999\n")  # left by a process that is gone: no lock is held on it
    train(tiny_config(episodes=None, steps=0), run, progress=False)
    assert (run / "checkpoint.npz").exists()


# ------------------------------------------------------------------ signals
@pytest.mark.slow
def test_sigterm_while_training_checkpoints_and_exits_143_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    proc = pongrl("train", "--out", str(run), "--checkpoint-every", "0", *TINY)
    wait_for(lambda: episodes_logged(run) >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and f"pongrl train --resume {run}" in one_line(err)
    done = checkpoint.load(run / "checkpoint.npz")[1]["counters"]["episodes"]
    assert done >= 1 and main(["train", "--resume", str(run), "--episodes", str(done + 1), "--no-progress"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("after_s", [0.3, 0.6, 1.5])  # from 0.3 s: Python itself starts first
def test_a_signal_at_start_up_is_one_line_and_leaves_a_folder_that_can_be_used(tmp_path, signum, after_s):
    run = tmp_path / "run"
    proc = pongrl("train", "--out", str(run), "--checkpoint-every", "0", *TINY)
    time.sleep(after_s)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (128 + signum, 0), err  # 0: only if it had nothing to do
    one_line(err)
    if not (run / "checkpoint.npz").exists() and (run / "config.json").exists():  # stopped before it saved
        assert main(["train", "--resume", str(run), "--episodes", "1", "--no-progress"]) == 0
    elif not (run / "checkpoint.npz").exists():
        assert main(["train", "--out", str(run), "--episodes", "1", *TINY]) == 0


PROBE = """
import signal, sys
from pongrl import cli
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises, even if started with it ignored
def ctrl_c_inside_generated_code(args):  # as when Ctrl-C lands while an import makes a dataclass
    exec("import os, signal, time\\nos.kill(os.getpid(), signal.SIGINT)\\ntime.sleep(5)")
cli.cmd_info = ctrl_c_inside_generated_code
sys.exit(cli.main(["info"]))
"""


def test_ctrl_c_exits_130_under_python_m_even_from_inside_generated_code(tmp_path):
    """Under `python -m`, CPython ends by SIGINT (not main's 130) once a bare KeyboardInterrupt has
    left an exec of source, caught or not; main's own Ctrl-C handler raises a subclass instead."""
    (tmp_path / "ctrl_c_probe.py").write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    p = subprocess.run(
        [sys.executable, "-m", "ctrl_c_probe"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert (p.returncode, one_line(p.stderr)) == (128 + signal.SIGINT, "pongrl: interrupted")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_pongrl_eval_is_one_line(signum):
    proc = pongrl("eval", "--pretrained", "reinforce", "--games", "20")
    time.sleep(2.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert one_line(err) == ("pongrl: terminated" if signum == signal.SIGTERM else "pongrl: interrupted")


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_again_with_resume(tmp_path, capsys):
    run = tmp_path / "run"
    proc = pongrl("train", "--out", str(run), "--checkpoint-every", "0", *TINY)
    wait_for(lambda: episodes_logged(run) >= 1, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (run / "checkpoint.npz").exists() and (run / "config.json").exists()
    (run / "notes.txt").write_text("mine")
    assert main(["train", "--out", str(run), "--episodes", "1", *TINY]) == 2
    assert f"start it again with --resume {run}" in one_line(capsys.readouterr().err)
    assert main(["train", "--resume", str(run), "--episodes", "1", "--no-progress"]) == 0
    assert episodes_logged(run) == checkpoint.load(run / "checkpoint.npz")[1]["counters"]["episodes"]
    assert (run / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_kill_9_at_any_point_then_resume_equals_the_uninterrupted_run(tmp_path):
    """SIGKILL a run between or during its checkpoints (a checkpoint every episode), resume it,
    twice: its parameters and its metrics.csv are bit for bit those of a run never stopped."""
    from pongrl.train import train

    argv = ["--episodes", "12", "--checkpoint-every", "1", "--seed", "4", *TINY]
    cfg = tiny_config(episodes=12, checkpoint_every=1, seed=4, num_envs=2, hidden=16, batch_size=1)
    train(cfg, tmp_path / "whole", progress=False)
    run = tmp_path / "run"
    proc = pongrl("train", "--out", str(run), *argv)
    for at in (3, 7):
        wait_for(lambda at=at: episodes_logged(run) >= at, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        proc = pongrl("train", "--resume", str(run), "--no-progress")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    a, _ = checkpoint.load(tmp_path / "whole" / "checkpoint.npz")
    b, _ = checkpoint.load(run / "checkpoint.npz")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    rows = [ln.rsplit(",", 1)[0] for ln in (run / "metrics.csv").read_text().splitlines()]  # wall_s aside
    assert rows == [ln.rsplit(",", 1)[0] for ln in (tmp_path / "whole" / "metrics.csv").read_text().splitlines()]


# ------------------------------------------------------------------ what --resume reads
def test_resume_refuses_a_config_json_edited_beyond_its_targets(tmp_path, capsys):
    from pongrl.train import train

    run = tmp_path / "run"
    train(tiny_config(episodes=None, steps=0), run, progress=False)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "steps": 5}))  # a target: --resume may change it
    assert main(["train", "--resume", str(run), "--steps", "0", "--no-progress"]) == 0
    capsys.readouterr()
    (run / "config.json").write_text(json.dumps({**saved, "num_envs": 8}))
    assert main(["train", "--resume", str(run), "--steps", "0", "--no-progress"]) == 2
    assert "config.json was edited (num_envs: 8, the run's is 2)" in one_line(capsys.readouterr().err)
    assert json.loads((run / "config.json").read_text())["num_envs"] == 8  # the user's edit is kept


# ------------------------------------------------------------------ divergence
@pytest.mark.parametrize("flag", ["--ppo-lr", "--ppo-ent-coef", "--ppo-vf-coef"])
def test_ppo_that_diverges_stops_in_one_line_and_saves_no_nan(tmp_path, capsys, flag):
    run = tmp_path / "run"
    argv = [
        "train",
        "--algo",
        "ppo",
        flag,
        "1e308",
        "--steps",
        "256",
        "--num-envs",
        "2",
        "--ppo-num-steps",
        "32",
        "--ppo-hidden",
        "8",
        "--ppo-obs",
        "diff",
        "--out",
        str(run),
        "--no-progress",
    ]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert "training diverged in update 1, at env step 0: the " in line and "is not finite" in line
    assert not (run / "checkpoint.npz").exists()  # the last good checkpoint: none was due yet


def test_reinforce_that_diverges_keeps_its_last_good_checkpoint(tmp_path, capsys):
    from pongrl.train import train

    run = tmp_path / "run"
    train(tiny_config(episodes=1), run, progress=False)
    good = checkpoint.load(run / "checkpoint.npz")[0]
    assert main(["train", "--resume", str(run), "--episodes", "2", "--no-progress"]) == 0  # it can go on
    arrays, meta = checkpoint.load(run / "checkpoint.npz")
    meta["config"]["lr"] = 1e308
    checkpoint.save(
        run / "checkpoint.npz",
        {**good, **{k: v for k, v in arrays.items() if k not in good}},
        {k: v for k, v in meta.items() if k not in ("format", "version", "arrays")},
    )
    (run / "config.json").write_text(json.dumps(meta["config"]))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--episodes", "4", "--no-progress"]) == 2
    assert "training diverged in update" in one_line(capsys.readouterr().err)
    after = checkpoint.load(run / "checkpoint.npz")[0]
    assert all(np.isfinite(v).all() for k, v in after.items() if k.startswith("learner/params/"))
