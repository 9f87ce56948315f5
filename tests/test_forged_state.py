"""Forged but consistent run states: each array re-declared, so its checksum holds, but
its values are not what the run could have saved. Every one is refused on resume with
one line (CheckpointError, exit 2), never a traceback, a NaN trained on, or a hang.
Nothing here trains more than a few rollouts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rewritten, tiny_config

from pongrl.checkpoint import CheckpointError
from pongrl.cli import main
from pongrl.runs import load_run


def mid_run(tmp_path_factory, name, **cfg):
    """A run checkpointed in the middle of things: episodes in its buffers, steps in flight."""
    from pongrl.train import train

    run = tmp_path_factory.mktemp(name) / "run"
    train(tiny_config(**cfg), run, progress=False)
    return run / "checkpoint.npz"


@pytest.fixture(scope="module")
def reinforce(tmp_path_factory):  # two groups: a step in flight; batches of 3: finished episodes wait
    return mid_run(tmp_path_factory, "reinforce", episodes=None, steps=1500, batch_size=3, num_envs=4, groups=2)


@pytest.fixture(scope="module")
def ppo(tmp_path_factory):  # overlap: the acting parameters are saved too
    return mid_run(
        tmp_path_factory,
        "ppo",
        algo="ppo",
        episodes=None,
        steps=64,
        ppo_num_steps=8,
        ppo_hidden=8,
        ppo_minibatches=2,
        ppo_epochs=1,
        ppo_obs="frame+diff",
    )


def refused(path, says):
    with pytest.raises(CheckpointError, match=says) as e:
        load_run(path).close()
    assert "\n" not in str(e.value)


def setting(key, value):
    def change(arrays, meta):
        a = arrays[key].copy()
        a.reshape(-1)[0] = value
        arrays[key] = a

    return change


def replacing(key, make):
    def change(arrays, meta):
        arrays[key] = make(arrays[key])

    return change


def removing(prefix):
    def change(arrays, meta):
        for k in [k for k in arrays if k.startswith(prefix)]:
            del arrays[k]

    return change


def counter(name, value):
    def change(arrays, meta):
        meta["counters"][name] = value

    return change


def test_the_unforged_states_resume(reinforce, ppo, tmp_path):
    for saved in (reinforce, ppo):
        load_run(rewritten(saved, tmp_path, lambda a, m: None)).close()


PPO_CASES = {
    "Adam's first moment NaN": (setting("learner/adam/m/W1", np.nan), "adam/m/W1' holds NaN"),
    "Adam's second moment infinite": (setting("learner/adam/v/b1", np.inf), "adam/v/b1' holds NaN or infinite"),
    "Adam's second moment negative": (setting("learner/adam/v/W1", -1.0), "adam/v/W1' holds -1.0, below"),
    "Adam's moment in float64": (replacing("learner/adam/m/Wv", lambda a: a.astype(np.float64)), "is float64"),
    "Adam's moment in float16": (replacing("learner/adam/v/Wv", lambda a: a.astype(np.float16)), "is float16"),
    "Adam's moment of a broadcastable shape": (replacing("learner/adam/m/b1", lambda a: a[:1]), "has shape"),
    "Adam's step count -1": (replacing("learner/adam/t", lambda a: np.int64(-1)), "adam/t' holds -1"),
    "Adam's step count off": (replacing("learner/adam/t", lambda a: a + 1), "Adam's step count"),
    "updates -1": (replacing("learner/updates", lambda a: np.int64(-1)), "'updates' holds -1"),
    "no acting section": (removing("acting/"), "missing array 'W1'"),
    "acting weights NaN": (setting("acting/W1", np.nan), "hold NaN"),
}
REINFORCE_CASES = {
    "RMSProp cache negative": (setting("learner/rmsprop/W1", -1.0), "rmsprop/W1' holds -1.0"),
    "RMSProp cache of shape ()": (replacing("learner/rmsprop/W2", lambda a: np.float32(1.0)), "has shape \\(\\)"),
    "RMSProp cache in float64": (replacing("learner/rmsprop/W2", lambda a: a.astype(np.float64)), "is float64"),
    "a NaN episode return": (setting("collector/env0/ep_return", np.nan), "'ep_return' holds NaN"),
    "an episode length of -5": (setting("collector/env0/ep_len", -5), "'ep_len' holds -5"),
    "a done flag of 2": (
        replacing("collector/env0/ready/dones", lambda a: np.full(a.shape, 2, np.uint8).view(bool)),
        "neither true nor false",
    ),
    "an action id of 9 in flight": (setting("collector/env0/pending", 9), "'pending' holds 9"),
    "a buffered action id of 9": (setting("learner/buffer0/actions", 9), "'actions' holds 9"),
    "a column id of 7000": (setting("learner/buffer0/cols", 7000), "'cols' holds 7000"),
    "a column id of -1": (setting("learner/buffer0/cols", -1), "'cols' holds -1"),
    "a broken indptr": (setting("learner/buffer0/indptr", 3), "indptr do not fit"),
    "an input in flight outside the network": (setting("collector/pending0/x/cols", 20000), "'x/cols' holds 20000"),
    "a broken indptr in flight": (setting("collector/pending0/x/indptr", 5), "x/indptr do not fit"),
    "an episode order outside its sources": (
        replacing("learner/order", lambda a: np.append(a, 7)),
        "order does not fit",
    ),
    "next_group out of range": (replacing("collector/next_group", lambda a: np.int64(5)), "'next_group' holds 5"),
    "a damaged generator": (replacing("collector/rng", lambda a: a & ~np.uint64(1)), "random generator is damaged"),
    "an all-zero sticky-action generator": (lambda a, m: zero_sticky_generator(a), "generator is damaged"),
    "no learner section": (removing("learner/sources"), "'sources' is missing"),
}
HEADER_CASES = {
    "wall_s NaN": (counter("wall_s", float("nan")), "wall_s must be a finite number"),
    "wall_s infinite": (counter("wall_s", float("inf")), "wall_s must be a finite number"),
    "wall_s -1e9": (counter("wall_s", -1e9), "wall_s must be a finite number >= 0"),
    "running_reward 1e300": (counter("running_reward", 1e300), "running_reward must be a finite number"),
    "episodes -1": (counter("episodes", -1), "episodes must be an integer"),
    "more episodes than steps": (counter("episodes", 10**9), "cannot end in"),
    "counters a list": (lambda a, m: m.update(counters=[1, 2]), "counters must be an object"),
}


def zero_sticky_generator(arrays):
    games, sizes = arrays["collector/env0/games"].copy(), arrays["collector/env0/game_sizes"]
    end = int(sizes[0])
    games[end - 8 - 625 * 4 : end - 8] = 0  # game 0's Mersenne Twister: 625 words before its last action
    arrays["collector/env0/games"] = games


@pytest.mark.parametrize("case", list(PPO_CASES))
def test_a_forged_ppo_state_is_refused(ppo, tmp_path, case):
    change, says = PPO_CASES[case]
    refused(rewritten(ppo, tmp_path, change), says)


@pytest.mark.parametrize("case", list(REINFORCE_CASES))
def test_a_forged_reinforce_state_is_refused(reinforce, tmp_path, case):
    change, says = REINFORCE_CASES[case]
    refused(rewritten(reinforce, tmp_path, change), says)


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_forged_counters_are_refused(reinforce, tmp_path, case):
    change, says = HEADER_CASES[case]
    refused(rewritten(reinforce, tmp_path, change), says)


def test_a_forged_state_through_the_command_line_is_one_line_and_exit_2(reinforce, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    path = rewritten(reinforce, tmp_path, setting("learner/rmsprop/W1", -1.0))
    path.rename(run / "checkpoint.npz")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "rmsprop/W1" in err and "Traceback" not in err
