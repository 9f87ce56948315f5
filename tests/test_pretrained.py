"""The agent that ships with pongrl: present, small, loadable, and it wins."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pongrl import checkpoint
from pongrl.agent import load_agent, pretrained_path, save_agent
from pongrl.evaluate import USER_EVAL_SEEDS, evaluate


def test_pretrained_agent_ships_small_with_config_and_eval():
    path = pretrained_path()
    assert path.stat().st_size <= 10 * 2**20
    agent = load_agent(path)
    assert agent.cfg.algo == "ppo"
    _, meta = checkpoint.load(path)
    assert agent.cfg.ppo_obs == "frame+diff+pyramid" and agent.cfg.ppo_conv == 8
    assert agent.params["W1"].shape == (256, 1000 + 361 * 8)  # 1,000 block inputs beside 8 filters x 361 windows
    assert all(np.isfinite(v).all() for v in agent.params.values())
    # training evaluated it on its own seeds; its header's score was taken afresh on `pongrl eval`'s
    assert meta["eval_during_training"]["seed"] >= USER_EVAL_SEEDS > meta["eval"]["seed"] >= 0


def test_the_tutorial_agent_ships_too_trained_with_its_documented_config():
    from pongrl.config import Config, config_file

    path = pretrained_path("reinforce")
    assert path.stat().st_size <= 10 * 2**20
    agent, (_, meta) = load_agent("pretrained:reinforce"), checkpoint.load(path)
    assert agent.params["W1"].shape == (200, 6400) and agent.params["W2"].shape == (200,)
    assert all(np.isfinite(v).all() for v in agent.params.values())
    # the config the shipped REINFORCE agent was trained with: reinforce_fast, batches of 20 episodes, 8 games
    fast = {**Config.from_json_file(config_file("reinforce_fast")).to_dict(), "batch_size": 20, "num_envs": 8}
    run_fields = ("seed", "steps", "episodes", "checkpoint_every", "eval_every", "eval_games", "eval_greedy")
    run_fields += ("learner_threads", "emulators")  # where the work ran, not what it learned
    assert {k: v for k, v in agent.cfg.to_dict().items() if k not in run_fields and not k.startswith("ppo_")} == {
        k: v for k, v in fast.items() if k not in run_fields and not k.startswith("ppo_")
    }
    assert meta["eval_during_training"]["seed"] >= USER_EVAL_SEEDS > meta["eval"]["seed"] >= 0


@pytest.mark.slow
def test_pretrained_agent_beats_the_builtin_ai_by_playing():
    """Four whole games, on seeds its training and its selection never saw: it wins them all, by far."""
    res = evaluate(load_agent("pretrained"), games=4, seed=11, greedy=True)
    assert res["games"] == 4 and res["win_rate"] == 1.0 and res["mean"] >= 12, res


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_a_shipped_agent_replays_the_games_its_file_records(name):
    """The scores recorded in the agent file (pongrl eval --games N --seed S when it was made)
    come out again, game for game: the first game of each of the evaluation's game slots."""
    _, meta = checkpoint.load(pretrained_path(name))
    for rec in (meta[key] for key in ("eval", "eval_sampled") if key in meta):  # greedy; sampled, if recorded
        slots = min(rec["games"], 16)
        quota = [rec["games"] // slots + (i < rec["games"] % slots) for i in range(slots)]
        firsts = [rec["scores"][sum(quota[:i])] for i in range(slots)]
        res = evaluate(load_agent(f"pretrained:{name}"), games=slots, seed=rec["seed"], greedy=rec["greedy"])
        assert res["scores"] == firsts


@pytest.mark.slow
def test_the_tutorial_agent_beats_the_builtin_ai_by_playing():
    """Four whole games on seeds its training and its selection never saw (50 games: +8.6 greedy,
    96% won); an untrained one loses 21-0 or so."""
    res = evaluate(load_agent("pretrained:reinforce"), games=4, seed=11)
    assert res["games"] == 4 and res["win_rate"] >= 0.75 and res["mean"] >= 3, res


@pytest.mark.slow
def test_cli_eval_and_play_pretrained(tmp_path):
    run = [sys.executable, "-m", "pongrl"]
    p = subprocess.run(
        run + ["eval", "--pretrained", "--games", "1", "--seed", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["games"] == 1
    video = tmp_path / "clip.gif"
    p = subprocess.run(
        run + ["play", "--pretrained", "--video", str(video), "--max-steps", "40"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert video.stat().st_size > 1000


@pytest.mark.slow
def test_make_pretrained_packages_best_npz_and_never_loses_the_old_agent(tmp_path, monkeypatch):
    from pathlib import Path

    from conftest import tiny_config

    from pongrl.train import train

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import make_pretrained

    run = tmp_path / "run"
    train(
        tiny_config(
            algo="ppo",
            episodes=None,
            steps=64,
            eval_every=32,
            eval_games=1,
            ppo_num_steps=8,
            ppo_hidden=16,
            ppo_obs="diff",
        ),
        run,
        progress=False,
    )
    out = tmp_path / "agent.npz"
    res = make_pretrained.main([str(run), "--games", "1", "--seed", "3", "--out", str(out)])
    agent = load_agent(out)
    assert (
        agent.params["W1"].shape == (16, 6400)
        and res["eval"]["games"] == 1
        and res["eval"]["greedy"]
        and res["bytes"] == out.stat().st_size
    )
    assert (tmp_path / "agent_eval.csv").exists() and (tmp_path / "agent_metrics.csv").exists()
    assert res["eval_sampled"]["games"] == 1 and res["eval_sampled"]["greedy"] is False
    made = checkpoint.load(out)[1]["made_with"]
    assert made["seed"] == 0 and made["env_steps"] == res["eval_during_training"]["env_steps"] and made["pongrl"]
    sampled = evaluate(agent, 1, seed=3, greedy=False)
    assert sampled["scores"] == res["eval_sampled"]["scores"]  # `pongrl eval --sample` gives the recorded score
    before = out.read_bytes()
    monkeypatch.setattr(make_pretrained, "MAX_BYTES", 100)
    with pytest.raises(SystemExit, match="over the 100-byte limit; not written"):
        make_pretrained.main([str(run), "--games", "1", "--seed", "3", "--out", str(out)])
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.glob("agent*.npz")) == ["agent.npz"]
    monkeypatch.setattr(make_pretrained, "MAX_BYTES", 10 * 2**20)
    res = make_pretrained.main([str(run), "--agent", "final", "--games", "1", "--seed", "3", "--out", str(out)])
    last, _ = checkpoint.load(run / "checkpoint.npz")
    np.testing.assert_array_equal(load_agent(out).params["W1"], last["learner/params/W1"].astype(np.float16))
    assert res["eval_during_training"]["env_steps"] == 64 and res["eval_during_training"]["seed"] >= USER_EVAL_SEEDS
    train(None, run, resume=True, targets={"steps": 96, "eval_every": 64}, progress=False)  # no eval at its end
    with pytest.raises(SystemExit, match="last evaluation, at 64 env steps, is not of its final weights"):
        make_pretrained.main([str(run), "--agent", "final", "--games", "1", "--out", str(out)])
    again = make_pretrained.main([str(out), "--games", "2", "--seed", "4"])  # an agent file, scored again in place
    assert again["eval"]["games"] == again["eval_sampled"]["games"] == 2 and again["eval"]["seed"] == 4
    assert {k: again[k] for k in ("eval_during_training", "made_by", "made_with")} == {
        k: res[k] for k in ("eval_during_training", "made_by", "made_with")
    }
    np.testing.assert_array_equal(load_agent(out).params["W1"], last["learner/params/W1"].astype(np.float16))
    old = tmp_path / "old.npz"  # an agent file from before make_pretrained recorded how it was made
    save_agent(old, load_agent(out), {k: res[k] for k in ("eval_during_training", "made_by")})
    made = make_pretrained.main([str(old), "--games", "1"])  # written over itself, not over the shipped agent
    assert made["out"] == str(old) and checkpoint.load(old)[1]["eval_sampled"]["games"] == 1
    assert made["made_with"] == {"seed": 0, "env_steps": 64, "pongrl": None, "commit": None}
    with pytest.raises(SystemExit) as e:  # a training checkpoint is not an agent file: one line, exit 2
        make_pretrained.main([str(run / "checkpoint.npz"), "--games", "1"])
    assert e.value.code == 2


@pytest.mark.parametrize("doc", ["docs/results.md", "src/pongrl/pretrained/README.md"])
def test_the_documented_command_gives_the_shipped_ppo_agents_config(doc):
    """The command printed beside the agent, read by the CLI's own parser, is the config it was trained with,
    whatever the defaults have become since (e.g. ppo_gamma 0.995 in 0.6.0, against the agent's 0.99)."""
    import re
    import shlex
    from pathlib import Path

    from pongrl.cli import build_parser
    from pongrl.flags import config_from_args

    text = (Path(__file__).parents[1] / doc).read_text()
    command = re.search(r"^pongrl train --algo ppo .*?--out \S+$", text, re.M | re.S).group(0).replace("\\\n", " ")
    cfg, _ = config_from_args(build_parser().parse_args(shlex.split(command)[1:]))
    where = ("learner_threads", "emulators")  # where the work ran, placed at start-up
    assert {k: v for k, v in cfg.to_dict().items() if k not in where} == {
        k: v for k, v in load_agent("pretrained").cfg.to_dict().items() if k not in where
    }
