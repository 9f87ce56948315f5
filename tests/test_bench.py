"""bench/: every script runs as one command and prints one JSON object as its last line of output.
Tiny budgets, so the numbers mean nothing; the figure scripts run on the data docs/results.md reads.
bench/ray_scaling.py is run by tests/test_ray.py (test_benchmark_quick), beside a Ray cluster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH, RESULTS = ROOT / "bench", ROOT / "bench" / "results"


def run(script: str, *args, timeout: int = 600) -> dict:
    p = subprocess.run(
        [sys.executable, str(BENCH / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def in_git_clone() -> bool:
    return (
        shutil.which("git") is not None
        and subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.parametrize("name", sorted(p.name for p in BENCH.glob("*.json")))
def test_bench_configs_load(name):
    from pongrl.config import Config

    Config.from_json_file(BENCH / name)


def test_reference_pg_pong():
    assert run("reference_pg_pong.py", 0.3)["steps"] > 0


def test_speed_one_measurement():
    assert run("speed.py", "--one", "ceiling", "--kind", "gym", "--seconds", "0.3")["steps_per_s"] > 0


@pytest.mark.slow
def test_speed_train_measurement():
    assert run("speed.py", "--one", "train", "--n", "2", "--steps", "200")["steps_per_s"] > 0


@pytest.mark.slow
def test_ppo_speed():
    out = run("ppo_speed.py", "--steps", "2048", "--rounds", "1", "--ceiling", "0.5")
    assert out["overlap_over_serial"] > 0 and out["overlap_over_ceiling"] > 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("py-spy") is None, reason="needs py-spy (pip install py-spy)")
def test_cpu_budget():
    assert run("cpu_budget.py", "--steps", "2048")["work_us_per_step"] > 0


@pytest.mark.slow
def test_time_to_win(tmp_path):
    out = run(
        "time_to_win.py",
        "--algos",
        "reinforce",
        "--seeds",
        "0",
        "--steps",
        "2048",
        "--eval-every",
        "2048",
        "--eval-games",
        "1",
        "--out",
        tmp_path,
    )
    [r] = out["runs"]
    assert r["algo"] == "reinforce" and len(r["evals"]) == 1 and (tmp_path / "curves.png").exists()


def test_eval_curves_on_the_ppo_runs(tmp_path):
    """docs/results.md: PPO's defaults beat the built-in AI at their first evaluation, in 5 minutes, 3 seeds of 3."""
    runs = [RESULTS / "ppo" / "ttw25_gamma995" / f"seed{s}" for s in (0, 1, 2)]
    out = run("eval_curves.py", *runs, "--minutes", "25", "-o", tmp_path / "c.png")
    assert [r["first_above_0"]["env_steps"] for r in out["runs"]] == [401408] * 3
    assert all(r["first_above_0"]["wall_s"] < 300 for r in out["runs"]) and (tmp_path / "c.png").exists()


def test_reinforce_curves_on_the_reinforce_fast_runs(tmp_path):
    """docs/results.md: reinforce_fast's seeds 0, 1, 2 first beat the AI after 685, 2,263 and 1,105 episodes."""
    runs = [RESULTS / "reinforce" / "ttw_rf3e3f2" / f"reinforce_seed{s}" for s in (0, 1, 2)]
    out = run("reinforce_curves.py", *runs, "-o", tmp_path / "c.png")
    assert [r["episodes"] for r in out["runs"]] == [685, 2263, 1105] and (tmp_path / "c.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(not in_git_clone(), reason="needs a git clone of pongrl")
def test_same_numbers():
    p = subprocess.run(
        [sys.executable, str(BENCH / "same_numbers.py"), "--baseline", "HEAD", "--only", "reinforce_1env"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except json.JSONDecodeError:  # printed over several lines
        out = json.loads(p.stdout)
    assert "reinforce_1env" in json.dumps(out)


def test_same_numbers_rejects_an_unknown_baseline():
    p = subprocess.run(
        [sys.executable, str(BENCH / "same_numbers.py"), "--baseline", "no-such-rev"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 2 and p.stdout == "" and "'no-such-rev' is not a commit" in p.stderr


def test_denormals_counts_by_hand(tmp_path):
    tiny = np.finfo(np.float32).tiny
    m = np.array([0.0, tiny / 4, -tiny / 2, 1e-3, 0.0, 0.0, 2.0, tiny], np.float32)  # 2 denormal, 3 zero
    np.savez(tmp_path / "c.npz", m=m, ints=np.arange(8), zeros=np.zeros(4, np.float32))
    out = run("denormals.py", tmp_path / "c.npz")
    (arrays,) = out["files"].values()
    assert list(arrays) == ["m"]  # ints and the all-zero array are skipped
    assert arrays["m"]["denormal"] == 2 / 8 and arrays["m"]["zero"] == 3 / 8 and out["max_denormal_share"] == 2 / 8
    assert arrays["m"]["min_nonzero"] == np.float32(tiny / 4)


@pytest.mark.slow
def test_late_speed(tmp_path):
    from pongrl.config import Config
    from pongrl.train import train

    cfg = Config(algo="ppo", num_envs=2, ppo_num_steps=32, ppo_hidden=8, ppo_minibatches=2, steps=128)
    train(cfg, tmp_path / "late", progress=False)
    out = run("late_speed.py", tmp_path / "late", "--steps", 64, "--rounds", 1)
    assert out["benchmark"] == "late_speed" and out["late_over_fresh"] > 0 and len(out["rounds"]) == 1


@pytest.mark.slow
def test_learner_capacity(tmp_path):
    args = ("--configs", "ppo", "--threads", "1,2", "--rounds", 1, "--updates", 1, "--late-steps", 2048)
    out = run("learner_capacity.py", *args, "--states", tmp_path)
    assert [(r["config"], r["threads"]) for r in out["rows"]] == [("ppo", 1), ("ppo", 2)]
    assert all(r["steps_per_s"] > 0 for r in out["rows"]) and out["ratios"]["ppo"]["1"] == 1.0


@pytest.mark.slow
def test_scaling(tmp_path):
    args = (
        "--configs",
        "ppo",
        "--cores",
        "1",
        "--steps",
        2048,
        "--rounds",
        1,
        "--bare-seconds",
        0.3,
        "--calibrations",
        1,
    )
    out = run("scaling.py", *args, "--late-steps", 2048, "--states", tmp_path)
    [row] = out["rows"]
    assert row["config"] == "ppo" and row["cores"] == 1 and row["steps_per_s"] > 0 and row["predicted"] > 0
    assert (row["emulators"], row["learner_threads"]) == (1, 1) and out["costs_us"]["ppo"]["learner"] > 0
