"""The speed benchmark (bench/): its reference implementation agrees with pongrl's
dense maths, and the benchmark runs end to end with tiny budgets."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pongrl import policy
from pongrl.config import Config
from pongrl.env import make_env
from pongrl.preprocess import preprocess
from pongrl.returns import discount_rewards

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import reference_pg_pong as ref  # noqa: E402
import speed  # noqa: E402


def test_reference_preprocessing_matches_pongrl_on_real_frames():
    env = make_env("ALE/Pong-v5")
    try:
        frame, _ = env.reset(seed=3)
        for t in range(60):
            v = ref.frame_to_vector(frame)
            assert v.dtype == np.float64 and v.shape == (6400,)
            np.testing.assert_array_equal(v, preprocess(frame).ravel())
            frame, *_ = env.step(2 + t % 2)
    finally:
        env.close()


def test_reference_forward_backward_match_pongrl_dense():
    rng = np.random.default_rng(0)
    model = ref.init_model(16, rng)
    params = {"W1": model["W1"], "W2": model["W2"]}
    xs = rng.integers(-1, 2, (30, 6400)).astype(np.float64)
    outs = [ref.forward(model, x) for x in xs]
    p_ref, h_ref = np.array([o[0] for o in outs]), np.stack([o[1] for o in outs])
    p, h = policy.forward(params, xs)
    np.testing.assert_allclose(p_ref, p, rtol=1e-9)
    np.testing.assert_allclose(h_ref, h, rtol=1e-9, atol=1e-12)
    g = rng.standard_normal(30)
    got, want = ref.backward(model, xs, h_ref, g), policy.backward(params, xs, h, g)
    for k in ("W1", "W2"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12)


def test_reference_returns_match_pongrl():
    r = np.zeros(50)
    r[[9, 30, 49]] = [1, -1, 1]
    np.testing.assert_allclose(ref.discounted_returns(r, 0.99), discount_rewards(r, 0.99))


def test_reference_run_counts_steps_and_bytes():
    out = ref.run(max_steps=40)
    assert out["steps"] == 40 and out["wall_s"] > 0
    assert out["bytes_per_transition"] == 6400 * 8 + 200 * 8 + 8 + 8


@pytest.mark.parametrize("argv", [["ceiling", "--kind", "gym", "--seconds", "0.3"],
                                  pytest.param(["bytes", "--n", "2", "--steps", "30"], marks=pytest.mark.slow),
                                  pytest.param(["train", "--n", "2", "--steps", "200"], marks=pytest.mark.slow)],
                         ids=lambda a: a[0])
def test_one_measurement_prints_json(argv):
    p = subprocess.run([sys.executable, str(BENCH / "speed.py"), "--one", *argv],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["peak_rss_bytes"] > 0
    if argv[0] == "bytes":
        assert 0 < out["bytes_per_transition"] < ref.bytes_per_transition() / 20
    else:
        assert out["steps_per_s"] > 0


@pytest.mark.slow
def test_quick_benchmark_end_to_end(tmp_path):
    p = subprocess.run([sys.executable, str(BENCH / "speed.py"), "--quick", "--out", str(tmp_path / "s.json")],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out == json.loads((tmp_path / "s.json").read_text())
    s = out["summary"]
    for k in ("a_reference_steps_per_s", "b_ceiling_steps_per_s", "c_pongrl_train_steps_per_s", "c_over_a", "c_over_b"):
        assert s[k] is not None and s[k] > 0, k
    assert set(s["scaling_steps_per_s"]) == {str(n) for n in speed.SCALING_NS}
    assert len(out["ceiling_sweep"]) == len(speed.ceiling_configs())
    assert not [m for m in out["ceiling_sweep"] if "error" in m]
    assert len(s["targets"]) == 4 and all(isinstance(t["holds"], bool) for t in s["targets"].values())
    assert s["bytes_per_transition"]["reference"] == 52816
    assert all(v > 0 for v in s["peak_rss_bytes"].values())


@pytest.mark.slow
def test_time_to_win_smoke(tmp_path):
    import time_to_win

    out = tmp_path / "ttw"
    res = time_to_win.main(["--seeds", "0", "--steps", "4096", "--eval-every", "2048", "--out", str(out)])
    assert [(r["algo"], r["seed"]) for r in res["runs"]] == [("ppo", 0), ("reinforce", 0)]
    for r in res["runs"]:
        steps = [e["env_steps"] for e in r["evals"]]
        assert len(steps) == 2 and 2048 <= steps[0] < 2048 + 16 and 4096 <= steps[1] < 4096 + 16, steps
        assert r["env_steps"] >= 4096 and set(r["reached"]) == {"+0", "+18"}
        assert all(hit is None or hit["episodes"] >= 0 for hit in r["reached"].values())
        assert all(-21 <= e["score"] <= 21 for e in r["evals"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == res["summary"] and saved["system"]["packages"]["numpy"] == np.__version__
    assert (out / "curves.png").stat().st_size > 10_000
    assert len((out / "evals.csv").read_text().splitlines()) == 1 + 4


@pytest.mark.slow
def test_time_to_win_resume_continues_the_runs_in_out(tmp_path):
    import time_to_win

    out = tmp_path / "ttw"
    args = ["--seeds", "0", "--algos", "ppo", "--eval-every", "2048", "--out", str(out)]
    first = time_to_win.main(args + ["--steps", "2048"])
    with pytest.raises(SystemExit, match="already holds a run; continue it with --resume"):
        time_to_win.main(args + ["--steps", "4096"])
    more = time_to_win.main(args + ["--steps", "4096", "--resume"])
    [a], [b] = first["runs"], more["runs"]
    assert len(a["evals"]) == 1 and b["evals"][0] == a["evals"][0] and len(b["evals"]) == 2
    with pytest.raises(SystemExit, match=r"another config \(env_id differ\)"):
        time_to_win.main(args + ["--steps", "4096", "--resume", "--env-id", "Pong-v0"])


def test_time_to_win_counts_only_evaluations_within_the_time_budget():
    import time_to_win

    evals = [{"env_steps": 1, "wall_s": 50.0, "score": -3.0}, {"env_steps": 2, "wall_s": 100.0, "score": 5.0},
             {"env_steps": 3, "wall_s": 160.0, "score": 18.0}]
    assert time_to_win.first_reached(evals) == {"+0": {"env_steps": 2, "wall_s": 100.0},
                                                "+18": {"env_steps": 3, "wall_s": 160.0}}
    assert time_to_win.first_reached(evals, max_seconds=100.0) == {"+0": {"env_steps": 2, "wall_s": 100.0}, "+18": None}
    assert time_to_win.first_reached(evals, max_seconds=99.0) == {"+0": None, "+18": None}


def test_time_to_win_keeps_the_last_checkpoint_inside_the_time_budget(tmp_path, monkeypatch):
    """Chunks of 100 steps at 10 s each, a 25 s budget: the run ends at 300 steps (30 s), past the
    budget, and within_budget.npz holds the 200-step checkpoint (20 s) for a 50-game evaluation."""
    import argparse

    import time_to_win

    def fake_train(cfg, run_dir, resume=False, targets=None, progress=False):
        steps = cfg.steps if cfg is not None else targets["steps"]
        run_dir.mkdir(exist_ok=True)
        (run_dir / "checkpoint.npz").write_text(f"the state at {steps} steps")
        with open(run_dir / "eval.csv", "a") as f:
            f.write("" if resume else "env_steps,wall_s,mean,win_rate\n")
            f.write(f"{steps},{steps / 10},1.0,0.5\n")
        (run_dir / "metrics.csv").write_text("env_steps\n50\n")
        return {"env_steps": steps, "wall_s": steps / 10, "interrupted": False}

    monkeypatch.setattr(time_to_win, "train", fake_train)
    args = argparse.Namespace(eval_every=100, stop_at_win=False, stop_above=None)
    run = time_to_win.train_and_evaluate(tmp_path / "run", Config(algo="ppo"), args, None, 25.0)
    assert [e["env_steps"] for e in run["evals"]] == [100, 200, 300] and run["wall_s"] == 30
    assert (tmp_path / "run" / "within_budget.npz").read_text() == "the state at 200 steps"
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_time_to_win_stop_above_is_strict_and_within_the_time_budget():
    import argparse

    import time_to_win

    evals = [{"env_steps": 1, "wall_s": 50.0, "score": 0.0}, {"env_steps": 2, "wall_s": 100.0, "score": 0.5}]
    assert time_to_win.first_above(evals, 0.0) == evals[1]  # a mean of exactly 0 does not beat the AI
    assert time_to_win.first_above(evals, 0.0, max_seconds=99.0) is None
    assert time_to_win.first_above(evals, None) is None
    args = argparse.Namespace(stop_at_win=False, stop_above=0.0)
    summary = {"env_steps": 2, "wall_s": 100.0}
    assert time_to_win.budget_spent(summary, evals, args, max_steps=10, max_seconds=3600)
    assert not time_to_win.budget_spent(summary, evals[:1], args, max_steps=10, max_seconds=3600)
    assert not time_to_win.budget_spent(summary, evals, argparse.Namespace(stop_at_win=False, stop_above=None),
                                        max_steps=10, max_seconds=3600)


def test_time_to_win_takes_a_shipped_config_by_name():
    import time_to_win

    # its algo and its steps are the benchmark's
    assert time_to_win.config_fields(Path("reinforce_fast")) == {"lr": 3e-3, "lr_anneal_steps": 8_000_000, "lr_floor": 2e-3}


def test_time_to_win_config_sets_any_algorithm_but_not_the_benchmarks_fields(tmp_path):
    import time_to_win

    f = tmp_path / "fast.json"
    f.write_text(json.dumps({"lr": 1e-3, "batch_size": 5, "seed": 9, "eval_games": 3, "steps": 10}))
    assert time_to_win.config_fields(f) == {"lr": 1e-3, "batch_size": 5}
    f.write_text(json.dumps({"lr": "fast"}))
    with pytest.raises(SystemExit):
        time_to_win.config_fields(f)


def test_time_to_win_reports_the_episodes_played_by_each_threshold(tmp_path):
    import time_to_win

    (tmp_path / "metrics.csv").write_text("episode,env_steps,return\n1,900,-21\n2,1800,-20\n3,2900,-19\n")
    reached = {"+0": {"env_steps": 2048, "wall_s": 5.0}, "+18": None}
    assert time_to_win.with_episodes(reached, tmp_path) == {"+0": {"env_steps": 2048, "wall_s": 5.0, "episodes": 2},
                                                             "+18": None}


def test_time_to_win_stops_ppo_where_its_learning_rate_reaches_0():
    import time_to_win

    ppo = Config(algo="ppo", ppo_anneal_steps=8_000_000)
    assert time_to_win.learning_steps(ppo, None) == 8_000_000  # a time budget: stop at 8M at the latest
    assert time_to_win.learning_steps(ppo, 4096) == 4096
    assert time_to_win.learning_steps(ppo, 9_000_000) == 8_000_000
    assert time_to_win.learning_steps(Config(algo="ppo", ppo_anneal_steps=0), None) is None  # never annealed
    assert time_to_win.learning_steps(Config(algo="reinforce"), 9_000_000) == 9_000_000
    to_zero = Config.from_json_file(BENCH / "reinforce_lr3e-3_anneal.json")
    assert time_to_win.learning_steps(to_zero, 9_000_000) == time_to_win.learning_steps(to_zero, None) == 8_000_000
    assert time_to_win.learning_steps(to_zero, 60) == 60
    fast = Config.from_json_file("reinforce_fast")  # 3e-3 falling to 2e-3, held: learning never ends
    assert time_to_win.learning_steps(fast, None) is None and time_to_win.learning_steps(fast, 9_000_000) == 9_000_000


@pytest.mark.parametrize("name", ["reinforce_lr1e-3.json", "reinforce_lr3e-3.json", "reinforce_lr2e-3_anneal.json",
                                  "reinforce_lr3e-3_anneal.json", "reinforce_lr3e-3_anneal_floor2e-3.json"])
def test_bench_reinforce_configs_are_the_tutorial_agent_with_another_learning_rate(name):
    import time_to_win

    fields = time_to_win.config_fields(BENCH / name)
    assert set(fields) <= {"lr", "lr_anneal_steps", "lr_floor"} and fields["lr"] > Config().lr  # TIME_TO_WIN.md's


@pytest.mark.parametrize("name, changed", [
    ("ppo_25min.json", {}),  # 0.6.0's defaults
    ("ppo_mb8_25min.json", {"ppo_gamma": 0.99}),  # 0.5.0's, and the screens on them: one change each
    ("ppo_epochs6_25min.json", {"ppo_gamma": 0.99, "ppo_epochs": 6}),
    ("ppo_ns64_25min.json", {"ppo_gamma": 0.99, "ppo_num_steps": 64, "ppo_minibatches": 4})])
def test_bench_25_minute_configs_are_the_defaults_annealed_over_3m_steps_and_one_change(name, changed):
    """TIME_TO_WIN.md's 25-minute runs: the defaults with a 3M-step schedule, and the screens' one change."""
    import time_to_win

    cfg = Config.from_dict(Config(algo="ppo").to_dict() | time_to_win.config_fields(BENCH / name))
    expected = dataclasses.replace(Config(algo="ppo"), ppo_anneal_steps=3_000_000, **changed)
    assert cfg == expected


@pytest.mark.parametrize("name", ["ppo_pyramid.json", "ppo_pyramid_45min.json", "ppo_pyramid_45min_2core.json"])
def test_bench_config_files_are_valid_ppo_configs(name):
    import time_to_win

    fields = time_to_win.config_fields(BENCH / name)
    assert set(fields) == {"ppo_obs", "ppo_anneal_entropy", "ppo_anneal_steps", "ppo_minibatches", "ppo_gamma"}
    assert fields["ppo_obs"] == "frame+diff+pyramid" and fields["ppo_anneal_entropy"] is True
    assert fields["ppo_minibatches"] == 4 and fields["ppo_gamma"] == 0.99  # the defaults when these runs were made
    anneal = {"ppo_pyramid.json": 9_000_000, "ppo_pyramid_45min.json": 8_000_000,
              "ppo_pyramid_45min_2core.json": 4_500_000}  # TIME_TO_WIN.md: which machine each is sized for
    assert fields["ppo_anneal_steps"] == anneal[name]


@pytest.mark.slow
def test_time_to_win_resume_of_a_finished_run_trains_nothing(tmp_path):
    import time_to_win

    out = tmp_path / "ttw"
    args = ["--seeds", "0", "--algos", "ppo", "--steps", "2048", "--eval-every", "2048", "--out", str(out)]
    first = time_to_win.main(args)
    saved = (out / "ppo_seed0" / "checkpoint.npz").read_bytes()
    again = time_to_win.main(args + ["--resume"])
    assert again["runs"] == first["runs"]
    assert (out / "ppo_seed0" / "checkpoint.npz").read_bytes() == saved


@pytest.mark.slow
def test_time_to_win_takes_hyperparameters_from_a_config_file(tmp_path):
    import time_to_win

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"ppo_obs": "frame+diff+pyramid", "ppo_hidden": 16, "seed": 9, "hidden": 7}))
    out = tmp_path / "ttw"
    time_to_win.main(["--seeds", "0", "--steps", "2048", "--eval-every", "2048", "--config", str(cfg), "--out", str(out)])
    ppo = json.loads((out / "ppo_seed0" / "config.json").read_text())
    assert (ppo["ppo_obs"], ppo["ppo_hidden"], ppo["seed"]) == ("frame+diff+pyramid", 16, 0)  # not the file's seed
    reinforce = json.loads((out / "reinforce_seed0" / "config.json").read_text())
    assert (reinforce["algo"], reinforce["hidden"], reinforce["seed"]) == ("reinforce", 7, 0)  # REINFORCE's field too


@pytest.mark.parametrize("text, says", [("{nope", "is not valid JSON"), ('{"ppo_obs": "pixels"}', "ppo_obs must be one of")])
def test_time_to_win_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, says):
    import time_to_win

    (tmp_path / "c.json").write_text(text)
    with pytest.raises(SystemExit) as e:
        time_to_win.main(["--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "ttw")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ttw").exists()


def test_time_to_win_resume_check_reads_old_configs_as_they_ran(tmp_path):
    """A run saved before ppo_overlap existed ran serially: a PPO run of it is another
    config now; a REINFORCE run (which has no use for ppo_* fields) is not."""
    import time_to_win

    for algo, ok in (("reinforce", True), ("ppo", False)):
        run_dir = tmp_path / algo
        run_dir.mkdir()
        old = Config(algo=algo).to_dict()
        del old["ppo_overlap"]
        (run_dir / "config.json").write_text(json.dumps(old))
        if ok:
            time_to_win.check_resumable(run_dir, Config(algo=algo), resume=True)
        else:
            with pytest.raises(SystemExit, match=r"another config \(ppo_overlap differ\)"):
                time_to_win.check_resumable(run_dir, Config(algo=algo), resume=True)


def test_time_to_win_evaluates_greedily_unless_sample_and_keeps_runs_apart(tmp_path):
    """Greedy by default (as pongrl eval), --sample samples; a sampled run is another config, so it is
    not resumed as greedy, and a run saved before eval_greedy existed was sampled."""
    import time_to_win

    assert time_to_win.parse_args([]).greedy and time_to_win.parse_args(["--greedy"]).greedy
    assert not time_to_win.parse_args(["--sample"]).greedy
    with pytest.raises(SystemExit):
        time_to_win.parse_args(["--greedy", "--sample"])
    run_dir = tmp_path / "ppo_seed0"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(Config(algo="ppo", eval_greedy=False).to_json())
    with pytest.raises(SystemExit, match=r"another config \(eval_greedy differ\)"):
        time_to_win.check_resumable(run_dir, Config(algo="ppo", eval_greedy=True), resume=True)
    old = Config(algo="ppo").to_dict()
    del old["eval_greedy"]  # a run saved before the field existed evaluated by sampling
    (run_dir / "config.json").write_text(json.dumps(old))
    time_to_win.check_resumable(run_dir, Config(algo="ppo", eval_greedy=False), resume=True)


@pytest.mark.slow
def test_ppo_speed_benchmark_end_to_end():
    p = subprocess.run([sys.executable, str(BENCH / "ppo_speed.py"), "--steps", "4096", "--rounds", "1",
                        "--ceiling", "0.5"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    [r] = out["rounds"]
    assert set(r) == {"serial", "overlap", "ceiling"}
    assert all(r[v]["steps"] == 4096 and r[v]["updates"] == 2 for v in ("serial", "overlap"))
    ratio = r["overlap"]["steps_per_s"] / r["serial"]["steps_per_s"]
    assert out["overlap_over_serial"] == pytest.approx(ratio, abs=1e-3) and out["median_steps_per_s"]["serial"] > 0
    assert r["ceiling"]["steps"] > 0 and out["median_steps_per_s"]["ceiling"] == pytest.approx(
        r["ceiling"]["steps_per_s"], abs=0.1)
    assert out["overlap_over_ceiling"] == pytest.approx(r["overlap"]["steps_per_s"] / r["ceiling"]["steps_per_s"],
                                                        abs=1e-3)


@pytest.mark.parametrize("bad", ["-1", "5000", "nan"])
def test_ppo_speed_rejects_a_bad_ceiling_in_one_line(bad):
    p = subprocess.run([sys.executable, str(BENCH / "ppo_speed.py"), "--ceiling", bad],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines()[-1].endswith(f"--ceiling must be in [0, 3600] seconds, got {float(bad)!r}")


@pytest.mark.parametrize("bad, says", [
    ('{"ppo_minibatches": 0}', "--vs: ppo_minibatches must be >= 1, got 0"),
    ('{"no_such_field": 1}', "--vs: unknown config keys: no_such_field"),
    ('[8]', "must be a non-empty JSON object of config fields, got '[8]'"),
    ('{"ppo_minibatches": 8', "not valid JSON"),
])
def test_ppo_speed_rejects_a_bad_vs_in_one_line(bad, says):
    p = subprocess.run([sys.executable, str(BENCH / "ppo_speed.py"), "--vs", bad],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert says in p.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_ppo_speed_vs_trains_the_changed_config_beside_the_default():
    p = subprocess.run([sys.executable, str(BENCH / "ppo_speed.py"), "--steps", "4096", "--rounds", "1",
                        "--vs", '{"ppo_minibatches": 8, "ppo_num_steps": 64}'], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    [r] = out["rounds"]
    assert set(r) == {"overlap", "changed"} and out["config"]["vs"] == {"ppo_minibatches": 8, "ppo_num_steps": 64}
    assert r["overlap"]["updates"] == 2 and r["changed"]["updates"] == 4  # 64 steps a game: twice the updates
    assert out["changed_over_overlap"] == pytest.approx(r["changed"]["steps_per_s"] / r["overlap"]["steps_per_s"],
                                                        abs=1e-3)


def in_git_clone() -> bool:
    import ppo_speed

    return ppo_speed.is_revision("HEAD")


def test_ppo_speed_rejects_an_unknown_baseline_in_one_line():
    p = subprocess.run([sys.executable, str(BENCH / "ppo_speed.py"), "--baseline", "no-such-rev"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines()[-1].endswith("'no-such-rev' is not a commit of the git repository "
                                                      f"{BENCH.parent}")


@pytest.mark.skipif(not in_git_clone(), reason="needs a git clone of pongrl")
def test_ppo_speed_exports_the_package_source_of_a_revision(tmp_path):
    import ppo_speed

    src = ppo_speed.export_src("HEAD", tmp_path)
    assert (src / "pongrl" / "ppo.py").is_file() and not (tmp_path / "tests").exists()


@pytest.mark.slow
@pytest.mark.skipif(not in_git_clone(), reason="needs a git clone of pongrl")
def test_ppo_speed_against_a_baseline_revision_end_to_end():
    p = subprocess.run([sys.executable, str(BENCH / "ppo_speed.py"), "--steps", "4096", "--rounds", "1",
                        "--baseline", "HEAD"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    [r] = out["rounds"]
    assert set(r) == {"baseline", "overlap"} and all(m["steps"] == 4096 for m in r.values())
    assert out["overlap_over_baseline"] == pytest.approx(r["overlap"]["steps_per_s"] / r["baseline"]["steps_per_s"],
                                                         abs=1e-3)
    assert out["config"]["baseline"] == "HEAD"


def test_same_numbers_rejects_an_unknown_baseline_in_one_line():
    p = subprocess.run([sys.executable, str(BENCH / "same_numbers.py"), "--baseline", "no-such-rev"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines()[-1].endswith("'no-such-rev' is not a commit of this git repository")


@pytest.mark.slow
@pytest.mark.skipif(not in_git_clone(), reason="needs a git clone of pongrl")
def test_same_numbers_finds_this_checkout_identical_to_its_own_head_and_a_change_different(tmp_path):
    import same_numbers

    for side in ("a", "b"):
        same_numbers.child("reinforce_1env", tmp_path / side, None)
    assert same_numbers.compare(tmp_path / "a", tmp_path / "b") == {
        "parameters": "identical", "metrics_csv": "identical", "max_abs_difference": {"W1": 0.0, "W2": 0.0}}
    params = dict(np.load(tmp_path / "b" / "params.npz"))
    params["W2"][0] += 1e-6  # the smallest change of a number shows
    np.savez(tmp_path / "b" / "params.npz", **params)
    assert same_numbers.compare(tmp_path / "a", tmp_path / "b")["parameters"] == "different"


@pytest.mark.slow
def test_resume_time_benchmark_prints_json(tmp_path):
    p = subprocess.run([sys.executable, str(BENCH / "resume_time.py"), "--steps", "2000"], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out["benchmark"] == "resume_time" and out["runs"][0]["env_steps"] == 2000
    assert out["runs"][0]["this_resume_s"] > 0


def test_conv_cost_checks_the_sparse_convolution_against_im2col_and_prints_json():
    p = subprocess.run([sys.executable, str(BENCH / "conv_cost.py"), "--rounds", "1", "--reps", "1",
                        "--minibatch", "32", "--filters", "4"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out["benchmark"] == "conv_cost" and out["check"]["max_rel_diff_to_dense"] < 1e-3
    assert set(out["ratio_to_mlp"]) == {"mlp", "conv", "conv+pyramid", "conv_dense"} and out["ratio_to_mlp"]["mlp"] == 1
    assert all(v > 0 for v in out["learner_alone_steps_per_s"].values())


def test_reinforce_curves_reports_levels_by_episode_and_draws(tmp_path, capsys):
    import reinforce_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(Config(algo="reinforce", lr=1e-3, steps=100).to_dict()))
    rows = ["episode,env_steps,return,running_reward,length,wall_s"]
    rows += [f"{k},{900 * k},-15,{-21 + k},900,{k}" for k in range(1, 8)]  # running reward -20 .. -14
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "eval.csv").write_text("env_steps,wall_s,mean,std,win_rate\n5000,5,-16.5,1,0\n")
    assert reinforce_curves.main([str(run), "-o", str(tmp_path / "c.png")]) == 0
    [r] = json.loads(capsys.readouterr().out)["runs"]
    assert r["differs_from_tutorial"] == {"lr": 1e-3}
    assert (r["episodes"], r["env_steps"], r["running_reward"]) == (7, 6300, -14.0)
    assert r["first_running_reward_at"]["-18"] == {"episode": 3, "env_steps": 2700}
    assert r["first_running_reward_at"]["-15"] == {"episode": 6, "env_steps": 5400}
    assert r["first_running_reward_at"]["+0"] is None and r["evals"] == [{"env_steps": 5000, "mean": -16.5}]
    assert (tmp_path / "c.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        reinforce_curves.main([str(tmp_path / "nothing")])


def test_eval_curves_finds_the_first_win_within_the_budget_and_draws(tmp_path, capsys):
    import eval_curves

    runs = []
    for seed, rows in ((0, ["400,100,-3,1,0.2", "800,200,2.5,1,0.7", "1200,400,18,1,1"]), (1, ["400,90,1,1,0.6"])):
        run = tmp_path / f"s{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps(Config(algo="ppo", seed=seed, eval_every=400).to_dict()))
        (run / "eval.csv").write_text("env_steps,wall_s,mean,std,win_rate\r\n" + "\r\n".join(rows) + "\r\n")
        runs.append(str(run))
    out = eval_curves.main(runs + ["--minutes", "5", "-o", str(tmp_path / "c.png")])
    assert json.loads(capsys.readouterr().out)["summary"] == out["summary"]
    first, second = out["runs"]
    assert (first["seed"], first["greedy"], first["eval_games"]) == (0, True, 10)
    assert first["first_above_0"]["env_steps"] == 800 and second["first_above_0"]["wall_s"] == 90
    assert first["reached"]["+18"] is None  # at 400 s: past the 5 minutes
    assert eval_curves.main(runs[:1] + ["-o", str(tmp_path / "d.png")])["runs"][0]["reached"]["+18"]["env_steps"] == 1200
    assert out["summary"]["ppo"]["+0"] == {"seeds_reached": 2, "of": 2, "median_env_steps": 600.0,
                                           "median_wall_s": 145.0}
    assert (tmp_path / "c.png").stat().st_size > 10_000
    (tmp_path / "s1" / "config.json").write_text("{")
    for bad, says in ((tmp_path / "nothing", "no config.json"), (tmp_path / "s1", "config.json: Expecting")):
        with pytest.raises(SystemExit) as e:
            eval_curves.main([str(bad)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and says in err and len(err.strip().splitlines()) == 1


def test_cpu_budget_sorts_py_spy_samples_into_parts_and_scales_them_by_cpu_time(tmp_path):
    import cpu_budget

    child = 'process 1:"python";process 2:"python -c import pongrl.emulators as e; e.serve_games(...)";thread (2): Main'
    main = 'process 1:"python pongrl_cpu.py";thread (1): MainThread'
    lines = [
        f"{child};serve (pongrl/emulator_process.py:125);AleGames.step (pongrl/emulators.py:104);"
        "AleGames._step_one (pongrl/emulators.py:116) 80",
        f"{child};serve (pongrl/emulator_process.py:125);AleGames.frames (pongrl/emulators.py:129) 10",
        f"{child};serve (pongrl/emulator_process.py:109);_ConnectionBase.recv_bytes (multiprocessing/connection.py:216);"
        "Connection._recv (multiprocessing/connection.py:395) 50",
        f"{main};loop (pongrl/train.py:79);Collector._send (pongrl/collector.py:93);act (pongrl/reinforce.py:29) 6",
        f"{main};loop (pongrl/train.py:80);Reinforce.learn (pongrl/reinforce.py:90);"
        "policy_gradient (pongrl/reinforce.py:58);forward_sparse (pongrl/policy.py:59) 3",
        f"{main};loop (pongrl/train.py:80);Reinforce.learn (pongrl/reinforce.py:95);"
        "rmsprop_step (pongrl/optim.py:19) 1",
        f"{main};loop (pongrl/train.py:79);Collector._receive (pongrl/collector.py:102);"
        "PongVecEnv.recv (pongrl/env.py:142);Games.recv (pongrl/emulators.py:226);"
        "GamesProcess.reply (pongrl/emulator_process.py:70);Connection._recv (multiprocessing/connection.py:395) 40",
    ]
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(lines) + "\n")
    parts = cpu_budget.read_samples(raw)
    assert parts == {("emulator processes", "emulation"): 80, ("emulator processes", "screens"): 10,
                     ("emulator processes", "idle"): 50, ("trainer", "acting"): 6,
                     ("trainer", "learning: products"): 3, ("trainer", "learning: optimizer"): 1,
                     ("trainer", "idle"): 40}
    t = cpu_budget.table(parts, {"emulator processes": 0.9, "trainer": 0.1}, steps=1000, wall=1.0)
    assert t["cpu_us_per_step"]["emulator processes"] == {"emulation": 800.0, "screens": 100.0}  # 0.9 s split 80:10
    assert t["cpu_us_per_step"]["trainer"] == {"acting": 60.0, "learning: products": 30.0, "learning: optimizer": 10.0}
    assert t["work_us_per_step"] == 1000.0


def test_reinforce_curves_title_names_every_env_once(tmp_path):
    import reinforce_curves

    runs = []
    for name, env in (("a", "ALE/Pong-v5"), ("b", "Pong-v0"), ("c", "ALE/Pong-v5")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(Config(algo="reinforce", env_id=env).to_dict()))
        runs.append(tmp_path / name)
    assert reinforce_curves.title(runs[:1]) == "REINFORCE on ALE/Pong-v5: the tutorial's network"
    assert reinforce_curves.title(runs) == "REINFORCE on ALE/Pong-v5 and Pong-v0: the tutorial's network"


def test_reinforce_curves_labels_runs_that_share_a_folder_name_by_their_parent():
    import reinforce_curves

    runs = [Path("a/seed2"), Path("b/seed2"), Path("b/seed1")]
    assert reinforce_curves.labels(runs) == ["a/seed2", "b/seed2", "seed1"]
