"""pongrl's REINFORCE with one game is the tutorial's loop.

The reference below is written in the tutorial's structure (dense float64
arrays, the "fake label" gradient, per-episode discounted and normalised
returns, a gradient buffer, RMSProp every batch of episodes) and plays the same
games (pongrl's PongVecEnv, one game, the run's seed) with the same random
stream. After 3 episodes both hold the same parameters, to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from pongrl.config import Config
from pongrl.env import DOWN, UP, PongVecEnv

H, D = 200, 6400
GAMMA, LR, DECAY, EPS = 0.99, 1e-4, 0.99, 1e-5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def policy_forward(model, x):
    h = np.dot(model["W1"], x)
    h[h < 0] = 0  # ReLU
    logp = np.dot(model["W2"], h)
    return sigmoid(logp), h


def policy_backward(model, eph, epdlogp, epx):
    dW2 = np.dot(eph.T, epdlogp).ravel()
    dh = np.outer(epdlogp, model["W2"])
    dh[eph <= 0] = 0
    return {"W1": np.dot(dh.T, epx), "W2": dW2}


def discount_rewards(r):
    out, running = np.zeros_like(r), 0.0
    for t in reversed(range(len(r))):
        if r[t] != 0:
            running = 0.0  # a point was scored: a new rally
        running = running * GAMMA + r[t]
        out[t] = running
    return out


def tutorial_loop(seed: int, episodes: int, batch_size: int) -> dict:
    rng = np.random.default_rng(seed)
    model = {"W1": rng.standard_normal((H, D)) / np.sqrt(D), "W2": rng.standard_normal(H) / np.sqrt(H)}
    model = {k: v.astype(np.float32).astype(np.float64) for k, v in model.items()}  # pongrl keeps float32
    grad_buffer = {k: np.zeros_like(v) for k, v in model.items()}
    rmsprop_cache = {k: np.zeros_like(v) for k, v in model.items()}
    env = PongVecEnv("ALE/Pong-v5", 1, seed)
    x = env.reset()[0].astype(np.float64)
    xs, hs, dlogps, drs = [], [], [], []
    episode = 0
    try:
        while episode < episodes:
            aprob, h = policy_forward(model, x)
            u = rng.random(1, dtype=np.float32)[0]  # pongrl draws float32 uniforms
            action = UP if u < aprob else DOWN
            xs.append(x)
            hs.append(h)
            dlogps.append((1.0 if action == UP else 0.0) - aprob)  # the "fake label" gradient
            obs, rewards, dones, _ = env.step(np.array([action]))
            x = obs[0].astype(np.float64)
            drs.append(float(rewards[0]))
            if dones[0]:
                episode += 1
                epx, eph, epdlogp, epr = np.vstack(xs), np.vstack(hs), np.array(dlogps), np.array(drs)
                xs, hs, dlogps, drs = [], [], [], []
                advantage = discount_rewards(epr)
                advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
                grad = policy_backward(model, eph, epdlogp * advantage, epx)
                for k in model:
                    grad_buffer[k] += grad[k]
                if episode % batch_size == 0:
                    for k, v in model.items():
                        g = grad_buffer[k]
                        rmsprop_cache[k] = DECAY * rmsprop_cache[k] + (1 - DECAY) * g**2
                        model[k] += LR * g / (np.sqrt(rmsprop_cache[k]) + EPS)
                        grad_buffer[k] = np.zeros_like(v)
    finally:
        env.close()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 2])
def test_one_game_of_pongrl_reinforce_is_the_tutorials_loop(tmp_path, batch_size):
    from pongrl import checkpoint
    from pongrl.train import train

    cfg = Config(algo="reinforce", num_envs=1, episodes=3, batch_size=batch_size, seed=4, checkpoint_every=0)
    train(cfg, tmp_path / "run", progress=False)
    arrays, _ = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    reference = tutorial_loop(cfg.seed, 3, batch_size)
    rng = np.random.default_rng(cfg.seed)
    initial = {"W1": rng.standard_normal((H, D)) / np.sqrt(D), "W2": rng.standard_normal(H) / np.sqrt(H)}
    for k in ("W1", "W2"):
        mine = arrays[f"learner/params/{k}"]
        assert np.abs(mine - initial[k]).max() > 1e-5  # the updates moved them
        # RMSProp divides by the root of a weight's mean squared gradient, so where a weight's
        # gradients nearly cancel, float32 (pongrl) and float64 (here) can differ by a small
        # part of one step: atol is a hundredth of one step (LR)
        np.testing.assert_allclose(mine, reference[k], rtol=2e-4, atol=0.01 * LR, err_msg=k)
    assert int(arrays["learner/updates"]) == 3 // batch_size
