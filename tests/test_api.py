"""The Python API (pongrl.load_agent, Agent.act, pongrl.train, pongrl.evaluate)
and the Gymnasium wrapper DifferenceFrameObservation."""

from __future__ import annotations

import ale_py
import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_config
from gymnasium.utils.env_checker import check_env

import pongrl
from pongrl.checkpoint import CheckpointError
from pongrl.preprocess import frame_diff, preprocess
from pongrl.wrappers import DifferenceFrameObservation

gym.register_envs(ale_py)


# ------------------------------------------------------------------ agents
def test_the_readme_loop_plays_raw_frames_with_the_pretrained_agent():
    agent = pongrl.load_agent("pretrained")
    env = gym.make("ALE/Pong-v5")
    try:
        obs, info = env.reset(seed=0)
        agent.reset()
        actions = []
        for _ in range(200):
            a = agent.act(obs)
            assert type(a) is int and env.action_space.contains(a)
            actions.append(a)
            obs, reward, terminated, truncated, info = env.step(a)
            assert not (terminated or truncated)
        assert type(agent.act(obs, greedy=True)) is int
    finally:
        env.close()
    assert len(set(actions)) > 1  # it moves the paddle both ways


def test_act_on_raw_frames_is_act_batch_on_the_tutorials_inputs():
    """act() preprocesses a raw frame and keeps the previous one; reset() forgets it."""
    agent = pongrl.load_agent("pretrained")
    env = gym.make("ALE/Pong-v5")
    try:
        obs, _ = env.reset(seed=1)
        frames = [obs] + [env.step(env.action_space.sample())[0] for _ in range(30)]
    finally:
        env.close()
    agent.reset()
    got = [agent.act(f, greedy=True) for f in frames]
    binary = [preprocess(f) for f in frames]
    want = [
        int(agent.act_batch(frame_diff(cur, binary[max(i - 1, 0)])[None], cur[None], None, greedy=True)[0])
        for i, cur in enumerate(binary)
    ]
    assert got == want
    agent.reset()
    assert agent.act(frames[5], greedy=True) == int(
        agent.act_batch(np.zeros((1, 6400), np.int8), binary[5][None], None, greedy=True)[0]
    )


def test_load_agent_takes_the_pretrained_names_a_file_and_a_run_folder(tmp_path):
    a, b = pongrl.load_agent("pretrained"), pongrl.load_agent("pretrained:ppo")
    assert a.cfg == b.cfg and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    from pongrl.agent import pretrained_path, save_agent

    assert pongrl.load_agent(pretrained_path()).cfg == a.cfg
    (tmp_path / "run").mkdir()
    save_agent(tmp_path / "run" / "checkpoint.npz", a, {})
    assert pongrl.load_agent(tmp_path / "run").cfg == a.cfg  # a folder: its checkpoint.npz
    tutorial = pongrl.load_agent("pretrained:reinforce")  # the tutorial's network, trained by its REINFORCE
    assert tutorial.cfg.algo == "reinforce" and tutorial.params["W1"].shape == (200, 6400)
    with pytest.raises(CheckpointError, match="no pretrained agent 'chess'"):
        pongrl.load_agent("pretrained:chess")
    with pytest.raises(pongrl.UserError, match="checkpoint not found"):
        pongrl.load_agent(tmp_path / "nothing.npz")


@pytest.mark.slow
def test_train_and_evaluate_from_python(tmp_path):
    cfg = tiny_config(algo="ppo", episodes=None, steps=64, ppo_num_steps=16, ppo_hidden=8, ppo_minibatches=2)
    summary = pongrl.train(cfg, tmp_path / "run", progress=False)
    assert summary["env_steps"] == 64 and summary["updates"] == 2 and not summary["interrupted"]
    more = pongrl.train(None, tmp_path / "run", resume=True, targets={"steps": 96}, progress=False)
    assert more["env_steps"] == 96 and more["updates"] == 3
    res = pongrl.evaluate(pongrl.load_agent(tmp_path / "run"), games=1, seed=3)
    assert res["games"] == 1 and -21 <= res["mean"] <= 21


# ------------------------------------------------------------------ the wrapper
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_difference_frame_observation_passes_the_env_checker():
    env = DifferenceFrameObservation(gym.make("ALE/Pong-v5"))
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_difference_frame_observation_gives_the_tutorials_input():
    raw, wrapped = gym.make("ALE/Pong-v5"), DifferenceFrameObservation(gym.make("ALE/Pong-v5"))
    try:
        obs, _ = wrapped.reset(seed=3)
        frame, _ = raw.reset(seed=3)
        assert obs in wrapped.observation_space and obs.dtype == np.int8 and obs.shape == (6400,)
        assert not obs.any()  # a game's first frame has no previous one
        prev = preprocess(frame)
        for a in [2, 3] * 20:
            obs, r, *_ = wrapped.step(a)
            frame, r2, *_ = raw.step(a)
            assert obs in wrapped.observation_space and r == r2
            np.testing.assert_array_equal(obs, frame_diff(preprocess(frame), prev))
            prev = preprocess(frame)
        assert set(np.unique(obs)) <= {-1, 0, 1}
        obs, _ = wrapped.reset(seed=4)
        assert not obs.any()  # reset forgets the previous game's frame
    finally:
        raw.close()
        wrapped.close()


def test_difference_frame_observation_refuses_other_observations():
    with pytest.raises(ValueError, match=r"\(210, 160, 3\).*got an observation space of shape \(210, 160\)"):
        DifferenceFrameObservation(gym.make("ALE/Pong-v5", obs_type="grayscale"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 5])
def test_play_records_the_game_that_eval_scores(seed):
    """`pongrl play --seed S` and `pongrl eval --games 1 --seed S` play one game: same emulator,
    seed and sticky actions, the same greedy moves, so the same score."""
    from pongrl.evaluate import evaluate, play_game
    from pongrl.preprocess import preprocess

    agent, frames = pongrl.load_agent("pretrained:reinforce"), []
    played = play_game(agent, frames.append, seed=seed)
    assert played["finished"] and played["score"] == evaluate(agent, 1, seed=seed)["scores"][0]
    assert len(frames) == played["steps"] and frames[0].shape == (210, 160, 3)
    assert preprocess(frames[0]).sum() > 0
