"""The collector: groups of games stepped in turn, the three ways a rollout ends,
exact save and restore between rollouts, and the registry every part asks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config

from pongrl import algos, checkpoint
from pongrl.collector import Collector, finished_in_order
from pongrl.env import DOWN, UP, PongVecEnv


def collector(cfg, groups=1, seed=0):
    algo = algos.get(cfg.algo)
    n = cfg.num_envs // groups
    envs = [PongVecEnv(cfg.env_id, n, cfg.seed, stream=i, streams=groups) for i in range(groups)]
    c = Collector(envs, algo.act, algo.bootstrap, np.random.default_rng(seed))
    c.reset()
    return c


def params_of(cfg):
    return algos.get(cfg.algo).init_params(cfg, np.random.default_rng(cfg.seed))


def test_a_rollout_holds_every_groups_steps_with_consistent_shapes():
    cfg = tiny_config(algo="ppo", num_envs=4, ppo_hidden=8)
    c = collector(cfg, groups=2)
    try:
        rollouts = c.collect(params_of(cfg), steps=5)
    finally:
        c.close()
    assert [r.source for r in rollouts] == [0, 1]
    for r in rollouts:
        assert r.actions.shape == r.rewards.shape == r.dones.shape == (5, 2) and r.x.rows == 10
        assert r.actions.dtype == np.uint8 and r.rewards.dtype == np.float32 and r.dones.dtype == bool
        assert set(r.extras) == {"logp", "values"} and all(v.shape == (5, 2) for v in r.extras.values())
        assert set(r.last) == {"values"} and r.last["values"].shape == (2,)
        assert set(np.unique(r.actions)) <= {UP, DOWN}
        assert np.all(r.extras["logp"] <= 0)


def test_a_rollout_ends_with_the_episodes_asked_for_and_the_next_one_goes_on():
    cfg = tiny_config(num_envs=4)
    c = collector(cfg, groups=2)
    try:
        params = params_of(cfg)
        first = c.collect(params, episodes=1)
        ended = finished_in_order(first)
        assert len(ended) >= 1 and sum(r.dones.sum() for r in first) == len(ended)
        # it stopped right after the step that ended the episode: that group acts next
        last_source, last = ended[-1]
        assert c.next_group == last_source and first[last_source].dones[-1].any()
        second = c.collect(params, budget=6)
        assert sum(r.rewards.size for r in second) == 6  # three turns of two games
    finally:
        c.close()


def test_collect_needs_a_condition():
    cfg = tiny_config()
    c = collector(cfg)
    try:
        with pytest.raises(ValueError, match="steps, episodes or budget"):
            c.collect(params_of(cfg))
    finally:
        c.close()


@pytest.mark.parametrize("algo, groups", [("reinforce", 2), ("ppo", 1)])
def test_state_and_restore_continue_exactly(algo, groups):
    """Saved between two rollouts (REINFORCE: a group's step in flight), restored in a
    new collector, the next rollouts are the same as the original's."""
    cfg = tiny_config(algo=algo, num_envs=4, ppo_hidden=8)
    params = params_of(cfg)
    a = collector(cfg, groups)
    try:
        a.collect(params, budget=6)  # odd number of turns: group 1's step is in flight
        arrays = {k: np.array(v) for k, v in a.state().items()}
        assert (any(k.startswith("pending1/") for k in arrays)) == (groups == 2)
        b = collector(cfg, groups, seed=123)  # another generator: restore must set it
        try:
            b.restore(arrays)
            for _ in range(2):
                ra, rb = a.collect(params, steps=20), b.collect(params, steps=20)
                for x, y in zip(ra, rb):
                    assert np.array_equal(x.actions, y.actions) and np.array_equal(x.rewards, y.rewards)
                    assert np.array_equal(x.x.cols, y.x.cols) and np.array_equal(x.dones, y.dones)
                    assert all(np.array_equal(x.extras[k], y.extras[k]) for k in x.extras)
        finally:
            b.close()
    finally:
        a.close()


def test_the_rng_state_round_trips_through_arrays():
    rng = np.random.default_rng(5)
    rng.random(3, dtype=np.float32)  # leaves a spare 32 bits in the generator
    other = np.random.default_rng(0)
    checkpoint.set_rng_state(other, checkpoint.rng_state(rng))
    assert other.bit_generator.state == rng.bit_generator.state
    assert np.array_equal(other.random(5), rng.random(5))


# ------------------------------------------------------------------ the registry
@pytest.mark.parametrize("name", sorted(algos.REGISTRY))
def test_every_algorithm_gives_shapes_init_acting_and_a_learner(name):
    cfg = tiny_config(algo=name, ppo_hidden=8, ppo_obs="frame+diff+pyramid")
    algo = algos.get(name)
    params = algo.init_params(cfg, np.random.default_rng(0))
    assert {k: v.shape for k, v in params.items()} == algo.param_shapes(cfg)
    assert all(v.dtype == np.float32 for v in params.values()) and params["W1"].flags.f_contiguous
    rng = np.random.default_rng(1)
    x = np.zeros((3, 6400), np.int8)
    x[0, [5, 100]] = [1, -1]
    frames = np.zeros((3, 80, 80), np.uint8)
    actions, xs, extras = algo.act(params, x, frames, rng)
    assert actions.shape == (3,) and set(actions) <= {0, UP, DOWN} and xs.rows == 3
    assert all(v.shape == (3,) for v in extras.values())
    assert set(algo.greedy(params, x, frames)) <= {0, UP, DOWN}
    assert all(v.shape == (3,) for v in algo.bootstrap(params, x, frames).values())
    learner = algo.learner(cfg, params)
    assert learner.params is params and learner.updates == 0
    assert {k.removeprefix("params/") for k in learner.state() if k.startswith("params/")} == set(params)
    assert algo.unit_weights(params).shape == (params["W1"].shape[0],)


def test_an_unknown_algorithm_names_the_known_ones():
    with pytest.raises(KeyError, match="reinforce, ppo"):
        algos.get("dqn")
