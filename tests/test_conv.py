"""The convolution over the frames (pongrl.conv, `ppo_conv`): against a loop over
every window, its gradients against finite differences, and in PPO's learner."""

import numpy as np
import pytest
from test_ppo import assert_restores_bit_exactly, drive, new_learner, rel_error, small_cfg

from pongrl import actor_critic, conv, inputs, ppo
from pongrl.config import Config, ConfigError
from pongrl.env import UP
from pongrl.rollouts import Batch


def frames_and_diffs(rng, n, pixels=12):
    """n binary frames (n, 80, 80) with a few lit pixels, and difference frames (n, 6400) in {-1, 0, 1}."""
    frames = np.zeros((n, 6400), np.uint8)
    x = np.zeros((n, 6400), np.int8)
    for i in range(n - 1):  # the last sample stays empty, like a reset game's input
        frames[i, rng.choice(6400, pixels, replace=False)] = 1
        x[i, rng.choice(6400, pixels, replace=False)] = rng.choice([-1, 1], pixels)
    x[0, [0, 79, 6320, 6399]] = 1  # the corners: each lies in one window only
    return x, frames.reshape(n, 80, 80)


def loop_conv(Wc, x, frames):
    """Reference: ReLU(window . filter) for every sample, window and filter, one at a time.
    (n, 361 F) with feature (window p, filter f) at column p F + f."""
    n, F = len(x), Wc.shape[1]
    img = np.stack([frames, x.reshape(n, 80, 80)], 1).astype(np.float64)  # (n, 2, 80, 80)
    w = Wc.reshape(2, 8, 8, F)
    out = np.zeros((n, 19, 19, F))
    for b in range(n):
        for oy in range(19):
            for ox in range(19):
                window = img[b, :, 4 * oy : 4 * oy + 8, 4 * ox : 4 * ox + 8]  # (2, 8, 8)
                out[b, oy, ox] = np.maximum(np.einsum("cyx,cyxf->f", window, w), 0)
    return out.reshape(n, -1)


def dense(feats, width):
    out = np.zeros((len(feats.X), width))
    out[:, feats.cols] = feats.X
    return out


def test_features_match_a_loop_over_every_window():
    rng = np.random.default_rng(0)
    x, frames = frames_and_diffs(rng, 5)
    Wc = rng.standard_normal((conv.TAPS, 3))
    feats, saved = conv.forward(Wc, inputs.compact(inputs.encode(x, frames, "frame+diff"), np.float64))
    ref = loop_conv(Wc, x, frames)
    np.testing.assert_allclose(dense(feats, conv.P * 3), ref, atol=1e-12)
    assert np.all(np.diff(feats.cols) > 0) and (ref[-1] == 0).all()  # ascending columns; no pixel, no feature
    assert len(saved.z) < len(x) * conv.P  # only the windows that hold a pixel were computed


def test_filter_images_put_frame_taps_left_and_difference_taps_right():
    Wc = np.zeros((conv.TAPS, 2))
    Wc[3 * 8 + 5, 1] = 1.0  # frame, row 3, column 5 of filter 1
    Wc[64 + 7 * 8 + 0, 1] = -1.0  # difference, row 7, column 0
    img = conv.filter_images(Wc)
    assert img.shape == (2, 8, 16) and img[1, 3, 5] == 1.0 and img[1, 7, 8] == -1.0 and not img[0].any()


def test_block_inputs_pass_beside_the_features():
    rng = np.random.default_rng(1)
    x, frames = frames_and_diffs(rng, 4)
    cfg = Config(algo="ppo", ppo_obs="frame+diff+pyramid", ppo_conv=2, ppo_hidden=3)
    params = init_for(cfg, rng)
    xs = inputs.compact(inputs.encode(x, frames, "frame+diff+pyramid"), np.float64)
    params["Wc"] = params["Wc"].astype(np.float64)
    first, _ = actor_critic.first_inputs(params, xs)
    width = params["W1"].shape[1]
    assert width == conv.P * 2 + 1000 == shapes_for(cfg)["W1"][1]
    got = dense(first, width)
    np.testing.assert_allclose(got[:, : conv.P * 2], loop_conv(params["Wc"], x, frames), atol=1e-12)
    blocks = inputs.encode(x, frames, "frame+diff+pyramid").to_dense(13800)[:, conv.PIXELS :]  # (n, 1000)
    np.testing.assert_array_equal(got[:, conv.P * 2 :], blocks)
    assert actor_critic.input_kind(params) == "frame+diff+pyramid"


def init_for(cfg, rng):
    return actor_critic.init_network(cfg.ppo_obs, cfg.ppo_hidden, cfg.ppo_conv, rng)


def shapes_for(cfg):
    return actor_critic.param_shapes(cfg.ppo_obs, cfg.ppo_hidden, cfg.ppo_conv)


def gradcheck_problem(seed):
    """Float64 conv params and a minibatch of 6 samples, 'frame+diff+pyramid' (blocks beside the features)."""
    rng = np.random.default_rng(seed)
    cfg = Config(algo="ppo", ppo_obs="frame+diff+pyramid", ppo_conv=2, ppo_hidden=4)
    params = {k: rng.standard_normal(v.shape) for k, v in init_for(cfg, rng).items()}
    params["W1"] = np.asfortranarray(params["W1"])
    x, frames = frames_and_diffs(rng, 6, pixels=4)
    xs = inputs.compact(inputs.encode(x, frames, "frame+diff+pyramid"), np.float64)
    logits, v, _ = actor_critic.forward(params, xs)
    actions = rng.integers(0, 2, 6)
    old = actor_critic.log_softmax(logits)[np.arange(6), actions] + rng.normal(0, 0.2, 6)
    return params, Batch(xs, actions, old, v + rng.normal(0, 0.2, 6), rng.standard_normal(6), rng.standard_normal(6))


def loss(params, b, c):
    return ppo.loss_and_grads(params, b, c)[0]


def numeric(params, b, c, key, index, eps=1e-6):
    p = params[key]
    old = p[index]
    p[index] = old + eps
    up = loss(params, b, c)
    p[index] = old - eps
    down = loss(params, b, c)
    p[index] = old
    return (up - down) / (2 * eps)


def test_gradients_through_the_convolution_match_finite_differences():
    params, b = gradcheck_problem(seed=3)
    c = ppo.Coefs(clip=0.1, vf_coef=0.5, ent_coef=0.01, vclip=0.1)
    first, saved = actor_critic.first_inputs(params, b.x)
    assert np.abs(saved.z).min() > 1e-4  # away from the filters' ReLU kink
    assert np.abs(first.X @ params["W1"].T[first.cols] + params["b1"]).min() > 1e-4  # and the first layer's
    _, _, grads, rows = ppo.loss_and_grads(params, b, c)
    np.testing.assert_array_equal(rows, first.cols)
    used = np.flatnonzero(np.abs(saved.patches).sum(axis=0))  # taps some pixel reached
    assert len(used) > 10 and rows.max() >= conv.P * 2  # blocks' rows too
    for key, idx in [
        ("Wc", [(t, f) for t in used for f in range(2)]),
        ("W1", [(h, r) for h in range(4) for r in rows[::7]]),
        ("b1", [(h,) for h in range(4)]),
        ("Wpi", list(np.ndindex(params["Wpi"].shape))),
    ]:
        full = np.zeros_like(params[key])
        if key == "W1":
            full.T[rows] = grads["W1"]
        else:
            full = grads[key]
        ana = np.array([full[i] for i in idx])
        num = np.array([numeric(params, b, c, key, i) for i in idx])
        assert np.abs(ana).max() > 1e-3 and rel_error(ana, num) < 1e-6, (key, rel_error(ana, num))
    unused = np.setdiff1d(np.arange(conv.TAPS), used)[:3]
    assert all(grads["Wc"][t, 0] == 0 == numeric(params, b, c, "Wc", (t, 0)) for t in unused)


def test_config_checks_and_shapes():
    with pytest.raises(ConfigError, match="ppo_conv needs the frame in the input"):
        Config(algo="ppo", ppo_obs="diff", ppo_conv=4).validate()
    with pytest.raises(ConfigError, match=r"ppo_conv must be in \[0, 1024\], got -1"):
        Config(algo="ppo", ppo_conv=-1).validate()
    shapes = shapes_for(Config(algo="ppo", ppo_obs="frame+diff", ppo_conv=16))
    assert shapes["Wc"] == (128, 16) and shapes["W1"] == (256, 361 * 16)
    assert "Wc" not in shapes_for(Config(algo="ppo"))


def test_init_without_a_convolution_is_unchanged_by_the_option():
    """Runs without a convolution draw the same initial weights as before ppo_conv existed."""
    plain = actor_critic.init_params(13800, 8, 2, np.random.default_rng(5))
    with_conv = actor_critic.init_params(13800, 8, 2, np.random.default_rng(5), filters=4)
    assert set(with_conv) - set(plain) == {"Wc"}
    for k in plain:
        np.testing.assert_array_equal(plain[k], with_conv[k])


def test_a_learner_with_a_convolution_learns_a_bandit_and_restores_bit_exactly():
    """Reward 1 for UP on random frames: the policy comes to prefer UP; a restored learner goes on identically."""
    cfg = small_cfg(ppo_obs="frame+diff", ppo_conv=4, ppo_lr=1e-2, ppo_ent_coef=0.0, ppo_clip=0.2, ppo_gamma=0.0)
    learner = new_learner(cfg)
    w0 = learner.params["Wc"].copy()
    drive(learner, np.random.default_rng(1), 20, reward_of=lambda a: (a == UP).astype(np.float32))
    assert not np.array_equal(w0, learner.params["Wc"])  # the filters learn too
    rng = np.random.default_rng(2)
    x, frames = frames_and_diffs(rng, 50)
    p = actor_critic.probabilities(learner.params, x, frames)
    assert p[:, list(actor_critic.action_set(learner.params)).index(UP)].mean() > 0.9
    assert_restores_bit_exactly(learner, cfg)


def test_dense_reference_of_a_whole_network_agrees():
    """actor_critic.forward with a convolution equals the loop convolution followed by dense layers."""
    rng = np.random.default_rng(4)
    cfg = Config(algo="ppo", ppo_obs="frame+diff", ppo_conv=3, ppo_hidden=5)
    params = {k: v.astype(np.float64) for k, v in init_for(cfg, rng).items()}
    params["b1"][:] = rng.standard_normal(5)
    x, frames = frames_and_diffs(rng, 4)
    logits, v, h = actor_critic.forward(params, inputs.compact(inputs.encode(x, frames, "frame+diff"), np.float64))
    h_ref = np.maximum(loop_conv(params["Wc"], x, frames) @ params["W1"].T + params["b1"], 0)
    np.testing.assert_allclose(h, h_ref, atol=1e-12)
    np.testing.assert_allclose(logits, h_ref @ params["Wpi"].T + params["bpi"], atol=1e-12)
    np.testing.assert_allclose(v, h_ref @ params["Wv"] + params["bv"], atol=1e-12)
