"""env.py and emulators.py: PongVecEnv outputs, episode seeds, the emulator processes, and exact save/restore."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from conftest import random_actions

from pongrl import env as env_mod
from pongrl.env import EVAL_SEEDS, TRAIN_SEEDS, EnvError, PongVecEnv, episode_seed, make_env
from pongrl.preprocess import D


def check_outputs(x, rewards, dones, n):
    assert x.shape == (n, D) and x.dtype == np.int8
    assert set(np.unique(x).tolist()) <= {-1, 0, 1}
    assert rewards.shape == (n,) and rewards.dtype == np.float32
    assert set(np.unique(rewards).tolist()) <= {-1.0, 0.0, 1.0}
    assert dones.shape == (n,) and dones.dtype == np.bool_


# ------------------------------------------------------------------ seeds
def test_episode_seed_ranges_never_meet():
    seeds = [(s, k) for s in (0, 1, 7, 2**20 - 1) for k in (0, 1, 2, 999, 2**30 + 5)]
    train = [episode_seed(s, k) for s, k in seeds]
    evals = [episode_seed(s, k, split=EVAL_SEEDS) for s, k in seeds]
    assert all(0 <= v < 2**30 for v in train)
    assert all(2**30 <= v < 2**31 for v in evals)
    assert episode_seed(3, 5) == episode_seed(3, 5, split=TRAIN_SEEDS)
    assert len({episode_seed(3, k) for k in range(1000)}) == 1000  # a fresh seed per episode
    assert episode_seed(0, 0) != episode_seed(1, 0)


class SeedRecorder:
    """Stands in for emulators.Games: records the seeds the games start from."""

    seen: list[int] = []

    def __init__(self, spec, n, processes):
        self.n = n

    def seed(self, seeds):
        SeedRecorder.seen += [int(v) for v in seeds]
        return np.zeros((self.n, 80, 80), np.uint8)


@pytest.mark.parametrize("split", [TRAIN_SEEDS, EVAL_SEEDS])
def test_games_are_seeded_from_their_split(split, monkeypatch):
    monkeypatch.setattr(env_mod, "Games", SeedRecorder)
    SeedRecorder.seen = []
    PongVecEnv("Pong-v0", 3, seed=4, split=split).reset()
    assert SeedRecorder.seen == [episode_seed(4, k, split) for k in range(3)]
    lo = 0 if split == TRAIN_SEEDS else 2**30
    assert all(lo <= s < lo + 2**30 for s in SeedRecorder.seen)
    SeedRecorder.seen = []
    PongVecEnv("Pong-v0", 2, seed=4, split=split, stream=1, streams=3).reset()  # one of 3 envs of a run
    assert SeedRecorder.seen == [episode_seed(4, k, split) for k in (1, 4)]


# ------------------------------------------------------------------ env ids
def test_unknown_env_id_raises_env_error_listing_pong_ids():
    with pytest.raises(EnvError) as e:
        PongVecEnv("ALE/Pongg-v5", 1, seed=0)
    msg = str(e.value)
    assert "ALE/Pong-v5" in msg and "Pong-v0" in msg and "\n" not in msg
    with pytest.raises(EnvError):
        make_env("Breakout-v0")


# ------------------------------------------------------------------ outputs of a real game
@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "Pong-v0"])
def test_outputs_and_zero_inputs_after_reset_and_episode_end(env_id):
    n = 2
    env = PongVecEnv(env_id, n, seed=1)
    rng = np.random.default_rng(0)
    try:
        x = env.reset()
        assert x.shape == (n, D) and x.dtype == np.int8 and not x.any()
        ret, length, moved = np.zeros(n), np.zeros(n, int), 0
        for _ in range(3000):
            x, r, d, finished = env.step(random_actions(rng, n))
            check_outputs(x, r, d, n)
            ret += r
            length += 1
            moved += int(x.any())
            if d.any():
                break
        assert d.any(), "no episode ended within 3000 steps"
        assert moved > 100  # the ball and paddles move: the inputs are not all zero
        i = int(np.flatnonzero(d)[0])
        assert not x[d].any()  # a finished game is reset: its next input is zeros
        assert [f.env for f in finished] == np.flatnonzero(d).tolist()
        assert finished[0].ret == ret[i] and finished[0].length == length[i]
        assert -21 <= finished[0].ret <= 21 and finished[0].ret == int(finished[0].ret)
        for _ in range(30):  # and the new game goes on
            x, r, d, _ = env.step(random_actions(rng, n))
            check_outputs(x, r, d, n)
        assert x[i].any()
    finally:
        env.close()


# ------------------------------------------------------------------ exact restore
def run_steps(env, actions):
    out = []
    for a in actions:
        x, r, d, fin = env.step(a)
        out.append((x.copy(), r.copy(), d.copy(), [(f.env, f.ret, f.length) for f in fin]))
    return out


def assert_same_outputs(a, b):
    assert len(a) == len(b)
    for t, ((xa, ra, da, fa), (xb, rb, db, fb)) in enumerate(zip(a, b)):
        assert np.array_equal(xa, xb), f"inputs differ at step {t}"
        assert np.array_equal(ra, rb), f"rewards differ at step {t}"
        assert np.array_equal(da, db), f"dones differ at step {t}"
        assert fa == fb, f"finished episodes differ at step {t}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_id, processes, in_flight", [("ALE/Pong-v5", 2, False), ("ALE/Pong-v5", 0, True), ("Pong-v0", 2, True)]
)
def test_restore_continues_exactly(env_id, processes, in_flight):
    """Play until one game has ended and started anew, save (with actions in flight:
    sent, not received), then compare the continuation, over more episode ends, with
    a fresh env restored from the state."""
    n, rng = 2, np.random.default_rng(5)
    env = PongVecEnv(env_id, n, seed=2, processes=processes)
    env.reset()
    dones_seen, since_done = 0, 0
    while dones_seen == 0 or since_done < 20:
        _, _, d, _ = env.step(random_actions(rng, n))
        dones_seen += int(d.sum())
        since_done = 0 if d.any() else since_done + 1
    if in_flight:
        env.send(random_actions(rng, n))
    state = {k: v.copy() for k, v in env.state().items()}
    cur_now = env.cur.copy()
    first = env.recv() if in_flight else None
    actions = [random_actions(rng, n) for _ in range(1200)]
    expected = run_steps(env, actions)
    env.close()
    assert sum(len(f) for *_, f in expected) >= 1  # the continuation crosses an episode end

    fresh = PongVecEnv(env_id, n, seed=77, processes=processes)  # another seed: the state decides
    try:
        x0 = fresh.restore(state)
        assert x0.shape == (n, D) and x0.dtype == np.int8
        assert np.array_equal(fresh.cur, cur_now)
        if in_flight:
            assert all(np.array_equal(a, b) for a, b in zip(fresh.recv()[:3], first[:3]))
        assert_same_outputs(run_steps(fresh, actions), expected)
    finally:
        fresh.close()


def test_restore_right_after_reset_and_short_play():
    n, rng = 2, np.random.default_rng(6)
    env = PongVecEnv("ALE/Pong-v5", n, seed=9)
    env.reset()
    s0 = env.state()
    warm = [random_actions(rng, n) for _ in range(30)]
    run_steps(env, warm)
    s1 = env.state()
    actions = [random_actions(rng, n) for _ in range(60)]
    expected = run_steps(env, actions)
    env.close()
    for state, prefix in ((s0, warm), (s1, [])):
        fresh = PongVecEnv("ALE/Pong-v5", n, seed=9)
        try:
            x = fresh.restore(state)
            if not prefix:
                assert x.any()  # mid-game: the current difference frame is restored too
            run_steps(fresh, prefix)
            assert_same_outputs(run_steps(fresh, actions), expected)
        finally:
            fresh.close()


def test_restore_rejects_state_for_another_number_of_games():
    env = PongVecEnv("ALE/Pong-v5", 2, seed=0)
    env.reset()
    state = env.state()
    env.close()
    other = PongVecEnv("ALE/Pong-v5", 3, seed=0)
    try:
        with pytest.raises(ValueError):
            other.restore(state)
    finally:
        other.close()


# ------------------------------------------------------------------ the emulators
def test_games_do_not_depend_on_the_number_of_processes():
    rng = np.random.default_rng(3)
    actions = [random_actions(rng, 3) for _ in range(400)]
    outputs = []
    for processes in (0, 1, 3):
        env = PongVecEnv("ALE/Pong-v5", 3, seed=6, processes=processes)
        try:
            env.reset()
            outputs.append(run_steps(env, actions))
        finally:
            env.close()
    assert_same_outputs(outputs[0], outputs[1])
    assert_same_outputs(outputs[0], outputs[2])


@pytest.mark.slow
def test_without_sticky_actions_the_games_are_ale_py_vector_envs():
    """With repeat_action_probability 0 nothing random is drawn by pongrl, and its
    emulation loop (frameskip that stops at a game's end, reset at once) plays
    exactly ale-py's AtariVectorEnv, over episode ends."""
    from ale_py.vector_env import AtariVectorEnv
    from gymnasium.vector import AutoresetMode

    from pongrl.emulators import AleGames
    from pongrl.preprocess import preprocess_gray

    n, seeds = 2, np.array([11, 12])
    spec = {"game": "pong", "frameskip": 4, "repeat_action_probability": 0.0, "max_num_frames_per_episode": 108_000}
    ours = AleGames(spec, n)
    theirs = AtariVectorEnv(
        "pong",
        n,
        num_threads=1,
        img_height=210,
        img_width=160,
        grayscale=True,
        stack_num=1,
        maxpool=False,
        frameskip=4,
        repeat_action_probability=0.0,
        noop_max=0,
        reward_clipping=False,
        use_fire_reset=False,
        episodic_life=False,
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    try:
        obs, _ = theirs.reset(seed=seeds)
        assert np.array_equal(ours.seed(seeds), preprocess_gray(obs[:, 0]))
        rng, ends = np.random.default_rng(0), 0
        for t in range(2500):
            a = rng.integers(0, 6, n)
            frames, rewards, dones = ours.step(a)
            obs, r, term, trunc, _ = theirs.step(a.astype(np.int32))
            assert np.array_equal(frames, preprocess_gray(obs[:, 0])), f"frames differ at step {t}"
            assert np.array_equal(rewards, r) and np.array_equal(dones, term | trunc), f"step {t}"
            ends += int(dones.sum())
        assert ends >= 2
    finally:
        theirs.close()


class RecordingAle:
    """Stands in for an ALEInterface: records the action of every frame; the game ends
    after `length` frames."""

    def __init__(self, length=10**9):
        self.frames, self.length, self.t, self.resets = [], length, 0, 0

    def act(self, action):
        self.frames.append(action)
        self.t += 1
        return 0

    def game_over(self):
        return self.t >= self.length

    def reset_game(self):
        self.t, self.resets = 0, self.resets + 1

    def getScreen(self, out):
        out[...] = 0

    def getScreenGrayscale(self, out):
        out[...] = 0


def fake_games(spec, ales):
    from pongrl.emulators import AleGames

    games = AleGames(spec, len(ales))
    games.ales, games.action_set = ales, list(range(6))
    games.rands = [random.Random(i) for i in range(len(ales))]
    return games


def test_sticky_actions_keep_the_last_frames_action_with_their_probability():
    ale = RecordingAle()
    games = fake_games({"frameskip": 4, "repeat_action_probability": 0.25}, [ale])
    steps = 4000
    for k in range(steps):
        games.step(np.array([1 + k % 2]))  # alternate 1 and 2: a kept action shows
    frames = np.array(ale.frames).reshape(steps, 4)
    asked = 1 + np.arange(steps) % 2
    first_kept = frames[1:, 0] != asked[1:]  # the first frame kept the previous step's last action
    assert abs(first_kept.mean() - 0.25) < 0.03
    assert np.array_equal(frames[1:, 0][first_kept], frames[:-1, 3][first_kept])
    # later frames: once a frame takes the new action, the rest of the step keeps it
    took = frames == asked[:, None]
    assert not (took[:, :-1] & ~took[:, 1:]).any()


def test_a_game_end_stops_the_frameskip_and_the_next_game_starts_with_noop():
    ale = RecordingAle(length=6)
    games = fake_games({"frameskip": 4, "repeat_action_probability": 1.0}, [ale])  # always keep
    games.last[0] = 3
    _, _, d1 = games.step(np.array([2]))
    _, _, d2 = games.step(np.array([2]))
    assert ale.frames == [3, 3, 3, 3, 3, 3] and not d1[0] and d2[0]  # stopped after 2 frames
    games.step(np.array([2]))
    assert ale.frames[6:] == [0, 0, 0, 0]  # a reset game's last action is NOOP


def test_random_frameskip_of_the_tutorials_env():
    ale = RecordingAle()
    games = fake_games({"frameskip": [2, 5], "repeat_action_probability": 0.0}, [ale])
    counts = []
    for _ in range(600):
        before = len(ale.frames)
        games.step(np.array([0]))
        counts.append(len(ale.frames) - before)
    assert set(counts) == {2, 3, 4}


def test_a_game_marked_minus_one_is_not_stepped():
    ales = [RecordingAle(), RecordingAle()]
    games = fake_games({"frameskip": 4, "repeat_action_probability": 0.0}, ales)
    games.step(np.array([-1, 2]))
    assert ales[0].frames == [] and ales[1].frames == [2, 2, 2, 2]


def test_emulator_process_errors_and_exits():
    from pongrl.emulators import EmulatorError, Games

    spec = {"game": "pong", "frameskip": 4, "repeat_action_probability": 0.25}
    games = Games(spec, 2, processes=1)
    child = games.parts[0].proc
    try:
        assert os.getpgid(child.pid) != os.getpgid(0)  # its own process group: Ctrl-C reaches only the parent
        assert os.getsid(child.pid) == os.getsid(0)  # the same session: scheduled like the parent's threads
        games.seed(np.array([1, 2]))
        games.send(np.array([9, 0]))  # no such action id: the child's error comes back
        with pytest.raises(RuntimeError, match="an emulator process failed"):
            games.recv()
        with pytest.raises(ValueError, match="cannot be restored"):
            games.restore({"games": np.zeros(100, np.uint8), "game_sizes": np.array([50, 50])})
        child.kill()
        child.wait()
        with pytest.raises(EmulatorError, match=f"emulator process {child.pid} was killed by SIGKILL"):
            games.step(np.array([0, 0]))
    finally:
        games.close()
    orphan = Games(spec, 1, processes=1).parts[0]  # the parent's pipes close, as after kill -9
    os.close(orphan.fd_out)
    os.close(orphan.fd_in)
    assert orphan.proc.wait(timeout=30) == 0


def test_emulator_process_leaves_quietly_when_the_parent_goes_mid_command():
    """Ctrl-C stops the parent while the child steps: the reply finds no reader. The
    child returns, without a BrokenPipeError traceback on the user's terminal."""
    from multiprocessing import Pipe

    from pongrl.emulator_protocol import serve

    class Seeded:
        def seed(self, seeds):
            return np.zeros((len(seeds), 80, 80), np.uint8)

    cmd_r, cmd_w = Pipe(duplex=False)
    reply_r, reply_w = Pipe(duplex=False)
    cmd_w.send_bytes(b"r" + np.array([1, 2], np.int64).tobytes())
    reply_r.close()  # the parent has gone
    serve(cmd_r, reply_w, Seeded())  # returns; raised BrokenPipeError before


def test_a_game_given_minus_one_stands_still():
    env = PongVecEnv("ALE/Pong-v5", 2, seed=4, processes=0)
    try:
        env.reset()
        rng = np.random.default_rng(0)
        for _ in range(40):
            env.step(random_actions(rng, 2))
        frame, lengths = env.cur[0].copy(), env.ep_len.copy()
        x, r, d, _ = env.step(np.array([-1, 2]))
        assert np.array_equal(env.cur[0], frame) and not x[0].any() and r[0] == 0 and not d[0]
        assert list(env.ep_len - lengths) == [0, 1]
    finally:
        env.close()


def test_evaluation_steps_only_the_games_still_playing(monkeypatch):
    """3 games on 2 slots: slot 1 plays one game, then stands still while slot 0 plays its second."""
    from conftest import tiny_config

    from pongrl import algos
    from pongrl.agent import Agent
    from pongrl.evaluate import evaluate

    cfg = tiny_config()
    agent = Agent(cfg, algos.get(cfg.algo).init_params(cfg, np.random.default_rng(0)))
    sent = []
    real_send = PongVecEnv.send
    monkeypatch.setattr(PongVecEnv, "send", lambda self, a: (sent.append(np.array(a)), real_send(self, a))[1])
    res = evaluate(agent, games=3, num_envs=2)
    sent = np.array(sent)  # (steps, 2)
    assert res["games"] == 3
    still = np.flatnonzero(sent[:, 1] == -1)
    assert len(still) > 100 and still[-1] == len(sent) - 1 and np.all(np.diff(still) == 1)
    assert (sent[:, 0] >= 0).all()


def test_frames_cross_the_pipe_packed_and_come_back_equal():
    from pongrl.emulator_protocol import PACKED, pack_frames, unpack_frames

    frames = (np.random.default_rng(0).random((3, 80, 80)) < 0.05).astype(np.uint8)
    packed = pack_frames(frames)
    assert len(packed) == 3 * PACKED == 3 * 80 * 80 // 8
    back = unpack_frames(packed + b"tail", 3)  # the reply's rewards and dones follow the frames
    assert back.dtype == np.uint8 and back.shape == (3, 80, 80)
    np.testing.assert_array_equal(back, frames)
