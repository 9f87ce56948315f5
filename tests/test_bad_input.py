"""Bad input gets one clear line and exit code 2, and leaves nothing behind:
config values of the wrong type or out of range, run folders that are files or
hold another run's files, unknown envs, and small things a user trips on."""

from __future__ import annotations

import json

import pytest

from pongrl.cli import main
from pongrl.logger import METRIC_COLUMNS, CsvLog


def one_line_exit_2(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"lr": "abc"}, "lr must be a finite number, got 'abc'"),
        ({"num_envs": "16"}, "num_envs must be an integer, got '16'"),
        ({"num_envs": 16.5}, "num_envs must be an integer, got 16.5"),
        ({"num_envs": [16]}, "num_envs must be an integer, got [16]"),
        ({"hidden": True}, "hidden must be an integer, got True"),
        ({"seed": None}, "seed must be an integer, got None"),
        ({"gamma": "0.99"}, "gamma must be a finite number, got '0.99'"),
        ({"episodes": 1.5}, "episodes must be an integer or null, got 1.5"),
        ({"ppo_vf_coef": float("inf")}, "ppo_vf_coef must be a finite number, got inf"),
    ],
)
def test_a_config_file_with_a_wrong_value_is_one_line_and_makes_no_folder(tmp_path, capsys, fields, says):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(fields))
    err = one_line_exit_2(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "run"), "--no-progress"])
    assert says in err and not (tmp_path / "run").exists()


def test_a_number_too_large_for_a_float_in_a_config_file(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"lr": 1e999}')  # JSON reads it as infinity
    err = one_line_exit_2(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "run")])
    assert "lr must be a finite number, got inf" in err


@pytest.mark.parametrize("flag", ["--lr", "--ppo-lr", "--ppo-vf-coef", "--gamma"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_flags_are_refused(tmp_path, capsys, flag, value):
    err = one_line_exit_2(capsys, ["train", f"{flag}={value}", "--out", str(tmp_path / "run")])
    assert f"{flag[2:].replace('-', '_')} must be a finite number" in err and not (tmp_path / "run").exists()


def test_out_that_is_a_file_or_under_one(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    assert "is a file, not a folder" in one_line_exit_2(capsys, ["train", "--out", str(tmp_path / "f")])
    assert "which is a file" in one_line_exit_2(capsys, ["train", "--out", str(tmp_path / "f" / "run")])
    assert (tmp_path / "f").read_text() == "mine"


def test_a_folder_with_another_runs_files_but_no_checkpoint_is_refused_and_kept(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    log = CsvLog(run / "metrics.csv", METRIC_COLUMNS)
    log.write({"episode": 1, "env_steps": 900, "return": -21})
    log.close()
    before = (run / "metrics.csv").read_bytes()
    err = one_line_exit_2(capsys, ["train", "--out", str(run), "--no-progress"])
    assert "holds another run's files (metrics.csv) but no checkpoint" in err
    assert (run / "metrics.csv").read_bytes() == before and sorted(p.name for p in run.iterdir()) == ["metrics.csv"]


def test_an_unknown_env_leaves_no_folder(tmp_path, capsys):
    err = one_line_exit_2(capsys, ["train", "--env", "Breakout-v4", "--out", str(tmp_path / "run")])
    assert "unknown env 'Breakout-v4'" in err and not (tmp_path / "run").exists()


def test_only_pongrls_own_stale_temporary_files_are_removed_when_a_run_starts(tmp_path):
    from conftest import tiny_config

    from pongrl import checkpoint
    from pongrl.train import train

    run = tmp_path / "run"
    train(tiny_config(episodes=None, steps=0), run, progress=False)  # plays nothing: just the folder
    for name in ("checkpoint.npz.pongrl-abc12345.tmp", "metrics.csv.pongrl-abc12345.tmp"):
        (run / name).write_bytes(b"half a file")  # as a write killed mid-way leaves them
    (run / "notes.tmp").write_text("the user's")
    (run / "metrics.csv.tmp").write_text("the user's too")
    train(None, run, resume=True, targets={"steps": 0}, progress=False)
    assert not list(run.glob(checkpoint.TEMP_GLOB)) and (run / "checkpoint.npz").exists()
    assert (run / "notes.tmp").read_text() == "the user's" and (run / "metrics.csv.tmp").exists()


def test_plot_output_without_a_suffix_writes_png_and_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    log = CsvLog(run / "metrics.csv", METRIC_COLUMNS)
    for k in range(1, 4):
        log.write(
            {"episode": k, "env_steps": 900 * k, "return": -21 + k, "running_reward": -21, "length": 900, "wall_s": k}
        )
    log.close()
    assert main(["plot", str(run), "-o", str(tmp_path / "curve")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'curve.png'}"
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_play_names_the_seed_flag(tmp_path, capsys):
    err = one_line_exit_2(capsys, ["play", "--pretrained", "--seed", "-5", "--video", str(tmp_path / "v.gif")])
    assert "--seed must be >= 0, got -5" in err


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_play_to_an_unwritable_video_is_one_line_before_the_game(tmp_path, capsys, suffix):
    (tmp_path / "a_file").write_text("")
    err = one_line_exit_2(capsys, ["play", "--pretrained", "--video", str(tmp_path / "a_file" / f"v{suffix}")])
    assert err.startswith("pongrl: error: cannot write the video") and "Not a directory" in err


@pytest.mark.parametrize(
    "eval_csv", ["env_steps,wall_s\n1000,1.0\n", "env_steps,wall_s,mean,std,win_rate\n1000,x,1,0,0\n"]
)
def test_plot_of_a_run_whose_eval_csv_is_damaged(tmp_path, capsys, eval_csv):
    run = tmp_path / "run"
    run.mkdir()
    log = CsvLog(run / "metrics.csv", METRIC_COLUMNS)
    log.write({"episode": 1, "env_steps": 900, "return": -21, "running_reward": -21, "length": 900, "wall_s": 1})
    log.close()
    (run / "eval.csv").write_text(eval_csv)
    err = one_line_exit_2(capsys, ["plot", str(run)])
    assert "eval.csv" in err and ("lacks the column(s) mean, std, win_rate" in err or "not a number" in err)


def test_a_full_disk_is_one_line_exit_2_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    from pongrl import checkpoint

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--steps", "0", "--num-envs", "2", "--hidden", "8", "--no-progress"]) == 0
    capsys.readouterr()
    good = (run / "checkpoint.npz").read_bytes()
    real_save = checkpoint.save

    def full_disk(path, arrays, meta, compress=False):
        real_save(str(path) + ".partial-never-renamed", arrays, meta)  # some bytes got written, then:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save", full_disk)
    err = one_line_exit_2(capsys, ["train", "--resume", str(run), "--steps", "0", "--no-progress"])
    assert "No space left on device" in err
    assert (run / "checkpoint.npz").read_bytes() == good


def test_the_progress_bar_clock_counts_the_time_before_a_resume():
    from pongrl.logger import progress_bar

    bar = progress_bar(100, 10, "ep", True, before_s=3600.0)
    try:
        assert 3600.0 <= bar.format_dict["elapsed"] < 3660.0
        assert "[1:00:0" in str(bar)  # the bar shows the run's hour
    finally:
        bar.close()


def test_log_lines_print_above_the_progress_bar_not_glued_to_it(tmp_path):
    """A Ray worker's death is logged while the bar shows: the line goes through tqdm."""
    import logging

    from tqdm.contrib.logging import _TqdmLoggingHandler

    from pongrl.config import Config
    from pongrl.logger import Logs
    from pongrl.runs import Counters

    pongrl_log = logging.getLogger("pongrl")
    logs = Logs(tmp_path, Config(), Counters(), resume=False, progress=True, tensorboard=False)
    try:
        assert any(isinstance(h, _TqdmLoggingHandler) for h in pongrl_log.handlers)
    finally:
        logs.close()
    assert not any(isinstance(h, _TqdmLoggingHandler) for h in pongrl_log.handlers)


def test_an_unknown_config_name_lists_the_shipped_ones(tmp_path, capsys):
    err = one_line_exit_2(capsys, ["train", "--config", "reinforce_fastest", "--out", str(tmp_path / "run")])
    assert "config file not found: reinforce_fastest" in err and "reinforce_fast" in err
    assert not (tmp_path / "run").exists()


def test_a_rate_below_the_configs_floor_is_one_line(tmp_path, capsys):
    err = one_line_exit_2(capsys, ["train", "--config", "reinforce_fast", "--lr", "1e-3", "--out", str(tmp_path / "r")])
    assert "lr_floor must be in [0, lr] (lr is 0.001), got 0.002" in err and not (tmp_path / "r").exists()
