"""The configs that ship with pongrl: found by name, valid, and what their names say."""

import json

import pytest

from pongrl.cli import build_parser
from pongrl.config import Config, config_file, shipped_configs
from pongrl.flags import config_from_args


def test_every_shipped_config_is_a_valid_partial_config():
    assert shipped_configs(), "pongrl/configs/ holds the shipped configs"
    for name, path in shipped_configs().items():
        fields = json.loads(path.read_text())
        assert Config.from_json_file(name) == Config.from_dict(fields)


def test_reinforce_fast_is_the_tutorial_agent_with_only_a_larger_falling_learning_rate():
    fast, tutorial = Config.from_json_file("reinforce_fast"), Config()
    assert fast.algo == "reinforce" and fast.lr == 3e-3 > tutorial.lr
    assert (fast.lr_anneal_steps, fast.lr_floor, fast.steps) == (8_000_000, 2e-3, 10_000_000)  # 3e-3 -> 2e-3 at 2.67M
    differ = {k for k, v in fast.to_dict().items() if tutorial.to_dict()[k] != v}
    assert differ == {
        "lr",
        "lr_anneal_steps",
        "lr_floor",
        "steps",
    }  # network, batch, gamma, RMSProp, games: the tutorial's


def test_a_path_is_a_path_and_a_bare_name_a_shipped_config(tmp_path, monkeypatch):
    mine = tmp_path / "reinforce_fast"  # a file here of the same name wins: a path is never reinterpreted
    mine.write_text('{"lr": 0.5}')
    monkeypatch.chdir(tmp_path)
    assert config_file("reinforce_fast") == mine.relative_to(tmp_path)
    assert Config.from_json_file("reinforce_fast").lr == 0.5
    assert config_file("sub/x.json").parts == ("sub", "x.json")  # a missing path is reported as that path


@pytest.mark.parametrize(
    "argv, lr", [(["--config", "reinforce_fast"], 3e-3), (["--config", "reinforce_fast", "--lr", "4e-3"], 4e-3)]
)
def test_cli_config_by_name_then_flags(argv, lr):
    cfg, _ = config_from_args(build_parser().parse_args(["train", *argv]))
    assert cfg.lr == lr and cfg.algo == "reinforce"
