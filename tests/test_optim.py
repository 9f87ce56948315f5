"""optim.py (RMSProp) by hand, and the learning signal of one REINFORCE update."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_actions, random_diff_frames

from pongrl import policy
from pongrl.env import UP
from pongrl.optim import linear_decay, rmsprop_step
from pongrl.reinforce import Episodes, episode_advantages, policy_gradient
from pongrl.sparse import SparseRows


def test_rmsprop_one_step_by_hand():
    params = {"W1": np.array([[1.0, -2.0, 0.5]]), "W2": np.array([0.25])}
    grads = {"W1": np.array([[2.0, 0.0, -1.0]]), "W2": np.array([0.5])}
    cache = {"W1": np.array([[1.0, 4.0, 0.0]]), "W2": np.array([0.0])}
    ids = {k: id(v) for k, v in params.items()}
    rmsprop_step(params, grads, cache, lr=0.1, decay=0.9, eps=1e-5)
    # cache = 0.9 * cache + 0.1 * g^2
    np.testing.assert_allclose(cache["W1"], [[0.9 + 0.4, 3.6, 0.1]], rtol=1e-15)
    np.testing.assert_allclose(cache["W2"], [0.025], rtol=1e-15)
    # param += 0.1 * g / (sqrt(cache) + 1e-5)
    np.testing.assert_allclose(
        params["W1"], [[1.0 + 0.2 / (np.sqrt(1.3) + 1e-5), -2.0, 0.5 - 0.1 / (np.sqrt(0.1) + 1e-5)]], rtol=1e-15
    )
    np.testing.assert_allclose(params["W2"], [0.25 + 0.05 / (np.sqrt(0.025) + 1e-5)], rtol=1e-15)
    assert {k: id(v) for k, v in params.items()} == ids  # updated in place
    np.testing.assert_array_equal(grads["W1"], [[2.0, 0.0, -1.0]])  # gradients untouched


def test_rmsprop_is_gradient_ascent_and_keeps_dtype():
    params = {"W": np.zeros(4, np.float32)}
    cache = {"W": np.zeros(4, np.float32)}
    g = {"W": np.array([1.0, -1.0, 1e-3, 0.0], np.float32)}
    rmsprop_step(params, g, cache, lr=1e-3, decay=0.99, eps=1e-5)
    assert params["W"].dtype == np.float32 and cache["W"].dtype == np.float32
    assert params["W"][0] > 0 and params["W"][1] < 0 and params["W"][2] > 0 and params["W"][3] == 0
    # first step from an empty cache moves by about lr / sqrt(1 - decay) = 0.01
    np.testing.assert_allclose(params["W"][:2], [0.01, -0.01], rtol=1e-3)


def test_rmsprop_two_steps_accumulate_cache():
    params, cache = {"W": np.zeros(1)}, {"W": np.zeros(1)}
    for g in (3.0, -1.0):
        rmsprop_step(params, {"W": np.array([g])}, cache, lr=0.5, decay=0.5, eps=0.0)
    # cache: 4.5 then 0.5 * 4.5 + 0.5 = 2.75; param: 0.5 * 3 / sqrt(4.5) - 0.5 / sqrt(2.75)
    np.testing.assert_allclose(cache["W"], [2.75])
    np.testing.assert_allclose(params["W"], [1.5 / np.sqrt(4.5) - 0.5 / np.sqrt(2.75)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_update_raises_log_prob_of_good_actions_and_lowers_bad(seed):
    rng = np.random.default_rng(seed)
    lengths = np.array([30, 45, 25])
    T = int(lengths.sum())
    x = random_diff_frames(rng, T, density=0.005)
    actions = random_actions(rng, T)
    rewards = np.where(rng.random(T) < 0.1, rng.choice([-1.0, 1.0], T), 0.0).astype(np.float32)
    rewards[np.cumsum(lengths) - 1] = rng.choice([-1.0, 1.0], len(lengths))
    adv = episode_advantages(rewards, lengths, 0.99)
    pos, neg = adv > 0, adv < 0
    assert pos.any() and neg.any()

    params = policy.init_params(32, rng, dtype=np.float64)
    cache = policy.zeros_like(params)

    def log_pi():
        p, _ = policy.forward(params, x)
        return np.log(np.where(actions == UP, p, 1 - p))

    before = log_pi()
    grads, _ = policy_gradient(params, Episodes(SparseRows.from_dense(x), actions, rewards, lengths), 0.99)
    rmsprop_step(params, grads, cache, lr=1e-3, decay=0.99, eps=1e-5)
    after = log_pi()
    assert after[pos].sum() > before[pos].sum()
    assert after[neg].sum() < before[neg].sum()
    assert adv @ after > adv @ before  # the objective REINFORCE ascends went up


def test_linear_decay_by_hand():
    assert [linear_decay(s, 400) for s in (0, 100, 300, 400, 900)] == [1.0, 0.75, 0.25, 0.0, 0.0]
    assert linear_decay(10**9, 0) == 1.0  # 0: a constant rate


def test_lr_floor_is_checked_against_lr():
    from pongrl.config import Config, ConfigError

    assert Config().lr_floor == 0.0 and Config(lr=3e-3, lr_floor=3e-3).validate().lr_floor == 3e-3
    with pytest.raises(ConfigError, match=r"lr_floor must be in \[0, lr\] \(lr is 0.001\), got 0.002"):
        Config(lr=1e-3, lr_floor=2e-3).validate()
    with pytest.raises(ConfigError, match="lr_floor must be >= 0, got -1"):
        Config(lr_floor=-1.0).validate()


def test_advantages_by_hand_are_normalised_within_each_episode():
    """Two episodes, gamma 0.5: a lost point after 2 steps, a won point after 1 step."""
    rewards, lengths = np.array([0.0, -1.0, 1.0], np.float32), np.array([2, 1])
    # discounted returns: episode 1 [-0.5, -1], episode 2 [1]
    ep = episode_advantages(rewards, lengths, 0.5)
    np.testing.assert_allclose(ep, [1.0, -1.0, 0.0], atol=1e-6)  # each episode on its own: mean 0, std 1
