"""GAE against a hand computation, and its lambda = 1 / lambda = 0 special cases."""

import numpy as np
import pytest

from pongrl.gae import gae


def discounted_returns(rewards, dones, last_values, gamma):
    """Reference: (T, N) discounted sums of rewards up to each episode's end,
    bootstrapped with last_values (N,) where the rollout cuts an episode."""
    out = np.zeros(np.shape(rewards), np.float64)
    running = np.asarray(last_values, np.float64).copy()  # (N,)
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * (1.0 - dones[t]) * running
        out[t] = running
    return out


def test_gae_by_hand_with_a_done_in_the_middle():
    # Two games, four steps, gamma = lam = 0.5 (so gamma * lam = 0.25).
    # Game 0: the step at t=1 ends its episode (done), so V(t=2) is not used
    # for t=1 and nothing after t=1 flows back into t<=1.
    rewards = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    values = np.array([[0.5, 0.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    dones = np.array([[0, 0], [1, 0], [0, 0], [0, 0]], bool)
    last = np.array([4.0, 1.0])
    # Game 0:
    #   delta_3 = 0 + 0.5*4 - 1 = 1        A_3 = 1
    #   delta_2 = 2 + 0.5*1 - 2 = 0.5      A_2 = 0.5 + 0.25*1 = 0.75
    #   delta_1 = -1 + 0 (done) - 1 = -2   A_1 = -2 (done: A_2 is not used)
    #   delta_0 = 1 + 0.5*1 - 0.5 = 1      A_0 = 1 + 0.25*(-2) = 0.5
    # Game 1 (all values 0, bootstrap 1):
    #   delta_3 = 0.5, others 0            A = 0.5 * 0.25**(3 - t)
    want_adv = np.array([[0.5, 0.0078125], [-2.0, 0.03125], [0.75, 0.125], [1.0, 0.5]])
    adv, ret = gae(rewards, values, dones, last, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv, want_adv, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ret, want_adv + values, rtol=0, atol=1e-12)  # [1, -1, 2.75, 2] for game 0


def test_discounted_returns_by_hand():
    rewards = np.array([[1.0], [-1.0], [2.0], [0.0]])
    dones = np.array([[0], [1], [0], [0]], bool)
    # t=3: 0 + 0.5*4 = 2 ; t=2: 2 + 0.5*2 = 3 ; t=1: -1 (done) ; t=0: 1 + 0.5*(-1) = 0.5
    np.testing.assert_allclose(discounted_returns(rewards, dones, np.array([4.0]), 0.5)[:, 0], [0.5, -1.0, 3.0, 2.0])


def _random_rollout(seed, T=50, N=3):
    rng = np.random.default_rng(seed)
    rewards = rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0], (T, N))
    values = rng.standard_normal((T, N))
    dones = rng.random((T, N)) < 0.1
    return rewards, values, dones, rng.standard_normal(N)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_lambda_one_is_discounted_returns_minus_values(seed):
    rewards, values, dones, last = _random_rollout(seed)
    adv, ret = gae(rewards, values, dones, last, gamma=0.99, lam=1.0)
    want = discounted_returns(rewards, dones, last, 0.99)
    np.testing.assert_allclose(adv, want - values, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret, want, rtol=1e-10, atol=1e-10)


def test_gae_lambda_zero_is_one_step_td_error():
    rewards, values, dones, last = _random_rollout(3)
    adv, _ = gae(rewards, values, dones, last, gamma=0.9, lam=0.0)
    nxt = np.concatenate([values[1:], last[None]])
    np.testing.assert_allclose(adv, rewards + 0.9 * (1 - dones) * nxt - values, rtol=1e-12, atol=1e-12)


def test_gae_accepts_float32_inputs_and_returns_float64():
    rewards, values, dones, last = _random_rollout(4)
    adv, ret = gae(rewards.astype(np.float32), values.astype(np.float32), dones, last.astype(np.float32), 0.99, 0.95)
    assert adv.dtype == ret.dtype == np.float64 and adv.shape == rewards.shape
