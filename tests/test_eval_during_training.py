"""Evaluation during training (--eval-every): eval.csv, best.npz, resume, seed disjointness."""

import csv
import importlib
import signal

import numpy as np
import pytest
from conftest import tiny_config

from pongrl import checkpoint
from pongrl.agent import load_agent
from pongrl.env import EVAL_SEEDS, episode_seed
from pongrl.evaluate import USER_EVAL_SEEDS, evaluate, training_eval_seed
from pongrl.logger import EVAL_COLUMNS, read_csv
from pongrl.train import train

EVAL_CFG = dict(episodes=None, steps=3000, eval_every=1000, eval_games=1)


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("evals") / "run"
    summary = train(tiny_config(**EVAL_CFG), run_dir, progress=False)
    return run_dir, summary


@pytest.mark.slow
def test_eval_csv_has_one_row_per_interval(evaluated_run):
    run_dir, summary = evaluated_run
    with open(run_dir / "eval.csv", newline="") as f:
        assert next(csv.reader(f)) == EVAL_COLUMNS == ["env_steps", "wall_s", "mean", "std", "win_rate"]
    rows = read_csv(run_dir / "eval.csv")
    assert len(rows) == summary["env_steps"] // 1000 == 3
    for i, r in enumerate(rows, start=1):
        assert i * 1000 <= r["env_steps"] < i * 1000 + 2  # at the first step past each multiple
        assert -21 <= r["mean"] <= 21 and r["std"] == 0 and r["win_rate"] in (0, 1)
    assert [r["wall_s"] for r in rows] == sorted(r["wall_s"] for r in rows)


@pytest.mark.slow
def test_best_npz_holds_the_best_evaluated_policy(evaluated_run):
    run_dir, _ = evaluated_run
    rows = read_csv(run_dir / "eval.csv")
    best = max(rows, key=lambda r: r["mean"])
    first_best = next(r for r in rows if r["mean"] == best["mean"])
    _, meta = checkpoint.load(run_dir / "best.npz")
    assert meta["eval"]["mean"] == best["mean"]
    assert meta["eval"]["env_steps"] == first_best["env_steps"]
    agent = load_agent(run_dir / "best.npz")  # an agent file: `pongrl eval best.npz` works
    again = evaluate(agent, 1, seed=training_eval_seed(agent.cfg.seed))
    assert again["mean"] == best["mean"]  # the same games, the same parameters: the same score


@pytest.mark.slow
def test_evaluating_does_not_change_training(evaluated_run, tmp_path):
    run_dir, _ = evaluated_run
    plain = tmp_path / "plain"
    train(tiny_config(**(EVAL_CFG | {"eval_every": 0})), plain, progress=False)
    a, _ = checkpoint.load(run_dir / "checkpoint.npz")
    b, _ = checkpoint.load(plain / "checkpoint.npz")
    for k in b:
        assert np.array_equal(a[k], b[k]), k
    assert not (plain / "eval.csv").exists() and not (plain / "best.npz").exists()


@pytest.mark.slow
def test_resume_continues_the_evaluations(evaluated_run, tmp_path):
    run_dir, _ = evaluated_run
    part = tmp_path / "part"
    train(tiny_config(**(EVAL_CFG | {"steps": 1500})), part, progress=False)
    train(None, part, resume=True, targets={"steps": 3000}, progress=False)
    keys = ("env_steps", "mean", "std", "win_rate")
    whole = [{k: r[k] for k in keys} for r in read_csv(run_dir / "eval.csv")]
    assert [{k: r[k] for k in keys} for r in read_csv(part / "eval.csv")] == whole


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_an_evaluation_abandons_it_and_the_resumed_run_plays_it_first(
    evaluated_run, tmp_path, monkeypatch, signum
):
    loop = importlib.import_module("pongrl.train")  # the training loop's evaluations go through its evaluate

    run_dir, _ = evaluated_run
    part, games = tmp_path / "part", []

    def ctrl_c_in_the_second(*args, **kwargs):
        games.append(args)
        if len(games) == 2:
            signal.raise_signal(signum)  # as if pressed (or sent) while these games play
            raise AssertionError("the signal did not stop the evaluation")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", ctrl_c_in_the_second)
    summary = train(tiny_config(**EVAL_CFG), part, progress=False)
    assert summary["interrupted"] and summary["signal"] == signal.Signals(signum).name
    assert len(read_csv(part / "eval.csv")) == 1  # nothing of the abandoned one
    _, meta = checkpoint.load(part / "checkpoint.npz")
    assert meta["counters"]["evals"] == 1 and meta["counters"]["env_steps"] >= 2000
    monkeypatch.setattr(loop, "evaluate", evaluate)
    train(None, part, resume=True, targets={"steps": 3000}, progress=False)
    keys = ("env_steps", "mean", "std", "win_rate")
    whole = [{k: r[k] for k in keys} for r in read_csv(run_dir / "eval.csv")]
    assert [{k: r[k] for k in keys} for r in read_csv(part / "eval.csv")] == whole
    a, _ = checkpoint.load(run_dir / "checkpoint.npz")
    b, _ = checkpoint.load(part / "checkpoint.npz")
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.slow
def test_greedy_evaluations_score_the_most_likely_actions_and_leave_training_alone(evaluated_run, tmp_path):
    """Evaluations are greedy by default (evaluated_run); sampled ones train the same numbers."""
    greedy, _ = evaluated_run
    run_dir = tmp_path / "sampled"
    train(tiny_config(**(EVAL_CFG | {"eval_greedy": False})), run_dir, progress=False)
    a, _ = checkpoint.load(run_dir / "checkpoint.npz")
    b, _ = checkpoint.load(greedy / "checkpoint.npz")
    for k in b:
        assert np.array_equal(a[k], b[k]), k  # the evaluation's mode does not touch training
    rows = read_csv(greedy / "eval.csv")
    _, meta = checkpoint.load(greedy / "best.npz")
    assert meta["eval"]["greedy"] is True and meta["eval"]["mean"] == max(r["mean"] for r in rows)
    agent = load_agent(greedy / "best.npz")
    seed = training_eval_seed(agent.cfg.seed)
    assert evaluate(agent, 1, seed=seed, greedy=True)["mean"] == meta["eval"]["mean"]
    _, sampled_meta = checkpoint.load(run_dir / "best.npz")
    assert sampled_meta["eval"]["greedy"] is False


def test_eval_greedy_must_be_a_bool():
    from pongrl.config import ConfigError

    with pytest.raises(ConfigError, match="eval_greedy must be true or false, got 'yes'"):
        tiny_config(eval_greedy="yes").validate()


def test_training_eval_seeds_never_meet_user_eval_seeds():
    def seeds(eval_seed, games=2000):
        return {episode_seed(eval_seed, k, EVAL_SEEDS) for k in range(games)}

    user = set().union(*(seeds(s) for s in range(100)))
    during = set().union(*(seeds(training_eval_seed(s)) for s in range(100)))
    assert user.isdisjoint(during)
    assert min(during) >= EVAL_SEEDS * 2**30  # and neither meets the training seeds
    assert all(training_eval_seed(s) >= USER_EVAL_SEEDS for s in range(100))


def test_eval_every_must_not_be_negative():
    from pongrl.config import ConfigError

    with pytest.raises(ConfigError, match="eval_every must be >= 0, got -5"):
        tiny_config(eval_every=-5).validate()
    with pytest.raises(ConfigError, match=r"eval_games must be in \[1, 100000\], got 0"):
        tiny_config(eval_games=0).validate()
