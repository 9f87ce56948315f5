"""env.py: PongVecEnv outputs, episode seeds, backends, and exact save/restore."""

from __future__ import annotations

import inspect

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


@pytest.mark.parametrize("split", [TRAIN_SEEDS, EVAL_SEEDS])
def test_games_are_seeded_from_their_split(split, monkeypatch):
    monkeypatch.setattr(env_mod, "GymBackend", FakeGames)
    FakeGames.seeds_seen = []
    env = PongVecEnv("Pong-v0", 3, seed=4, split=split)
    env.reset()
    assert FakeGames.seeds_seen == [episode_seed(4, k, split) for k in range(3)]
    lo = 0 if split == TRAIN_SEEDS else 2**30
    assert all(lo <= s < lo + 2**30 for s in FakeGames.seeds_seen)


# ------------------------------------------------------------------ env ids and backends
def test_unknown_env_id_raises_env_error_listing_pong_ids():
    with pytest.raises(EnvError) as e:
        PongVecEnv("ALE/Pongg-v5", 1, seed=0)
    msg = str(e.value)
    assert "ALE/Pong-v5" in msg and "Pong-v0" in msg and "\n" not in msg
    with pytest.raises(EnvError):
        make_env("Breakout-v0")


def test_backend_choice():
    v5 = PongVecEnv("ALE/Pong-v5", 1, seed=0)
    v0 = PongVecEnv("Pong-v0", 1, seed=0)
    forced = PongVecEnv("ALE/Pong-v5", 1, seed=0, backend="gym")
    try:
        assert v5.backend_name == "ale"
        assert v0.backend_name == "gym"  # random frameskip: not possible in AtariVectorEnv
        assert forced.backend_name == "gym"
    finally:
        for e in (v5, v0, forced):
            e.close()
    with pytest.raises(ValueError):
        PongVecEnv("ALE/Pong-v5", 1, seed=0, backend="cuda")


# ------------------------------------------------------------------ outputs of a real game
@pytest.mark.parametrize("backend", ["ale", "gym"])
def test_outputs_and_zero_inputs_after_reset_and_episode_end(backend):
    n = 2
    env = PongVecEnv("ALE/Pong-v5", n, seed=1, backend=backend)
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
@pytest.mark.parametrize("backend", ["ale", "gym"])
def test_restore_continues_exactly(backend):
    """Play until one game has ended and started anew (so the games' episodes began at
    different steps, and the action log passed 1024 rows), save, then compare the
    continuation with a fresh env restored from the state."""
    n, rng = 2, np.random.default_rng(5)
    env = PongVecEnv("ALE/Pong-v5", n, seed=2, backend=backend)
    env.reset()
    dones_seen, since_done, steps = 0, 0, 0
    while dones_seen == 0 or since_done < 20 or steps < 1100:
        _, _, d, _ = env.step(random_actions(rng, n))
        dones_seen += int(d.sum())
        since_done = 0 if d.any() else since_done + 1
        steps += 1
    state = env.state()
    cur_now = env.cur.copy()
    actions = [random_actions(rng, n) for _ in range(120)]
    expected = run_steps(env, actions)
    env.close()

    fresh = PongVecEnv("ALE/Pong-v5", n, seed=2, backend=backend)
    try:
        x0 = fresh.restore(state)
        assert x0.shape == (n, D) and x0.dtype == np.int8
        assert np.array_equal(fresh.cur, cur_now)
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


# ------------------------------------------------------------------ bookkeeping over long runs (fake games)
class FakeGames:
    """A stand-in for the gym backend: deterministic 'games' whose frames depend on the seed
    and every action since; they restart by themselves when they end (their state goes on),
    with short and some long episodes. Fast enough for thousands of steps."""

    seeds_seen: list[int] = []

    def __init__(self, env_id, n):
        self.n = n
        self.s = np.zeros(n, np.int64)
        self.t = np.zeros(n, np.int64)
        self.limit = np.zeros(n, np.int64)

    def _frames(self):
        bits = (self.s[:, None] >> np.arange(31)) & 1
        frames = np.zeros((self.n, 80, 80), np.uint8)
        frames[:, 0, :31] = bits
        frames[:, 40, :31] = 1 - bits
        return frames

    def _new_episode(self, mask):
        self.t[mask] = 0
        self.limit[mask] = np.where(self.s[mask] % 7 == 0, 700 + self.s[mask] % 300, 30 + self.s[mask] % 40)

    def reseed(self, mask, seeds):
        FakeGames.seeds_seen += [int(v) for v in seeds]
        self.s[mask] = seeds
        self._new_episode(mask)
        return self._frames()

    def send(self, actions):
        self._actions = actions

    def recv(self):
        return self.step(self._actions)

    def step(self, actions):
        self.s = (self.s * 1103515245 + np.asarray(actions, np.int64) + 12345) % 2**31
        self.t += 1
        rewards = np.where(self.s % 17 == 0, 1.0, np.where(self.s % 19 == 0, -1.0, 0.0)).astype(np.float32)
        dones = self.t >= self.limit
        self.s[dones] ^= 0x5BD1E995
        self._new_episode(dones)
        return self._frames(), rewards, dones

    def close(self):
        pass


def test_restore_is_exact_over_thousands_of_steps(monkeypatch):
    monkeypatch.setattr(env_mod, "GymBackend", FakeGames)
    n, rng = 3, np.random.default_rng(8)
    # re-anchor often where the env supports it, so restore starts from several anchors
    extra = {"reseed_every": 300} if "reseed_every" in inspect.signature(PongVecEnv).parameters else {}
    env = PongVecEnv("Pong-v0", n, seed=3, **extra)
    env.reset()
    episodes = 0
    for play in (700, 800, 1600):  # the action log (1024 rows at first) fills up on the way
        for _ in range(play):
            episodes += len(env.step(random_actions(rng, n))[3])
        state = {k: np.copy(v) for k, v in env.state().items()}
        actions = [random_actions(rng, n) for _ in range(300)]
        expected = run_steps(env, actions)
        fresh = PongVecEnv("Pong-v0", n, seed=3, **extra)
        fresh.restore(state)
        assert_same_outputs(run_steps(fresh, actions), expected)
        for k, v in env.state().items():
            assert np.array_equal(fresh.state()[k], v), k
    assert episodes > 50
