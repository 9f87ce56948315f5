"""The `pongrl` command as a user runs it: outputs appear, user errors are one line and exit 2."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pongrl.cli import build_parser, main
from pongrl.config import Config
from pongrl.flags import CONFIG_PARTS, field_docs


def pongrl(*args, timeout=120):
    """Run `python -m pongrl ARGS` in a subprocess; returns (returncode, stdout, stderr)."""
    p = subprocess.run(
        [sys.executable, "-m", "pongrl", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    return p.returncode, p.stdout, p.stderr


def one_line_error(rc, err):
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    rc, out, err = pongrl(
        "train", "--episodes", 2, "--num-envs", 2, "--hidden", 16, "--batch-size", 1, "--out", run, "--no-progress"
    )
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["episodes"] >= 2
    return run


@pytest.mark.slow
def test_train_writes_run_folder(trained):
    for name in ("config.json", "checkpoint.npz", "metrics.csv"):
        assert (trained / name).stat().st_size > 0
    header = (trained / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["episode", "env_steps", "return", "running_reward"] and "wall_s" in header
    assert json.loads((trained / "config.json").read_text())["hidden"] == 16


@pytest.mark.slow
def test_eval_prints_json_last_line(trained):
    rc, out, err = pongrl("eval", trained / "checkpoint.npz", "--games", 1, "--json")
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert set(res) == {"games", "mean", "std", "min", "max", "win_rate", "greedy"}
    assert res["games"] == 1 and -21 <= res["mean"] <= 21 and res["greedy"] is True  # greedy by default


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_play_writes_video(trained, tmp_path, suffix):
    video = tmp_path / f"game{suffix}"
    rc, out, err = pongrl("play", trained, "--video", video, "--max-steps", 60)
    assert rc == 0, err
    assert video.stat().st_size > 1000
    import imageio.v2 as imageio

    assert len(imageio.mimread(video, memtest=False)) > 10


@pytest.mark.slow
def test_plot_writes_png(trained, tmp_path):
    png = tmp_path / "curve.png"
    rc, out, err = pongrl("plot", trained, "-o", png)
    assert rc == 0, err
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 400
    assert img[..., :3].std() > 0.01  # not blank


@pytest.mark.slow
def test_resume_extends_run_and_appends_metrics(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    rc, out, err = pongrl("train", "--resume", run, "--episodes", 3, "--no-progress")
    assert rc == 0, err
    episodes = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert episodes == list(range(1, len(episodes) + 1)) and episodes[-1] >= 3


def test_info_lists_action_meanings(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "Discrete(6)" in out and "2=RIGHT" in out and "3=LEFT" in out


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--bogus"],
        ["train", "--lr", "-1"],
        ["train", "--hidden", "abc"],
        ["train", "--env", "NotPong-v0", "--episodes", "1"],
        ["info", "--env", "Breakout-v4"],
        ["eval", "/no/such/checkpoint.npz"],
        ["play", "/no/such/checkpoint.npz", "--video", "x.mp4"],
        ["plot", "/no/such/run"],
        ["train", "--resume", "/no/such/run"],
        ["eval", "x.npz", "--games", "0"],
        ["eval"],
        ["eval", "x.npz", "--pretrained"],
        ["play", "--video", "x.mp4"],
        ["eval", "x.npz", "--seed", "-1"],
        ["eval", "x.npz", "--seed", str(2**20)],
        ["eval", "x.npz", "--greedy", "--sample"],
        ["play", "x.npz", "--video", "x.mp4", "--sample", "--greedy"],
        ["train", "--eval-every", "-1"],
        [],
    ],
)
def test_user_errors_are_one_line_exit_2(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(args)
    one_line_error(rc, capsys.readouterr().err)


@pytest.mark.parametrize("command", [["eval", "x.npz"], ["play", "x.npz", "--video", "x.mp4"]])
def test_eval_and_play_are_greedy_unless_sample(command):
    """The README's "Evaluating": --greedy is the default, --sample samples."""
    from pongrl.cli import build_parser

    parse = build_parser().parse_args
    assert parse(command).greedy is True and parse([*command, "--greedy"]).greedy is True
    assert parse([*command, "--sample"]).greedy is False


def test_unknown_env_lists_pong_ids(capsys):
    main(["info", "--env", "Breakout-v4"])
    err = capsys.readouterr().err
    assert "ALE/Pong-v5" in err and "Pong-v0" in err


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_bad_checkpoint_files_exit_2(tmp_path, capsys, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    one_line_error(main(["eval", str(bad)]), capsys.readouterr().err)


@pytest.mark.slow  # uses the trained run
def test_checkpoint_of_other_shape_exit_2(trained, tmp_path, capsys):
    arrays = dict(np.load(trained / "checkpoint.npz", allow_pickle=False))
    arrays["learner/params/W1"] = arrays["learner/params/W1"][:, :100]
    np.savez(tmp_path / "other.npz", **arrays)
    one_line_error(main(["eval", str(tmp_path / "other.npz")]), capsys.readouterr().err)


@pytest.mark.slow  # uses the trained run
def test_resume_refuses_config_changes(trained, capsys):
    one_line_error(main(["train", "--resume", str(trained), "--lr", "0.1"]), capsys.readouterr().err)


@pytest.mark.slow  # uses the trained run
def test_new_run_refuses_to_overwrite(trained, capsys):
    one_line_error(main(["train", "--out", str(trained), "--episodes", "1"]), capsys.readouterr().err)
    assert (trained / "checkpoint.npz").exists()


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lr": 0.5}))
    one_line_error(main(["train", "--config", str(tmp_path / "missing.json")]), capsys.readouterr().err)
    cfg.write_text("{not json")
    one_line_error(main(["train", "--config", str(cfg)]), capsys.readouterr().err)
    cfg.write_text(json.dumps({"no_such_field": 1}))
    one_line_error(main(["train", "--config", str(cfg)]), capsys.readouterr().err)


def test_every_config_field_has_a_documented_flag():
    docs = {name: doc for part, _ in CONFIG_PARTS for name, doc in field_docs(part).items()}
    for name in (f.name for f in dataclasses.fields(Config)):
        assert docs.get(name), f"Config.{name} has no docstring"
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for name in (f.name for f in dataclasses.fields(Config)):
        assert "--" + name.replace("_", "-") in help_text or name == "env_id"


@pytest.mark.parametrize(
    "flag", ["--ppo-lazy-adam", "--ppo-norm-value", "--ppo-hidden2", "--ppo-actions", "--adv-norm"]
)
def test_a_retired_flag_is_refused_in_one_line_naming_the_last_version_with_it(flag, capsys):
    rc = main(["train", flag, "1"])
    err = capsys.readouterr().err
    one_line_error(rc, err)
    assert flag in err and "pongrl 0.6.0 still has it" in err
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert flag not in help_text


@pytest.mark.parametrize(
    "saved",
    [
        {"ppo_lazy_adam": True},
        {"ppo_norm_value": True},
        {"ppo_hidden2": 64},
        {"ppo_actions": "noop+updown"},
        {"adv_norm": "batch"},
        {"ppo_obs": "frame+diff+coarse"},
        {"ppo_obs": "frame+diff+pyramid3"},
    ],
)
def test_a_config_file_using_a_retired_option_is_refused(saved, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(saved))
    rc = main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    one_line_error(rc, err)
    name = next(iter(saved))
    assert name in err and "retired" in err and "pongrl 0.6.0 still has it" in err
    assert not (tmp_path / "run").exists()


def test_a_060_config_that_leaves_the_retired_options_off_loads(tmp_path):
    old = {
        **Config(algo="ppo").to_dict(),
        "ppo_lazy_adam": False,
        "ppo_norm_value": False,
        "ppo_hidden2": 0,
        "ppo_actions": "updown",
        "adv_norm": "episode",
    }
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert Config.from_json_file(tmp_path / "config.json") == Config(algo="ppo")


@pytest.mark.slow
def test_ctrl_c_saves_checkpoint_and_resumes(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pongrl",
            "train",
            "--out",
            str(run),
            "--num-envs",
            "2",
            "--hidden",
            "16",
            "--checkpoint-every",
            "0",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not (run / "metrics.csv").exists() or len((run / "metrics.csv").read_text().splitlines()) < 2:
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    meta = json.loads(str(np.load(run / "checkpoint.npz", allow_pickle=False)["meta"]))
    done = meta["counters"]["episodes"]
    assert done >= 1
    rc, out, err = pongrl("train", "--resume", run, "--episodes", done + 1, "--no-progress")
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["episodes"] >= done + 1


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["eval"], ["play"], ["plot"], ["show"], ["show", "frames"], ["show", "weights"], ["info"]],
)
def test_every_help_page_prints(command, capsys):
    """`--help` formats every flag's help with argparse's %-formatting: a stray % in a docstring broke it."""
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_version(capsys):
    import pongrl

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"pongrl {pongrl.__version__}"


def test_an_unknown_pretrained_agent_is_one_line_exit_2(capsys):
    rc = main(["eval", "--pretrained", "chess"])
    err = capsys.readouterr().err
    assert rc == 2 and "no pretrained agent 'chess'; pongrl ships: ppo, reinforce" in err and len(err.splitlines()) == 1


def test_a_bug_is_not_a_user_error(monkeypatch):
    """Only pongrl's user errors (and unwritable or missing files) are one line and exit 2:
    anything else, such as a ValueError from NumPy, shows its traceback."""
    import pongrl.cli as cli

    def broken(args):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_calling(broken))
    with pytest.raises(ValueError, match="broadcast"):
        main(["info"])


def _parser_calling(func):
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.set_defaults(func=func)
    return p
