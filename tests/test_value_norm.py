"""Value normalisation (ppo_norm_value): the running moments of the returns, the
buffer's units, the learner with it on, and its state in a checkpoint."""

import numpy as np
import pytest

from pongrl import actor_critic, checkpoint, ppo
from pongrl.env import UP
from pongrl.gae import gae
from pongrl.rollouts import RolloutBuffer
from test_ppo import assert_restores_bit_exactly, drive, fake_rollout, new_learner, random_sparse, small_cfg


def test_merged_moments_equal_those_of_all_the_data():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size).astype(np.float32) for size in (1, 7, 100, 13)]
    moments = np.zeros(3)
    for c in chunks:
        moments = ppo.merge_moments(moments, c)
    data = np.concatenate(chunks).astype(np.float64)
    n, mean, m2 = moments
    assert n == len(data)
    assert mean == pytest.approx(data.mean(), rel=1e-12)
    assert m2 / n == pytest.approx(data.var(), rel=1e-12)
    assert ppo.value_scale(moments) == pytest.approx((data.mean(), np.sqrt(data.var() + 1e-8)), rel=1e-12)


def test_value_scale_is_the_identity_before_any_return():
    assert ppo.value_scale(np.zeros(3)) == (0.0, 1.0)


def test_buffer_scales_values_for_gae_and_back_for_the_targets():
    rng = np.random.default_rng(5)
    params = actor_critic.init_params(6400, 8, 2, rng)
    r = fake_rollout(rng, params, T=5, n=2)
    r.extras["logp"] = rng.standard_normal((5, 2)).astype(np.float32)  # unique: they find the rows below
    before, after = (0.3, 2.0), (-0.1, 0.5)
    buf = RolloutBuffer(actor_critic.action_set(params))
    buf.add(r)
    buf.compute_returns(0.9, 0.8, before)
    values = 0.3 + 2.0 * r.extras["values"].astype(np.float64)
    adv, ret = gae(r.rewards, values, r.dones, 0.3 + 2.0 * r.last["values"].astype(np.float64), 0.9, 0.8)
    np.testing.assert_allclose(buf.flat("advantages"), adv.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(buf.flat("returns"), ret.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(buf.flat("values"), values.reshape(-1), rtol=1e-6)
    (b,) = buf.get(1, np.random.default_rng(0), after)
    order = [int(np.flatnonzero(buf.flat("logp") == lp)[0]) for lp in b.logp]
    np.testing.assert_allclose(b.returns, (ret.reshape(-1)[order] + 0.1) / 0.5, rtol=1e-5)
    np.testing.assert_allclose(b.values, (values.reshape(-1)[order] + 0.1) / 0.5, rtol=1e-5)


def test_without_the_option_the_learner_keeps_no_moments():
    learner = new_learner(small_cfg())
    drive(learner, np.random.default_rng(1), 2)
    assert "returns_seen" not in learner.state()
    assert not learner.returns_seen.any()


def test_the_learner_counts_every_return_it_fits():
    cfg = small_cfg(ppo_norm_value=True)
    learner = new_learner(cfg)
    drive(learner, np.random.default_rng(1), 3)
    assert learner.state()["returns_seen"][0] == 3 * cfg.num_envs * cfg.ppo_num_steps


def test_a_normalised_value_head_learns_a_bandit_and_its_value():
    """Reward 2 for UP, 0 for DOWN, gamma 0: the policy comes to prefer UP, and the
    value, scaled back, to the reward of the policy (~2)."""
    cfg = small_cfg(ppo_lr=1e-2, ppo_ent_coef=0.0, ppo_clip=0.2, ppo_gamma=0.0, ppo_norm_value=True)
    learner = new_learner(cfg)
    drive(learner, np.random.default_rng(1), 30, reward_of=lambda a: 2.0 * (a == UP).astype(np.float32))
    rng = np.random.default_rng(2)
    x, frames = random_sparse(rng, 50, 6400, 20), np.zeros((50, 80, 80), np.uint8)
    p_up = actor_critic.probabilities(learner.params, x, frames)[:, list(actor_critic.action_set(learner.params)).index(UP)]
    assert p_up.mean() > 0.9
    mean, std = ppo.value_scale(learner.returns_seen)
    value = mean + std * actor_critic.bootstrap(learner.params, x, frames)["values"]
    assert np.mean(value) == pytest.approx(2.0 * p_up.mean(), abs=0.3)


def test_its_state_goes_through_a_checkpoint_and_continues_bit_exactly(tmp_path):
    cfg = small_cfg(ppo_norm_value=True)
    a = new_learner(cfg)
    drive(a, np.random.default_rng(1), 2)
    checkpoint.save(tmp_path / "c.npz", a.state(), {"kind": "test"})
    arrays, _ = checkpoint.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(arrays["returns_seen"], a.returns_seen)
    assert_restores_bit_exactly(a, cfg)


@pytest.mark.parametrize("bad", [np.zeros(2), np.array([1.0, np.nan, 0.0]), np.array([-1.0, 0.0, 0.0])])
def test_restore_rejects_damaged_moments(bad):
    cfg = small_cfg(ppo_norm_value=True)
    state = new_learner(cfg).state() | {"returns_seen": bad}
    with pytest.raises(ValueError, match="returns_seen"):
        new_learner(cfg).restore(state)


def test_restore_needs_the_moments_when_the_config_normalises():
    state = new_learner(small_cfg()).state()
    with pytest.raises(KeyError):
        new_learner(small_cfg(ppo_norm_value=True)).restore(state)
