"""preprocess.py: 210x160 frames -> 80x80 binary images, and difference frames."""

from __future__ import annotations

import numpy as np
import pytest

from pongrl.env import DOWN, UP, make_env
from pongrl.preprocess import D, frame_diff, preprocess, preprocess_gray

BG = (144, 72, 17)  # Pong's background colour (RGB)


def blank_frame() -> np.ndarray:
    frame = np.empty((210, 160, 3), np.uint8)
    frame[:] = BG
    return frame


def expected_cells(rows, cols) -> set[tuple[int, int]]:
    return {((r - 35) // 2, c // 2) for r in rows for c in cols}


def on_cells(img: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(*map(lambda a: a.tolist(), np.nonzero(img))))


def test_blank_frame_gives_all_zero_80x80_uint8():
    out = preprocess(blank_frame())
    assert out.shape == (80, 80)
    assert out.dtype == np.uint8
    assert not out.any()


def test_object_pixels_land_at_downsampled_position():
    frame = blank_frame()
    rows, cols = range(51, 55), range(20, 24)  # (r - 35) and c even at the block's start
    frame[51:55, 20:24] = (92, 186, 92)
    out = preprocess(frame)
    assert set(np.unique(out)) <= {0, 1}
    assert on_cells(out) == expected_cells(rows, cols) == {(8, 10), (8, 11), (9, 10), (9, 11)}


def test_only_every_second_row_and_column_is_kept():
    frame = blank_frame()
    frame[36, 41] = (92, 92, 92)  # odd offset row and odd column: skipped by [::2]
    frame[37, 40] = (92, 92, 92)  # sampled: lands at (1, 20)
    assert on_cells(preprocess(frame)) == {(1, 20)}


def test_second_background_colour_is_erased():
    frame = blank_frame()
    frame[35:195:2, ::2] = (109, 118, 43)  # every sampled pixel has the other background colour
    assert not preprocess(frame).any()


def test_only_the_red_channel_decides():
    frame = blank_frame()
    frame[101, :, 1:] = 0  # background red, other channels changed: still background
    frame[99, 10] = (200, 72, 17)  # non-background red: object
    assert on_cells(preprocess(frame)) == {(32, 5)}


def test_pixels_outside_the_crop_are_ignored():
    frame = blank_frame()
    frame[:35] = (236, 236, 236)  # score area
    frame[195:] = (236, 236, 236)  # bottom border
    assert not preprocess(frame).any()
    frame[35, 0] = (236, 236, 236)  # first row inside the crop
    frame[194 - 1, 158] = (236, 236, 236)  # last sampled row inside the crop (193)
    assert on_cells(preprocess(frame)) == {(0, 0), (79, 79)}


def test_input_frame_is_not_mutated():
    frame = blank_frame()
    frame[60:70, 100:104] = (92, 186, 92)
    frame[40:42, 8:10] = (109, 118, 43)
    copy = frame.copy()
    preprocess(frame)
    np.testing.assert_array_equal(frame, copy)
    gray = frame[..., 0].copy()
    gray_copy = gray.copy()
    preprocess_gray(gray)
    np.testing.assert_array_equal(gray, gray_copy)


def test_batched_frames_keep_leading_dimensions():
    frames = np.stack([blank_frame()] * 6).reshape(2, 3, 210, 160, 3)
    frames[1, 2, 51, 20] = (92, 92, 92)
    out = preprocess(frames)
    assert out.shape == (2, 3, 80, 80)
    assert out.sum() == 1 and out[1, 2, 8, 10] == 1


def test_wrong_frame_shapes_raise():
    with pytest.raises(ValueError):
        preprocess(np.zeros((210, 160), np.uint8))
    with pytest.raises(ValueError):
        preprocess_gray(np.zeros((210, 160, 3), np.uint8))


def test_real_ale_frame_is_binary_80x80_with_objects():
    env = make_env("ALE/Pong-v5")
    try:
        obs, _ = env.reset(seed=3)
        rng = np.random.default_rng(3)
        for _ in range(60):  # the ball is served after a few dozen steps
            obs, *_ = env.step(int(rng.choice([UP, DOWN])))
    finally:
        env.close()
    assert obs.shape == (210, 160, 3)
    copy = obs.copy()
    out = preprocess(obs)
    np.testing.assert_array_equal(obs, copy)
    assert out.shape == (80, 80) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 1}
    # paddles and ball are a few dozen pixels, not the background
    assert 10 < out.sum() < 400


@pytest.mark.slow
def test_grayscale_rule_matches_rgb_rule_on_real_pong():
    from ale_py.vector_env import AtariVectorEnv

    kwargs = dict(
        img_height=210,
        img_width=160,
        stack_num=1,
        maxpool=False,
        noop_max=0,
        reward_clipping=False,
        use_fire_reset=False,
        repeat_action_probability=0.25,
        frameskip=4,
    )
    n = 2
    rgb_env = AtariVectorEnv("pong", n, grayscale=False, num_threads=1, **kwargs)
    gray_env = AtariVectorEnv("pong", n, grayscale=True, num_threads=1, **kwargs)
    rng = np.random.default_rng(7)
    try:
        rgb, _ = rgb_env.reset(seed=11)
        gray, _ = gray_env.reset(seed=11)
        assert rgb.shape == (n, 1, 210, 160, 3)
        assert gray.shape == (n, 1, 210, 160)
        lit = 0
        for step in range(300):
            a, b = preprocess(rgb[:, 0]), preprocess_gray(gray[:, 0])
            assert np.array_equal(a, b), f"binary frames differ at step {step}"
            lit += int(a.sum())
            actions = rng.choice(np.array([UP, DOWN], np.int32), size=n)
            rgb, *_ = rgb_env.step(actions)
            gray, *_ = gray_env.step(actions)
    finally:
        rgb_env.close()
        gray_env.close()
    assert lit > 300 * n * 10  # the frames really showed paddles and ball


def test_frame_diff_is_flat_int8_difference():
    rng = np.random.default_rng(0)
    cur = (rng.random((3, 80, 80)) < 0.1).astype(np.uint8)
    prev = (rng.random((3, 80, 80)) < 0.1).astype(np.uint8)
    d = frame_diff(cur, prev)
    assert d.shape == (3, D) and d.dtype == np.int8
    assert set(np.unique(d)) == {-1, 0, 1}
    np.testing.assert_array_equal(d, (cur.astype(int) - prev.astype(int)).reshape(3, D))


def test_frame_diff_of_single_frames_and_identical_frames():
    f = np.zeros((80, 80), np.uint8)
    f[10, 20] = 1
    assert frame_diff(f, f).shape == (D,)
    assert not frame_diff(f, f).any()
    d = frame_diff(f, np.zeros_like(f))
    assert d[10 * 80 + 20] == 1 and d.sum() == 1
    assert frame_diff(np.zeros_like(f), f)[10 * 80 + 20] == -1
