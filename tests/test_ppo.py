"""PPO: hand-written gradients against finite differences, Adam, the input kinds,
the rollout buffer, the learner, learning while the games play, bit-exact resume."""

import dataclasses
import json

import numpy as np
import pytest

from pongrl import actor_critic, inputs, optim, ppo
from pongrl.config import Config, ConfigError
from pongrl.env import DOWN, UP
from pongrl.gae import gae
from pongrl.rollouts import Batch, Rollout, RolloutBuffer
from pongrl.runs import Run
from pongrl.sparse import SparseRows

# ---------------------------------------------------------------- helpers
D_SMALL, H_SMALL, A_SMALL, B_SMALL = 40, 6, 3, 16


def random_sparse(rng, rows, dim, nnz_per_row=5):
    x = np.zeros((rows, dim), np.int8)
    for r in range(rows - 1):  # the last row stays empty, like a reset game's input
        cols = rng.choice(dim, nnz_per_row, replace=False)
        x[r, cols] = rng.choice([-1, 1], nnz_per_row)
    return x


def gradcheck_problem(seed=0):
    """Float64 params and a minibatch away from every kink (ReLU, ratio and value clips)."""
    rng = np.random.default_rng(seed)
    params = actor_critic.init_params(D_SMALL, H_SMALL, A_SMALL, rng, dtype=np.float64)
    params = {
        k: np.asfortranarray(rng.standard_normal(v.shape)) if k == "W1" else rng.standard_normal(v.shape)
        for k, v in params.items()
    }
    xd = random_sparse(rng, B_SMALL, D_SMALL)
    x = inputs.compact(SparseRows.from_dense(xd), np.float64)
    logits, v, _ = actor_critic.forward(params, x)
    logp = actor_critic.log_softmax(logits)
    actions = rng.integers(0, A_SMALL, B_SMALL)
    old_logp = logp[np.arange(B_SMALL), actions] + rng.normal(0, 0.2, B_SMALL)  # some ratios outside the clip
    batch = Batch(
        x,
        actions,
        old_logp,
        v + rng.normal(0, 0.2, B_SMALL),
        rng.standard_normal(B_SMALL),
        rng.standard_normal(B_SMALL),
    )
    return params, xd, batch


def assert_away_from_kinks(params, xd, b, c, margin=1e-4):
    pre = xd @ params["W1"].T + params["b1"]
    assert np.abs(pre).min() > margin
    logits, v, _ = actor_critic.forward(params, b.x)
    ratio = np.exp(actor_critic.log_softmax(logits)[np.arange(len(v)), b.actions] - b.logp)
    assert np.abs(np.abs(ratio - 1) - c.clip).min() > margin
    if c.vclip is not None:
        assert np.abs(np.abs(v - b.values) - c.vclip).min() > margin
        vc = b.values + np.clip(v - b.values, -c.vclip, c.vclip)
        out = np.abs(v - b.values) > c.vclip
        assert np.abs((v - b.returns) ** 2 - (vc - b.returns) ** 2)[out].min() > margin


def full_grads(grads, rows, params):
    out = dict(grads)
    out["W1"] = np.zeros_like(params["W1"])
    out["W1"].T[rows] = grads["W1"]
    return out


def numeric_grads(params, b, c, eps=1e-6):
    out = {}
    for k, p in params.items():
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = ppo.loss_and_grads(params, b, c)[0]
            p[i] = old - eps
            down = ppo.loss_and_grads(params, b, c)[0]
            p[i] = old
            g[i] = (up - down) / (2 * eps)
        out[k] = g
    return out


def rel_error(a, b):
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom < 1e-12 else float(np.linalg.norm(a - b) / denom)


# ---------------------------------------------------------------- gradient checks
TERMS = {
    # policy only: no value or entropy weight
    "policy": (dict(vf_coef=0.0, ent_coef=0.0), False),
    # value only: zero advantages make the surrogate and its gradient exactly 0
    "value_clipped": (dict(vf_coef=1.0, ent_coef=0.0), True),
    "value_unclipped": (dict(vf_coef=1.0, ent_coef=0.0, vclip=None), True),
    "entropy": (dict(vf_coef=0.0, ent_coef=1.0), True),
    "all": (dict(vf_coef=0.5, ent_coef=0.01), False),
}


@pytest.mark.parametrize("term", list(TERMS))
def test_gradients_match_finite_differences(term):
    kw, zero_adv = TERMS[term]
    params, xd, b = gradcheck_problem()
    if zero_adv:
        b = dataclasses.replace(b, advantages=np.zeros_like(b.advantages))
    c = ppo.Coefs(**{"clip": 0.1, "vclip": 0.1, **kw})
    assert_away_from_kinks(params, xd, b, c)
    _, _, grads, rows = ppo.loss_and_grads(params, b, c)
    ana = full_grads(grads, rows, params)
    num = numeric_grads(params, b, c)
    for k in params:
        assert ana[k].shape == params[k].shape
        assert rel_error(ana[k], num[k]) < 1e-6, (term, k, rel_error(ana[k], num[k]))
    assert np.abs(ana["W1"]).max() > 1e-3 and np.abs(ana["b1"]).max() > 1e-3  # the check is not vacuous
    head = ("Wv", "bv") if term.startswith("value") else ("Wpi", "bpi")
    assert all(np.abs(ana[k]).max() > 1e-3 for k in head)


def test_policy_check_covers_clipped_and_unclipped_samples():
    params, _, b = gradcheck_problem()
    logits, _, _ = actor_critic.forward(params, b.x)
    ratio = np.exp(actor_critic.log_softmax(logits)[np.arange(B_SMALL), b.actions] - b.logp)
    clipped = np.abs(ratio - 1) > 0.1
    assert 0 < clipped.sum() < B_SMALL
    pg1, pg2 = -b.advantages * ratio, -b.advantages * np.clip(ratio, 0.9, 1.1)
    assert (pg2 > pg1).any()  # some samples get no policy gradient


def test_compact_keeps_the_occurring_columns_in_order():
    rng = np.random.default_rng(2)
    xd = random_sparse(rng, 7, D_SMALL)
    xd[:, 5] = 0
    xd[3, 5] = -1  # a column that occurs in one row only
    got = inputs.compact(SparseRows.from_dense(xd))
    np.testing.assert_array_equal(got.cols, np.flatnonzero(np.any(xd != 0, axis=0)))
    np.testing.assert_array_equal(got.X, xd[:, got.cols])
    assert got.X.dtype == np.float32
    empty = inputs.compact(SparseRows.from_dense(np.zeros((2, D_SMALL), np.int8)))
    assert empty.cols.shape == (0,) and empty.X.shape == (2, 0)


def test_compact_forward_agrees_with_dense():
    rng = np.random.default_rng(1)
    params = actor_critic.init_params(D_SMALL, H_SMALL, 2, rng, dtype=np.float64)
    params["b1"][:] = rng.standard_normal(H_SMALL)
    xd = random_sparse(rng, 9, D_SMALL)
    xs = SparseRows.from_dense(xd)
    h = np.maximum(xd @ params["W1"].T + params["b1"], 0)
    logits, v, hh = actor_critic.forward(params, inputs.compact(xs, np.float64))
    np.testing.assert_allclose(hh, h, atol=1e-12)
    np.testing.assert_allclose(logits, h @ params["Wpi"].T + params["bpi"], atol=1e-12)
    np.testing.assert_allclose(v, h @ params["Wv"] + params["bv"], atol=1e-12)


# ---------------------------------------------------------------- Adam and clipping
def adam_reference(p, g, m, v, t, lr, eps):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    return p - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + eps), m, v


def adam_whole(p, m, v, g, rows, t, lr, eps):
    """Adam over whole arrays, the float32 operations in optim's order: the bits to match."""
    b1, b2 = optim.ADAM_BETAS
    m *= b1
    v *= b2
    m[rows] += (1 - b1) * g
    v[rows] += (1 - b2) * g * g
    denom = np.sqrt(v)
    denom /= np.sqrt(1 - b2**t)
    denom += eps
    step = m * (lr / (1 - b1**t))
    step /= denom
    p -= step


@pytest.mark.parametrize("chunk", [1, 7, 64, 10**6])
@pytest.mark.parametrize("spans", [[(0, 13)], [(0, 6), (6, 13)], [(0, 1), (1, 12), (12, 13)]])
def test_adam_by_rows_and_chunks_gives_the_same_bits(chunk, spans):
    """Any cut of the rows into spans (the threads') and chunks: the bits of one whole step."""
    rng = np.random.default_rng(chunk)
    p, m, v = (rng.standard_normal((13, 5)).astype(np.float32) for _ in range(3))
    v = np.abs(v)
    g, rows = rng.standard_normal((4, 5)).astype(np.float32), np.array([0, 3, 4, 11])
    whole = [a.copy() for a in (p, m, v)]
    for t in (2, 3):
        adam_whole(*whole, g, rows, t, 1e-3, 1e-5)
        for span in spans:
            optim.adam_rows(p, m, v, g, rows, t, 1e-3, 1e-5, span, chunk=chunk)
        for a, b in zip((p, m, v), whole):
            np.testing.assert_array_equal(a, b)


def test_adam_matches_reference_on_every_row():
    rng = np.random.default_rng(2)
    params = actor_critic.init_params(D_SMALL, H_SMALL, 2, rng, dtype=np.float64)
    m = {k: rng.standard_normal(v.shape) * 0.1 for k, v in params.items()}
    v = {k: rng.random(v.shape) * 0.1 for k, v in params.items()}
    m["W1"], v["W1"] = np.asfortranarray(m["W1"]), np.asfortranarray(v["W1"])
    rows = np.array([1, 5, 7])
    grads = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    grads["W1"] = rng.standard_normal((3, H_SMALL))
    dense_g = full_grads(grads, rows, params)
    before = {k: p.copy() for k, p in params.items()}
    m0, v0 = {k: a.copy() for k, a in m.items()}, {k: a.copy() for k, a in v.items()}
    optim.adam_step(params, grads, rows, m, v, 3, 1e-2, 1e-5)
    for k in params:  # the rows (pixels) absent from the minibatch move too: their moments decay
        p_ref, m_ref, v_ref = adam_reference(before[k], dense_g[k], m0[k], v0[k], 3, 1e-2, 1e-5)
        np.testing.assert_allclose(params[k], p_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m[k], m_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(v[k], v_ref, rtol=1e-12, atol=1e-12)
    assert params["W1"].flags.f_contiguous


def decay_after_one_gradient(steps, flush_every):
    """Adam on a network whose pixel 3 has a gradient at step 1 only; its moments then decay."""
    rng = np.random.default_rng(3)
    params = actor_critic.init_params(D_SMALL, H_SMALL, 2, rng)
    m, v = ({k: np.zeros_like(a) for k, a in params.items()} for _ in range(2))
    grads = {k: np.zeros_like(p) for k, p in params.items()}
    g1 = rng.standard_normal((1, H_SMALL)).astype(np.float32)
    tiny, denormal = np.finfo(np.float32).tiny, 0  # tiny: the smallest normal float32
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(optim, "FLUSH_EVERY", flush_every)
        for t in range(1, steps):
            grads["W1"] = g1 * (t == 1)
            optim.adam_step(params, grads, np.array([3]), m, v, t, 1e-3, 1e-5)
            denormal = max(denormal, int(((m["W1"] != 0) & (np.abs(m["W1"]) < tiny)).sum()))
    return params, m, denormal


def test_moments_of_pixels_that_stop_occurring_never_become_denormal():
    """Without the flush, Adam's first moment of a pixel that stopped occurring sinks into
    float32's denormals and stays there; with it, it never gets there, and the weights are the same."""
    plain, m_plain, denormal_plain = decay_after_one_gradient(1200, flush_every=10**9)
    flushed, m_flushed, denormal_flushed = decay_after_one_gradient(1200, flush_every=optim.FLUSH_EVERY)
    assert denormal_plain == H_SMALL and (m_plain["W1"] != 0).any()  # stuck: 0.9 x 4 units rounds to 4
    assert denormal_flushed == 0 and not m_flushed["W1"].any()
    for k in plain:
        np.testing.assert_array_equal(flushed[k], plain[k], err_msg=k)


def test_flushing_tiny_moments_changes_no_weight():
    """Adam with and without the flush, moments seeded below TINY: the same float32 weights."""
    rng = np.random.default_rng(4)
    p = rng.standard_normal((50, 8)).astype(np.float32)
    m, v = (np.full((50, 8), 1e-31, np.float32) * rng.random((50, 8), np.float32) for _ in range(2))
    g, rows = rng.standard_normal((5, 8)).astype(np.float32), np.arange(5)
    plain = [a.copy() for a in (p, m, v)]
    adam_whole(*plain, g, rows, optim.FLUSH_EVERY, 1e-3, 1e-5)
    optim.adam_step({"W1": p.T}, {"W1": g}, rows, {"W1": m.T}, {"W1": v.T}, optim.FLUSH_EVERY, 1e-3, 1e-5)
    np.testing.assert_array_equal(p, plain[0])
    assert not m[5:].any() and plain[1][5:].all()  # only the flush differs: the untouched rows' moments


def test_clip_grad_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    assert optim.clip_grad_norm(g, 10.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [3.0, 0.0])  # under the limit: untouched
    assert optim.clip_grad_norm(g, 1.0) == pytest.approx(5.0)
    total = np.sqrt(sum((a**2).sum() for a in g.values()))
    assert total == pytest.approx(1.0, rel=1e-5)


# ---------------------------------------------------------------- inputs, actions, evaluation helpers
@pytest.mark.parametrize("obs", ["diff", "frame+diff", "frame+diff+pyramid"])
def test_probabilities_and_greedy_actions(obs):
    rng = np.random.default_rng(3)
    params = actor_critic.init_params(inputs.WIDTHS[obs], 8, 2, rng)
    frames = (rng.random((5, 80, 80)) < 0.01).astype(np.uint8)
    x = random_sparse(rng, 5, 6400, 20)
    assert inputs.kind_of_width(params["W1"].shape[1]) == obs
    assert tuple(actor_critic.action_set(params)) == actor_critic.ACTIONS == (UP, DOWN)
    p = actor_critic.probabilities(params, x, frames)
    assert p.shape == (5, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert set(actor_critic.greedy_actions(params, x, frames)) <= {UP, DOWN}


def test_frame_plus_diff_encoding():
    frames = np.zeros((2, 80, 80), np.uint8)
    frames[0, 0, 3] = 1
    x = np.zeros((2, 6400), np.int8)
    x[1, 10] = -1
    dense = inputs.encode(x, frames, "frame+diff").to_dense(12800)
    assert dense[0, 3] == 1 and dense[1, 6400 + 10] == -1 and np.count_nonzero(dense) == 2
    np.testing.assert_array_equal(inputs.encode(x, frames, "diff").to_dense(6400), x)


def test_pyramid_encoding_marks_the_4x4_blocks_of_both_frames():
    frames = np.zeros((1, 80, 80), np.uint8)
    frames[0, 5, 9] = 1  # the ball arrived at (5, 9): block (1, 2) ...
    x = np.zeros((1, 6400), np.int8)
    x[0, 5 * 80 + 9] = 1
    x[0, 50 * 80 + 50] = -1  # ... from (50, 50): block (12, 12)
    frames[0, 6, 8] = 1  # a pixel in both frames, in the same block as the ball
    frames[0, 70, 3] = 1  # ... and one alone in its block (17, 0)
    dense = inputs.encode(x, frames, "frame+diff+pyramid").to_dense(13800)
    np.testing.assert_array_equal(dense[0, :12800], inputs.encode(x, frames, "frame+diff").to_dense(12800)[0])
    cur, change = dense[0, 12800:13200], dense[0, 13200:13600]
    assert set(np.flatnonzero(cur)) == {1 * 20 + 2, 17 * 20 + 0} and cur.max() == 1
    assert dict(zip(np.flatnonzero(change), change[change != 0])) == {12 * 20 + 12: -1}  # block (1, 2) was on before


def test_pyramid_encoding_adds_the_8x8_blocks_of_both_frames():
    frames = np.zeros((1, 80, 80), np.uint8)
    frames[0, 5, 9] = 1  # the ball arrived at (5, 9): 8x8 block (0, 1) ...
    x = np.zeros((1, 6400), np.int8)
    x[0, 5 * 80 + 9] = 1
    x[0, 12 * 80 + 14] = -1  # ... from (12, 14): 8x8 block (1, 1)
    frames[0, 70, 3] = 1  # a pixel in both frames, alone in 8x8 block (8, 0)
    dense = inputs.encode(x, frames, "frame+diff+pyramid").to_dense(13800)
    np.testing.assert_array_equal(dense[0, :12800], inputs.encode(x, frames, "frame+diff").to_dense(12800)[0])
    cur, change = dense[0, 13600:13700], dense[0, 13700:]
    assert set(np.flatnonzero(cur)) == {0 * 10 + 1, 8 * 10 + 0} and cur.max() == 1
    assert dict(zip(np.flatnonzero(change), change[change != 0])) == {0 * 10 + 1: 1, 1 * 10 + 1: -1}


@pytest.mark.parametrize("side,k", [(80, 4), (20, 2), (80, 8), (6, 3)])
def test_block_max_matches_a_max_over_each_block(side, k):
    rng = np.random.default_rng(side * k)
    f = (rng.random((3, side * side)) < 0.05).astype(np.int8)
    out = side // k
    blocks = [
        [f[:, (r * k + i) * side + c * k + j] for i in range(k) for j in range(k)]
        for r in range(out)
        for c in range(out)
    ]  # per cell, its k*k pixel columns
    reference = np.stack([np.max(cell, axis=0) for cell in blocks], axis=1)  # (3, out**2)
    np.testing.assert_array_equal(inputs.block_max(f, side, k), reference)
    assert inputs.block_max(f, side, k).dtype == np.int8


def test_sample_follows_the_cdf():
    logp = np.log(np.array([[0.2, 0.8], [0.5, 0.5], [0.1, 0.9]]))
    np.testing.assert_array_equal(actor_critic.sample(logp, np.array([0.19, 0.5, 0.999999])), [0, 1, 1])
    np.testing.assert_array_equal(actor_critic.sample(logp, np.array([0.21, 0.49, 0.05])), [1, 0, 0])


# ---------------------------------------------------------------- rollout buffer
def fake_rollout(rng, params, T=8, n=2, source=0, reward_of=None):
    """T steps of n games on random sparse inputs, acted by actor_critic.act as a collector would."""
    blocks, actions, rewards, dones, logp, values = [], [], [], [], [], []
    frames = np.zeros((n, 80, 80), np.uint8)
    for _ in range(T):
        x = random_sparse(rng, n, 6400, 20)
        a, xs, extras = actor_critic.act(params, x, frames, rng)
        blocks.append(xs)
        actions.append(a)
        rewards.append(reward_of(a) if reward_of else rng.choice([-1.0, 0.0, 1.0], n, p=[0.05, 0.9, 0.05]))
        dones.append(rng.random(n) < 0.05)
        logp.append(extras["logp"])
        values.append(extras["values"])
    last = actor_critic.bootstrap(params, random_sparse(rng, n, 6400, 20), frames)
    return Rollout(
        source,
        SparseRows.concat(blocks),
        np.array(actions, np.uint8),
        np.array(rewards, np.float32),
        np.array(dones),
        {"logp": np.array(logp, np.float32), "values": np.array(values, np.float32)},
        last,
    )


def test_rollout_buffer_minibatches_cover_each_row_once_and_keep_rows_aligned():
    rng = np.random.default_rng(4)
    params = actor_critic.init_params(6400, 8, 2, rng)
    rollouts = [fake_rollout(rng, params, T=4, n=3, source=s) for s in (0, 1)]
    for r in rollouts:
        r.extras["logp"] = rng.standard_normal((4, 3)).astype(np.float32)  # unique: they find the rows below
    buf = RolloutBuffer(actor_critic.action_set(params))
    for r in rollouts:
        buf.add(r)
    buf.compute_returns(0.99, 0.95)
    dense = np.concatenate([r.x.to_dense(6400) for r in rollouts])  # rollout 0's rows, then rollout 1's
    index = {a: i for i, a in enumerate(actor_critic.action_set(params))}
    actions = np.array([index[a] for r in rollouts for a in r.actions.reshape(-1)])
    seen = []
    for b in buf.get(3, np.random.default_rng(0)):
        xb = np.zeros((len(b.actions), 6400))
        xb[:, b.x.cols] = b.x.X
        idx = np.array([np.flatnonzero(buf.flat("logp") == lp)[0] for lp in b.logp])  # logp are unique floats
        np.testing.assert_array_equal(xb, dense[idx])
        np.testing.assert_array_equal(b.actions, actions[idx])
        np.testing.assert_array_equal(b.returns, buf.flat("returns")[idx])
        seen.extend(idx)
    assert sorted(seen) == list(range(24))


def test_rollout_buffer_bootstraps_each_rollout_from_its_own_last_values():
    rng = np.random.default_rng(5)
    params = actor_critic.init_params(6400, 8, 2, rng)
    r = fake_rollout(rng, params, T=5, n=2)
    buf = RolloutBuffer(actor_critic.action_set(params))
    buf.add(r)
    buf.compute_returns(0.9, 0.8)
    adv, ret = gae(r.rewards, r.extras["values"], r.dones, r.last["values"], 0.9, 0.8)
    np.testing.assert_array_equal(buf.flat("advantages"), adv.astype(np.float32).reshape(-1))
    np.testing.assert_array_equal(buf.flat("returns"), ret.astype(np.float32).reshape(-1))


# ---------------------------------------------------------------- the learner
def small_cfg(**kw):
    base = dict(
        algo="ppo",
        num_envs=2,
        ppo_num_steps=8,
        ppo_hidden=16,
        ppo_minibatches=2,
        ppo_epochs=2,
        seed=3,
        ppo_overlap=False,
    )
    return Config(**{**base, **kw}).validate()


def new_learner(cfg, seed=0):
    return ppo.PPO(
        cfg, actor_critic.init_network(cfg.ppo_obs, cfg.ppo_hidden, cfg.ppo_conv, np.random.default_rng(seed)), cfg.seed
    )


def drive(learner, rng, updates, reward_of=None, env_steps=0):
    """`updates` rollouts of random inputs, acted by the learner's own parameters; their stats."""
    cfg, stats = learner.cfg, []
    for k in range(updates):
        r = fake_rollout(rng, learner.params, cfg.ppo_num_steps, cfg.num_envs, reward_of=reward_of)
        stats.append(learner.learn([r], env_steps + k * r.rewards.size))
    return stats


def test_one_update_per_learn_with_cleanrl_stats():
    learner = new_learner(small_cfg())
    stats = drive(learner, np.random.default_rng(1), 3)
    assert learner.updates == 3 and learner.t == 3 * 2 * 2
    for key in (
        "losses/policy_loss",
        "losses/value_loss",
        "losses/entropy",
        "losses/approx_kl",
        "losses/clipfrac",
        "losses/explained_variance",
        "losses/grad_norm",
        "charts/learning_rate",
    ):
        assert key in stats[-1]
    assert all(np.isfinite(v) for k, v in stats[-1].items() if k != "losses/explained_variance")
    assert stats[0]["losses/entropy"] == pytest.approx(np.log(2), rel=1e-3)  # near-uniform initial policy


def test_learning_rate_anneals_linearly_with_the_env_steps_taken():
    learner = new_learner(small_cfg(ppo_anneal_steps=160, ppo_lr=1e-3))
    lrs = [s["charts/learning_rate"] for s in drive(learner, np.random.default_rng(1), 3)]
    np.testing.assert_allclose(lrs, [1e-3, 0.9e-3, 0.8e-3])
    # the schedule follows the steps really taken (a shrunken Ray round), not updates x rollout size
    (s,) = drive(learner, np.random.default_rng(2), 1, env_steps=40)
    assert s["charts/learning_rate"] == pytest.approx(0.75e-3)


@pytest.mark.parametrize("conv", [0, 2])
def test_ppo_learns_a_bandit(conv):
    """Reward 1 for UP, 0 for DOWN (on random inputs): the policy must come to prefer UP."""
    cfg = small_cfg(ppo_lr=1e-2, ppo_ent_coef=0.0, ppo_clip=0.2, ppo_gamma=0.0, ppo_conv=conv)  # value target = reward
    learner = new_learner(cfg)
    drive(learner, np.random.default_rng(1), 20, reward_of=lambda a: (a == UP).astype(np.float32))
    rng = np.random.default_rng(2)
    x, frames = random_sparse(rng, 50, 6400, 20), np.zeros((50, 80, 80), np.uint8)
    p = actor_critic.probabilities(learner.params, x, frames)
    assert p[:, list(actor_critic.action_set(learner.params)).index(UP)].mean() > 0.9


@pytest.mark.parametrize("obs", ["diff", "frame+diff+pyramid"])
def test_state_restore_continues_bit_exactly(obs):
    cfg = small_cfg(ppo_obs=obs)
    a = new_learner(cfg)
    drive(a, np.random.default_rng(1), 2)
    assert_restores_bit_exactly(a, cfg)


def assert_restores_bit_exactly(a, cfg):
    """A fresh learner given a's state goes on exactly as a does."""
    b = new_learner(cfg, seed=99)
    b.restore({k: np.array(v) for k, v in a.state().items()})
    for learner in (a, b):
        drive(learner, np.random.default_rng(7), 2)
    for k, v in a.state().items():
        np.testing.assert_array_equal(v, b.state()[k], err_msg=k)


@pytest.mark.parametrize("conv", [0, 4])
def test_param_shapes_match_the_learner_state(conv):
    cfg = small_cfg(ppo_obs="frame+diff+pyramid", ppo_conv=conv)
    st = new_learner(cfg).state()
    assert ("params/Wc" in st) == bool(conv)
    for k, shape in actor_critic.param_shapes(cfg.ppo_obs, cfg.ppo_hidden, cfg.ppo_conv).items():
        assert st[f"params/{k}"].shape == shape and st[f"adam/m/{k}"].shape == shape


# ---------------------------------------------------------------- overlap: learn while the games play
def overlap_run(cfg, seed=0):
    """A Run without games: rollouts are handed to run.learn by the test."""
    return Run(cfg, new_learner(cfg, seed), collector=None)


def test_overlap_update_equals_the_serial_update():
    """The threaded update of a rollout gives the serial update's parameters and stats."""
    serial, threaded = overlap_run(small_cfg()), overlap_run(small_cfg(ppo_overlap=True))
    r = fake_rollout(np.random.default_rng(1), serial.learner.params)
    s = serial.learn([r], 0)
    assert threaded.learn([r], 0) is None  # started, not yet returned
    assert threaded.settle() == s and threaded.settle() is None
    for k, v in serial.learner.params.items():
        np.testing.assert_array_equal(threaded.learner.params[k], v, err_msg=k)


def test_overlap_acts_one_update_behind():
    """Rollout k+1 is played with the parameters from before update k."""
    run = overlap_run(small_cfg(ppo_overlap=True))
    init = {k: v.copy() for k, v in run.learner.params.items()}
    rng = np.random.default_rng(1)
    run.learn([fake_rollout(rng, run.acting)], 0)
    for k in init:
        np.testing.assert_array_equal(run.acting[k], init[k], err_msg=k)  # rollout 1: the initial weights
    run.learn([fake_rollout(rng, run.acting)], 16)
    after_first = new_learner(small_cfg())
    after_first.learn([fake_rollout(np.random.default_rng(1), after_first.params)], 0)
    for k in init:
        np.testing.assert_array_equal(run.acting[k], after_first.params[k], err_msg=k)  # rollout 2: after update 0
    run.settle()
    assert run.learner.updates == 2


def test_overlap_is_deterministic():
    results = []
    for _ in range(2):
        run, rng, stats = overlap_run(small_cfg(ppo_overlap=True)), np.random.default_rng(1), []
        for k in range(4):
            stats.append(run.learn([fake_rollout(rng, run.acting)], 16 * k))
        stats.append(run.settle())
        results.append((run.learner.state(), stats))
    (a, sa), (b, sb) = results
    assert sa == sb and sa[0] is None and all(s is not None for s in sa[1:])
    for k, v in a.items():
        np.testing.assert_array_equal(v, b[k], err_msg=k)


def test_overlap_reraises_an_update_error(monkeypatch):
    run = overlap_run(small_cfg(ppo_overlap=True))

    def broken(rollouts, env_steps):
        raise FloatingPointError("boom")

    monkeypatch.setattr(run.learner, "learn", broken)
    run.learn([fake_rollout(np.random.default_rng(1), run.acting)], 0)
    with pytest.raises(FloatingPointError, match="boom"):
        run.settle()
    assert run.settle() is None


def test_config_defaults_and_checks():
    assert Config().num_envs == 16 and Config(algo="ppo").num_envs == 16
    assert Config(algo="ppo", num_envs=4).num_envs == 4
    Config(algo="ppo").validate()
    with pytest.raises(ConfigError):
        Config(algo="ppo", ppo_obs="rgb").validate()
    with pytest.raises(ConfigError):
        Config(algo="ppo", ppo_clip=0).validate()
    with pytest.raises(ConfigError):
        Config(algo="ppo", ppo_overlap="false").validate()
    with pytest.raises(ConfigError, match=r"ppo_conv must be in \[0, 1024\], got -1"):
        Config(algo="ppo", ppo_conv=-1).validate()
    assert Config(algo="ppo").overlap and Config(algo="ppo", workers=2).overlap  # with Ray workers too
    assert not Config(algo="ppo", ppo_overlap=False).overlap and not Config(algo="reinforce").overlap
    old = Config(algo="ppo").to_dict()
    del old["ppo_overlap"]  # a run saved before the field existed ran serially
    assert not Config.from_saved(old).overlap and Config.from_dict(old).overlap


def test_config_file_of_a_run_saved_before_ppo_overlap_keeps_it_serial(tmp_path):
    old = Config(algo="ppo").to_dict()
    del old["ppo_overlap"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert not Config.from_json_file(tmp_path / "old.json").overlap  # a whole config: the run it came from
    (tmp_path / "partial.json").write_text(json.dumps({"algo": "ppo", "ppo_hidden": 64}))
    assert Config.from_json_file(tmp_path / "partial.json").overlap  # a partial file: defaults fill the rest
    assert Config.from_dict(Config(algo="ppo").to_dict()) == Config(algo="ppo")
    del old["eval_greedy"]  # a run saved before both fields: still read as the run it came from
    (tmp_path / "older.json").write_text(json.dumps(old))
    older = Config.from_json_file(tmp_path / "older.json")
    assert not older.overlap and not older.eval_greedy


def test_ppo_discounts_with_ppo_gamma_and_runs_saved_before_it_keep_their_gamma(tmp_path):
    """PPO's discount is ppo_gamma (0.995 since 0.6.0), REINFORCE's is gamma. Runs saved
    before ppo_gamma existed discounted PPO's returns by gamma, and read back so."""
    assert Config(algo="ppo").ppo_gamma == 0.995 and Config().gamma == 0.99
    rollout_rng = np.random.default_rng(1)
    rollouts = [fake_rollout(rollout_rng, new_learner(small_cfg()).params, 8, 2) for _ in range(2)]

    def trained(**kw):
        learner = new_learner(small_cfg(**kw))
        for k, r in enumerate(rollouts):
            learner.learn([r], k * r.rewards.size)
        return learner.params

    base, other_gamma, other_ppo_gamma = trained(), trained(gamma=0.5), trained(ppo_gamma=0.5)
    assert all(np.array_equal(base[k], other_gamma[k]) for k in base)  # REINFORCE's field: no effect
    assert not all(np.array_equal(base[k], other_ppo_gamma[k]) for k in base)
    old = {**Config(algo="ppo").to_dict(), "gamma": 0.98}
    del old["ppo_gamma"]
    assert Config.from_saved(old).ppo_gamma == 0.98
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert Config.from_json_file(tmp_path / "old.json").ppo_gamma == 0.98  # a whole config: the run it came from
    (tmp_path / "partial.json").write_text(json.dumps({"algo": "ppo", "gamma": 0.98}))
    assert Config.from_json_file(tmp_path / "partial.json").ppo_gamma == 0.995  # a partial file: the default


# ---------------------------------------------------------------- through the training loop
@pytest.mark.slow
@pytest.mark.parametrize("groups,overlap,conv", [(1, False, 0), (2, False, 0), (2, True, 0), (1, True, 2)])
def test_train_resume_equals_uninterrupted_run(tmp_path, groups, overlap, conv):
    from pongrl import checkpoint
    from pongrl.train import train

    cfg = Config(
        algo="ppo",
        num_envs=2,
        groups=groups,
        ppo_num_steps=8,
        ppo_hidden=16,
        ppo_minibatches=2,
        ppo_epochs=2,
        seed=5,
        steps=2 * 8 * 3 + 2 * 5,
        ppo_overlap=overlap,
        ppo_conv=conv,
    )
    full = train(cfg, tmp_path / "full", progress=False)
    train(dataclasses.replace(cfg, steps=2 * 8 + 2 * 3), tmp_path / "part", progress=False)  # ends a rollout later
    resumed = train(None, tmp_path / "part", resume=True, targets={"steps": cfg.steps}, progress=False)
    assert resumed["env_steps"] == full["env_steps"]
    a, meta_a = checkpoint.load(tmp_path / "full" / "checkpoint.npz")
    b, meta_b = checkpoint.load(tmp_path / "part" / "checkpoint.npz")
    assert sorted(a) == sorted(b) and int(a["learner/updates"]) == 4  # rollouts are played whole
    assert f"collector/env{groups - 1}/games" in a and f"collector/env{groups}/games" not in a
    assert ("acting/W1" in a) == overlap and ("learner/params/Wc" in a) == bool(conv)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert {k: v for k, v in meta_a["counters"].items() if k != "wall_s"} == {
        k: v for k, v in meta_b["counters"].items() if k != "wall_s"
    }


@pytest.mark.parametrize("shape", [(16, 12800), (3, 6400), (2, 7)])
def test_sparse_rows_equals_from_dense(shape):
    rng = np.random.default_rng(6)
    d = (rng.random(shape) < 0.01) * rng.choice([-1, 1], shape)
    d[0] = 0
    got, want = inputs.sparse_rows(d.astype(np.int8)), SparseRows.from_dense(d.astype(np.int8))
    for a in ("indptr", "cols", "vals"):
        np.testing.assert_array_equal(getattr(got, a), getattr(want, a))
        assert getattr(got, a).dtype == getattr(want, a).dtype


def test_sample_actions_uses_the_action_set():
    rng = np.random.default_rng(7)
    params = actor_critic.init_params(12800, 8, 2, rng)
    params["bpi"][:] = [50.0, 0.0]  # all mass on the first action: UP
    x, frames = random_sparse(rng, 4, 6400, 10), np.zeros((4, 80, 80), np.uint8)
    np.testing.assert_array_equal(actor_critic.act(params, x, frames, rng)[0], [UP] * 4)
    np.testing.assert_array_equal(actor_critic.greedy_actions(params, x, frames), [UP] * 4)
