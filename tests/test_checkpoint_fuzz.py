"""Damaged checkpoints, member by member: every variant is refused with a
CheckpointError (one line, exit 2 on the command line), or loads exactly what
was saved. Nothing here trains: the runs are saved before their first step."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import rewritten, tiny_config

from pongrl import checkpoint
from pongrl.checkpoint import CheckpointError
from pongrl.runs import load_run


@pytest.fixture(scope="module", params=["reinforce", "ppo"])
def saved(request, tmp_path_factory):
    from pongrl.train import train

    run = tmp_path_factory.mktemp(request.param) / "run"
    train(tiny_config(algo=request.param, episodes=None, steps=0, ppo_hidden=8), run, progress=False)
    return run / "checkpoint.npz"


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def write(path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def variants(files: dict[str, bytes]):
    """(what, damaged files) for every array member of a checkpoint."""
    for name, data in files.items():
        if name == "meta.npy":
            continue
        a = np.load(io.BytesIO(data))
        others = {k: v for k, v in files.items() if k != name}
        yield f"{name} removed", others
        yield f"{name} header byte flipped", others | {name: data[:20] + bytes([data[20] ^ 0x55]) + data[21:]}
        if a.nbytes:
            yield f"{name} data byte flipped", others | {name: data[:-1] + bytes([data[-1] ^ 0x01])}
            yield f"{name} one row short", others | {name: npy(a[:-1] if a.ndim else a.reshape(1)[:0])}
        for dtype in (np.float16, np.int8, np.int64, np.bool_, np.complex64):
            if a.dtype != dtype:
                yield f"{name} as {np.dtype(dtype)}", others | {name: npy(a.astype(dtype))}
        huge = data.replace(str(a.shape).encode(), str((10**9,) + a.shape[1:]).encode(), 1)
        if huge != data:
            yield f"{name} declared huge", others | {name: huge}
        if a.dtype.kind == "f" and a.size:
            bad = a.copy()
            bad.flat[0] = np.nan
            yield f"{name} with a NaN", others | {name: npy(bad)}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_every_damaged_member_is_refused(saved, tmp_path):
    files = members(saved)
    count = 0
    for what, damaged in variants(files):
        path = tmp_path / "damaged.npz"
        write(path, damaged)
        with pytest.raises(CheckpointError):
            checkpoint.load(path)
            pytest.fail(f"loaded: {what}")
        count += 1
    assert count > 8 * (len(files) - 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int64, np.bool_])
def test_weights_of_another_dtype_are_refused_on_resume(saved, tmp_path, dtype):
    def change(arrays, meta):
        arrays["learner/params/W1"] = arrays["learner/params/W1"].astype(dtype)

    with pytest.raises(CheckpointError, match="weights 'W1' are"):
        load_run(rewritten(saved, tmp_path, change)).close()


def test_non_finite_weights_are_refused(saved, tmp_path):
    def change(arrays, meta):
        arrays["learner/params/W1"] = arrays["learner/params/W1"].copy()
        arrays["learner/params/W1"][0, 0] = np.inf

    path = rewritten(saved, tmp_path, change)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_run(path).close()
    from pongrl.agent import load_agent

    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_agent(path)


@pytest.mark.parametrize(
    "counters", [{"env_steps": "x"}, {"episodes": 1.5}, {"episodes": -1}, {"wall_s": None}, {"running_reward": "high"}]
)
def test_counters_of_the_wrong_type_are_refused(saved, tmp_path, counters):
    def change(arrays, meta):
        meta["counters"] |= counters

    with pytest.raises(CheckpointError, match="damaged run header"):
        load_run(rewritten(saved, tmp_path, change)).close()


@pytest.mark.parametrize("config", [{"hidden": 200.0}, {"ppo_hidden": "8"}, {"seed": None}])
def test_header_config_of_the_wrong_type_is_refused(saved, tmp_path, config):
    def change(arrays, meta):
        meta["config"] |= config

    with pytest.raises(CheckpointError, match="damaged run header"):
        load_run(rewritten(saved, tmp_path, change)).close()


def test_the_undamaged_file_loads_exactly(saved):
    arrays, meta = checkpoint.load(saved)
    with np.load(saved) as z:
        assert sorted(arrays) == sorted(k for k in z.files if k != "meta")
        for k in arrays:
            assert np.array_equal(arrays[k], z[k]) and arrays[k].dtype == z[k].dtype, k
    assert json.loads(str(np.load(saved)["meta"]))["arrays"] == meta["arrays"]
    load_run(saved).close()


def shorter_game(arrays):
    arrays["collector/env0/games"] = arrays["collector/env0/games"][:-100]
    arrays["collector/env0/game_sizes"] = (
        arrays["collector/env0/game_sizes"] - np.eye(len(arrays["collector/env0/game_sizes"]), dtype=np.int64)[0] * 100
    )


def garbage_game(arrays):
    g = arrays["collector/env0/games"].copy()
    g[:200] = 0xAB  # an emulator state no emulator wrote (its size still adds up)
    arrays["collector/env0/games"] = g


@pytest.mark.parametrize(
    "change, says",
    [
        (shorter_game, "cannot be restored"),
        (garbage_game, "cannot be restored"),
        (lambda a: a.update({"collector/env0/game_sizes": a["collector/env0/game_sizes"] + 1}), "do not add up"),
        (
            lambda a: a.update({"collector/env0/cur": a["collector/env0/cur"] * 2}),
            "'cur' holds 2, above its largest allowed value 1",
        ),
        (lambda a: a.pop("collector/env0/ep_len"), "'ep_len' is missing"),
    ],
)
def test_saved_games_that_do_not_fit_are_refused_on_resume(saved, tmp_path, change, says):
    """Forged collector states (re-declared, so their checksums hold) are one line, never
    a crash of the emulator or wrong games."""
    path = rewritten(saved, tmp_path, lambda arrays, meta: change(arrays))
    with pytest.raises(CheckpointError, match=says):
        load_run(path).close()


def test_no_header_turns_the_checks_off(saved, tmp_path):
    """A run's header relabelled version 1 (with or without its declarations), or any
    one array declared as null, a dict, a number or a short list, is refused: the
    checksums cannot be switched off by the header (issue 46)."""
    files = members(saved)
    header = json.loads(str(np.load(io.BytesIO(files["meta.npy"]))))
    cases = [
        ("version 1", header | {"version": 1}),
        ("version 1, undeclared", {k: v for k, v in header.items() if k != "arrays"} | {"version": 1}),
        ("version true", header | {"version": True}),
    ]
    for name, declared in header["arrays"].items():
        for bad in (None, {"dtype": declared[0]}, 0, [], declared[:1], [*declared, 0]):
            forged = json.loads(json.dumps(header))
            forged["arrays"][name] = bad
            cases.append((f"{name} declared {bad!r}", forged))
    path = tmp_path / "forged.npz"
    for what, forged in cases:
        write(path, files | {"meta.npy": npy(np.array(json.dumps(forged)))})
        with pytest.raises(CheckpointError) as e:
            checkpoint.load(path)
            pytest.fail(f"loaded: {what}")
        assert "\n" not in str(e.value), what
    assert len(cases) > 6 * len(header["arrays"])
