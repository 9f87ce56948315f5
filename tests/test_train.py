"""train.py: run folder contents, determinism, exact resume, and refusing bad folders/checkpoints."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from conftest import tiny_config

from pongrl import checkpoint
from pongrl.checkpoint import CheckpointError
from pongrl.config import Config
from pongrl.errors import RunError
from pongrl.logger import read_csv
from pongrl.runs import load_run, placed
from pongrl.train import train

pytestmark = pytest.mark.slow  # every test here plays real Pong episodes (1-5 s each)


def ckpt(run_dir):
    return checkpoint.load(run_dir / "checkpoint.npz")


def csv_header(path):
    with open(path, newline="") as f:
        return next(csv.reader(f))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny run (2 games, 2 episodes, an update after each), shared by read-only tests."""
    run_dir = tmp_path_factory.mktemp("shared") / "run"
    cfg = tiny_config(episodes=2)
    summary = train(cfg, run_dir, progress=False)
    return run_dir, cfg, summary


def copy_run(finished_run, tmp_path):
    src = finished_run[0]
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ what a run writes
def test_run_writes_config_checkpoint_and_metrics(finished_run):
    run_dir, cfg, summary = finished_run
    assert Config.from_json_file(run_dir / "config.json") == placed(cfg)[0]  # the cores' split is recorded
    assert summary["episodes"] >= 2 and not summary["interrupted"]
    header = csv_header(run_dir / "metrics.csv")
    assert {"episode", "env_steps", "return", "running_reward", "wall_s"} <= set(header)
    rows = read_csv(run_dir / "metrics.csv")
    assert [r["episode"] for r in rows] == list(range(1, summary["episodes"] + 1))
    assert all(-21 <= r["return"] <= 21 for r in rows)
    steps = [r["env_steps"] for r in rows]
    assert steps == sorted(steps) and steps[-1] <= summary["env_steps"]
    assert rows[0]["running_reward"] == rows[0]["return"]
    arrays, meta = ckpt(run_dir)
    assert arrays["learner/params/W1"].shape == (16, 6400) and arrays["learner/params/W2"].shape == (16,)
    assert arrays["learner/rmsprop/W1"].shape == (16, 6400)
    assert meta["counters"]["episodes"] == summary["episodes"]
    assert meta["counters"]["env_steps"] == summary["env_steps"]


def test_run_records_the_system_it_trained_on(finished_run, tmp_path):
    import json

    import numpy

    from pongrl.logger import system_info

    run_dir = copy_run(finished_run, tmp_path)
    systems = json.loads((run_dir / "system.json").read_text())["systems"]
    assert len(systems) == 1 and systems[0]["from_env_steps"] == 0
    assert systems[0]["packages"]["numpy"] == numpy.__version__
    assert {k: v for k, v in systems[0].items() if k not in ("from_env_steps", "placement")} == system_info()
    cfg = placed(finished_run[1])[0]
    assert systems[0]["placement"]["emulators"] == cfg.emulators
    assert systems[0]["placement"]["learner_threads"] == cfg.learner_threads
    summary = train(None, run_dir, resume=True, targets={"episodes": 3}, progress=False)
    assert json.loads((run_dir / "system.json").read_text())["systems"] == systems  # same machine: no new entry
    assert summary["episodes"] == 3


def test_training_updates_the_weights(finished_run):
    run_dir, cfg, summary = finished_run
    arrays, _ = ckpt(run_dir)
    assert int(arrays["learner/updates"]) == summary["episodes"]  # batch_size=1: one update per episode
    assert np.all(np.isfinite(arrays["learner/params/W1"])) and np.any(arrays["learner/rmsprop/W1"] > 0)


# ------------------------------------------------------------------ determinism
def test_same_seed_same_parameters_other_seed_other_parameters(finished_run, tmp_path):
    _, cfg, _ = finished_run
    train(cfg, tmp_path / "again", progress=False)
    train(tiny_config(episodes=2, seed=1), tmp_path / "other", progress=False)
    a, _ = ckpt(finished_run[0])
    b, _ = ckpt(tmp_path / "again")
    c, _ = ckpt(tmp_path / "other")
    for k in ("learner/params/W1", "learner/params/W2", "learner/rmsprop/W1", "learner/rmsprop/W2"):
        assert np.array_equal(a[k], b[k]), k
        assert not np.array_equal(a[k], c[k]), k
    ra = [r["return"] for r in read_csv(finished_run[0] / "metrics.csv")]
    assert ra == [r["return"] for r in read_csv(tmp_path / "again" / "metrics.csv")]


# ------------------------------------------------------------------ resume
@pytest.mark.parametrize("num_envs, first, total", [(2, 2, 4), (1, 1, 2)])
def test_resume_equals_uninterrupted_run(tmp_path, num_envs, first, total):
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    train(tiny_config(num_envs=num_envs, episodes=first), dir_a, progress=False)
    # a crash after logging one more episode but before checkpointing it: the resumed run
    # must not log that episode twice
    header = csv_header(dir_a / "metrics.csv")
    with open(dir_a / "metrics.csv", "a", newline="") as f:
        extra = dict.fromkeys(header, 0) | {"episode": ckpt(dir_a)[1]["counters"]["episodes"] + 1, "return": 5}
        csv.DictWriter(f, header).writerow(extra)
    train(None, dir_a, resume=True, targets={"episodes": total}, progress=False)
    train(tiny_config(num_envs=num_envs, episodes=total), dir_b, progress=False)

    a, meta_a = ckpt(dir_a)
    b, meta_b = ckpt(dir_b)
    assert set(a) == set(b)
    for k in a:  # parameters, RMSProp caches, episode buffer, env state
        assert np.array_equal(a[k], b[k]), k
    for k in ("episodes", "env_steps", "running_reward", "last_return"):
        assert meta_a["counters"][k] == meta_b["counters"][k], k
    assert np.array_equal(a["collector/rng"], b["collector/rng"])
    assert meta_a["config"]["episodes"] == total == Config.from_json_file(dir_a / "config.json").episodes

    rows_a, rows_b = read_csv(dir_a / "metrics.csv"), read_csv(dir_b / "metrics.csv")
    assert [r["episode"] for r in rows_a] == list(range(1, len(rows_a) + 1))  # one row per episode
    for key in ("episode", "env_steps", "return", "running_reward"):
        assert [r[key] for r in rows_a] == [r[key] for r in rows_b], key


# ------------------------------------------------------------------ refusing bad folders and checkpoints
def test_resume_without_checkpoint_raises(tmp_path):
    with pytest.raises(RunError):
        train(None, tmp_path / "empty", resume=True, targets={"episodes": 1}, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError):
        train(None, tmp_path / "empty", resume=True, targets={"episodes": 1}, progress=False)


def test_fresh_run_in_folder_with_checkpoint_raises(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    before = (run_dir / "checkpoint.npz").read_bytes(), (run_dir / "metrics.csv").read_bytes()
    with pytest.raises(RunError):
        train(tiny_config(episodes=4), run_dir, progress=False)
    assert ((run_dir / "checkpoint.npz").read_bytes(), (run_dir / "metrics.csv").read_bytes()) == before


def rewrite(finished_run, tmp_path, change):
    """A copy of the shared checkpoint, with change(arrays, meta) applied."""
    arrays, meta = ckpt(finished_run[0])
    change(arrays, meta)
    path = tmp_path / "changed.npz"
    checkpoint.save(path, arrays, meta)
    return path


def expect_checkpoint_error(path, overrides=None):
    with pytest.raises(CheckpointError) as e:
        load_run(path, overrides).close()
    assert "\n" not in str(e.value)


def test_load_run_accepts_its_own_checkpoint(finished_run):
    run = load_run(finished_run[0] / "checkpoint.npz")
    try:
        assert run.cfg == placed(finished_run[1])[0]
        assert run.counters.episodes == finished_run[2]["episodes"]
    finally:
        run.close()


def test_load_run_rejects_other_hidden_size_in_header(finished_run, tmp_path):
    expect_checkpoint_error(rewrite(finished_run, tmp_path, lambda a, m: m["config"].update(hidden=8)))


def test_load_run_rejects_arrays_of_another_size(finished_run, tmp_path):
    def smaller(arrays, meta):
        arrays["learner/params/W1"] = np.zeros((8, 6400), np.float32)
        arrays["learner/params/W2"] = np.zeros(8, np.float32)

    expect_checkpoint_error(rewrite(finished_run, tmp_path, smaller))


def test_load_run_rejects_config_override_that_does_not_fit(finished_run):
    expect_checkpoint_error(finished_run[0] / "checkpoint.npz", {"hidden": 8})


def test_load_run_rejects_other_number_of_games(finished_run, tmp_path):
    expect_checkpoint_error(rewrite(finished_run, tmp_path, lambda a, m: m["config"].update(num_envs=3)))


def test_load_run_rejects_damaged_run_header(finished_run, tmp_path):
    expect_checkpoint_error(rewrite(finished_run, tmp_path, lambda a, m: m.pop("counters")))
    expect_checkpoint_error(rewrite(finished_run, tmp_path, lambda a, m: m["config"].update(bogus=1)))


def test_resume_mid_round_with_steps_target_equals_uninterrupted(tmp_path):
    """Stopping on a step total leaves some groups of games mid-step (actions in flight);
    resuming must still reproduce the uninterrupted run exactly."""
    cfg = tiny_config(num_envs=4, groups=2, episodes=None, steps=1502, batch_size=2)
    a, b = tmp_path / "a", tmp_path / "b"
    train(cfg, a, progress=False)
    train(None, a, resume=True, targets={"steps": 3002}, progress=False)
    train(tiny_config(num_envs=4, groups=2, episodes=None, steps=3002, batch_size=2), b, progress=False)
    (arr_a, meta_a), (arr_b, meta_b) = ckpt(a), ckpt(b)
    for key in ("learner/params/W1", "learner/params/W2", "learner/rmsprop/W1", "learner/rmsprop/W2"):
        assert np.array_equal(arr_a[key], arr_b[key]), key
    assert meta_a["counters"]["env_steps"] == meta_b["counters"]["env_steps"]
    assert np.array_equal(arr_a["collector/rng"], arr_b["collector/rng"]) and "collector/pending1/x/cols" in arr_a


@pytest.mark.parametrize("floor", [0.0, 4e-3])
def test_reinforce_learning_rate_anneals_with_the_env_steps_taken(tmp_path, monkeypatch, floor):
    """Every RMSProp step uses lr * (1 - env_steps / lr_anneal_steps), env_steps taken before its rollout,
    never below lr_floor."""
    from pongrl import reinforce

    steps_seen, lrs_used = [], []
    learn, step = reinforce.Reinforce.learn, reinforce.rmsprop_step

    def spy_learn(self, rollouts, env_steps):
        n = len(lrs_used)
        out = learn(self, rollouts, env_steps)
        steps_seen.extend([env_steps] * (len(lrs_used) - n))
        return out

    monkeypatch.setattr(reinforce.Reinforce, "learn", spy_learn)
    monkeypatch.setattr(reinforce, "rmsprop_step", lambda *a: (lrs_used.append(a[3]), step(*a)))
    train(tiny_config(episodes=4, lr=1e-2, lr_anneal_steps=2000, lr_floor=floor), tmp_path / "r", progress=False)
    assert len(lrs_used) >= 4 and steps_seen[0] == 0 and steps_seen[-1] > 2000  # the last ones at the floor
    assert lrs_used == [max(floor, 1e-2 * max(1 - s / 2000, 0.0)) for s in steps_seen]
    assert lrs_used[0] == 1e-2 and lrs_used[-1] == floor
