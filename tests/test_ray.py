"""Rollouts on Ray workers (pongrl.distributed): the same run folder as local training,
exact resume, reproducibility, a worker killed mid-run, the CLI, the benchmark.

The tests that need Ray share one small local cluster (2 CPUs, started once for
this module) and skip when Ray is not installed, unless PONGRL_REQUIRE_RAY is
set (CI installs pongrl[ray] and sets it). The first tests need no Ray.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config

from pongrl import algos, checkpoint, distributed
from pongrl.cli import main
from pongrl.collector import Collector
from pongrl.env import PongVecEnv
from pongrl.logger import read_csv
from pongrl.train import train

pytestmark = pytest.mark.slow  # they play real Pong steps and start Ray actors
BENCH = Path(__file__).resolve().parents[1] / "bench"


def ray_config(algo: str = "reinforce", **overrides):
    """2 workers x 2 games; short rounds (REINFORCE 64 steps, PPO 32)."""
    base = dict(
        algo=algo,
        workers=2,
        num_envs=2,
        episodes=None,
        worker_steps=64,
        ppo_num_steps=32,
        ppo_hidden=16,
        ppo_minibatches=2,
        ppo_epochs=2,
    )
    return tiny_config(**(base | overrides))


def round_steps(cfg) -> int:
    return cfg.workers * cfg.num_envs * (cfg.ppo_num_steps if cfg.algo == "ppo" else cfg.worker_steps)


def ckpt(run_dir):
    return checkpoint.load(run_dir / "checkpoint.npz")


def one_line_error(rc, err):
    assert rc == 2, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "Traceback" not in err, err


# ------------------------------------------------------------------ without Ray
def assert_same_rollouts(a, b):
    assert len(a) == len(b)
    for r, q in zip(a, b):
        assert r.source == q.source
        for k in ("indptr", "cols", "vals"):
            assert np.array_equal(getattr(r.x, k), getattr(q.x, k)), k
        for k in ("actions", "rewards", "dones"):
            assert np.array_equal(getattr(r, k), getattr(q, k)), k
        assert r.extras.keys() == q.extras.keys() and r.last.keys() == q.last.keys()
        assert all(np.array_equal(r.extras[k], q.extras[k]) for k in r.extras)
        assert all(np.array_equal(r.last[k], q.last[k]) for k in r.last)
        assert [(f.env, f.ret, f.length, f.turn) for f in r.finished] == [
            (f.env, f.ret, f.length, f.turn) for f in q.finished
        ]


def local_twin(cfg, index):
    """Worker `index`'s games and generator, as a collector in this process."""
    algo = algos.get(cfg.algo)
    env = PongVecEnv(cfg.env_id, cfg.num_envs, cfg.seed, stream=index, streams=cfg.workers, processes=1)
    collector = Collector([env], algo.act, algo.bootstrap, np.random.default_rng([cfg.seed, index]))
    collector.reset()
    return collector


@pytest.mark.parametrize(
    "algo, extra", [("reinforce", {}), ("ppo", {}), ("ppo", {"ppo_obs": "frame+diff+pyramid", "ppo_conv": 2})]
)
def test_a_worker_collects_what_a_local_collector_collects(algo, extra):
    """A Ray worker runs the local collector's code: the same games, generator and
    parameters give the same rollouts, round after round (REINFORCE: episodes end)."""
    from threadpoolctl import threadpool_limits

    cfg = ray_config(algo, workers=2, **extra)
    params = algos.get(algo).init_params(cfg, np.random.default_rng(cfg.seed))
    steps = cfg.ppo_num_steps if algo == "ppo" else 500
    with threadpool_limits(1):  # a Worker pins BLAS to one thread for good: undo it after the test
        worker, twin = distributed.Worker(cfg.to_dict(), 1), local_twin(cfg, 1)
        try:
            worker.start()
            for _ in range(3):
                (mine,) = twin.collect(params, steps)
                mine.source = 1
                assert_same_rollouts([worker.collect(params, steps)], [mine])
            assert algo == "ppo" or mine.finished
        finally:
            worker.collector.close()
            twin.close()


def test_ray_flag_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as when it is not installed
    rc = main(["train", "--ray", "local", "--workers", "2", "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    one_line_error(rc, err)
    assert "pip install 'pongrl[ray]'" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--ray", "local"],  # no --workers
        ["--workers", "2"],  # no --ray
        ["--workers", "-1", "--ray", "local"],
        ["--worker-steps", "0"],
    ],
)
def test_ray_user_errors_are_one_line_exit_2(args, tmp_path, capsys):
    pytest.importorskip("ray")
    import ray

    assert not ray.is_initialized()  # these tests run before the module's cluster starts
    rc = main(["train", *args, "--out", str(tmp_path / "r"), "--no-progress"])
    one_line_error(rc, capsys.readouterr().err)
    assert not ray.is_initialized()


# ------------------------------------------------------------------ on a local Ray cluster
@pytest.fixture(scope="module")
def ray_cluster():
    if os.environ.get("PONGRL_REQUIRE_RAY"):
        import ray
    else:
        ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("algo", ["reinforce", "ppo"])
def test_two_workers_write_a_run_and_resume_exactly(ray_cluster, tmp_path, algo):
    """Local training's outputs (config.json, metrics.csv, checkpoint); a run stopped and
    resumed (through the CLI) equals, bit for bit, an uninterrupted one with the same seed."""
    cfg = ray_config(algo, worker_steps=128)
    r = round_steps(cfg)
    rounds = (5, 10) if algo == "reinforce" else (3, 6)  # REINFORCE: 1280 steps a game, episodes end
    a, b = tmp_path / "a", tmp_path / "b"
    s = train(ray_config(algo, worker_steps=128, steps=rounds[0] * r), a, progress=False)
    assert s["env_steps"] == rounds[0] * r and not s["interrupted"]
    arrays, meta = ckpt(a)
    assert list(arrays["collector/alive"]) == [0, 1]
    assert {"collector/worker0/env0/games", "collector/worker1/env0/games"} <= set(arrays)
    assert meta["config"]["workers"] == 2

    rc = main(["train", "--resume", str(a), "--ray", "local", "--steps", str(rounds[1] * r), "--no-progress"])
    assert rc == 0
    train(ray_config(algo, worker_steps=128, steps=rounds[1] * r), b, progress=False)

    (arr_a, meta_a), (arr_b, meta_b) = ckpt(a), ckpt(b)
    assert set(arr_a) == set(arr_b)
    for k in arr_a:  # parameters, optimiser, buffers, every worker's games
        assert np.array_equal(arr_a[k], arr_b[k]), k
    for k in ("episodes", "env_steps", "running_reward", "last_return"):
        assert meta_a["counters"][k] == meta_b["counters"][k], k
    rows_a, rows_b = read_csv(a / "metrics.csv"), read_csv(b / "metrics.csv")
    assert [r["episode"] for r in rows_a] == list(range(1, len(rows_a) + 1))
    for key in ("episode", "env_steps", "return", "running_reward", "length"):
        assert [r[key] for r in rows_a] == [r[key] for r in rows_b], key
    if algo == "reinforce":
        assert rows_b and int(arr_b["learner/updates"]) == len(rows_b)  # batch_size 1: one update per episode
    else:
        assert int(arr_b["learner/updates"]) == rounds[1]  # one update per round
    assert all(-21 <= r["return"] <= 21 for r in rows_b)


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_training_goes_on_when_a_worker_is_killed(ray_cluster, tmp_path, monkeypatch, caplog, algo):
    """Worker 1's process is killed (SIGKILL) before the third round: the run logs it,
    finishes with worker 0, checkpoints one live worker, and resumes with it."""
    cfg = ray_config(algo)
    r = round_steps(cfg)
    collect, calls = distributed.RayCollector.collect, []

    def collect_and_kill(pool, *args, **kwargs):
        calls.append(sorted(pool.actors))
        if len(calls) == 3:
            os.kill(pool.pids[1], signal.SIGKILL)
        return collect(pool, *args, **kwargs)

    monkeypatch.setattr(distributed.RayCollector, "collect", collect_and_kill)
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="pongrl.distributed"):
        s = train(ray_config(algo, steps=2 * r + 3 * r // 2), run, progress=False)
    assert calls == [[0, 1]] * 3 + [[0]] * 2
    assert s["env_steps"] == 2 * r + 3 * r // 2 and not s["interrupted"]
    assert "Ray worker 1" in caplog.text and "died" in caplog.text
    arrays, meta = ckpt(run)
    assert list(arrays["collector/alive"]) == [0] and not any(k.startswith("collector/worker1/") for k in arrays)
    if algo == "ppo":
        assert s["updates"] == 5  # one per round; the last rounds' rollouts are worker 0's alone

    monkeypatch.setattr(distributed.RayCollector, "collect", collect)
    s2 = train(None, run, resume=True, targets={"steps": s["env_steps"] + r // 2}, progress=False)
    assert s2["env_steps"] == s["env_steps"] + r // 2
    assert list(ckpt(run)[0]["collector/alive"]) == [0]


@pytest.mark.parametrize("algo", ["reinforce", "ppo"])
def test_ray_workers_collect_what_local_collectors_collect(ray_cluster, algo):
    """Through Ray, worker i's rollout equals a local collector's on seed stream i."""
    cfg = ray_config(algo)
    params = algos.get(algo).init_params(cfg, np.random.default_rng(cfg.seed))
    steps = cfg.ppo_num_steps if algo == "ppo" else cfg.worker_steps
    pool, twins = distributed.RayCollector(cfg), [local_twin(cfg, i) for i in range(cfg.workers)]
    try:
        for _ in range(2):
            mine = [twin.collect(params, steps)[0] for twin in twins]
            for i, r in enumerate(mine):
                r.source = i
            assert_same_rollouts(pool.collect(params, steps), mine)
    finally:
        pool.close()
        for twin in twins:
            twin.close()


def test_benchmark_quick(ray_cluster, tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import ray_scaling
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "bench.json"
    res = ray_scaling.main(["--quick", "--out", str(out)])
    assert out.exists() and ray_cluster.is_initialized()  # it used the running cluster and left it running
    assert [(s["algo"], s["mode"], s["workers"]) for s in res["speed"]] == [
        (a, m, w) for a in ("reinforce", "ppo") for m, w in (("local", 0), ("ray", 1), ("ray", 2))
    ]
    assert all(s["steps_per_s"] > 0 and s["env_steps"] >= 512 for s in res["speed"])
    for o in res["overhead"]:
        assert o["params_bytes"] > 0 and 0 < o["bytes_per_transition"] < 400, o
        assert o["round_ms"] >= o["worker_ms"] > 0 and o["put_ms"] >= 0 and o["get_ms"] >= 0
    assert set(res["summary"]) == {"reinforce", "ppo"}
