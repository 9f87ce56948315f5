"""checkpoint.py: round trips, crash-safe saving, and clear errors for bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pongrl import checkpoint
from pongrl.checkpoint import CheckpointError, check_shapes, load, save


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "params/W1": np.asfortranarray(rng.standard_normal((4, 10)).astype(np.float32)),
        "params/W2": rng.standard_normal(4),
        "buffer/cols": np.array([1, 5, 9], np.int16),
        "buffer/empty": np.zeros((0, 3), np.uint8),
        "updates": np.int64(7),
    }


META = {
    "config": {"hidden": 4, "lr": 1e-4, "env_id": "ALE/Pong-v5"},
    "counters": {"episodes": 3, "wall_s": 1.5},
    "rng": {"state": {"state": 2**100 + 3, "inc": 5}},
}


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save(path, sample_arrays(), META)
    return path


def assert_one_line_error(path, match=None):
    with pytest.raises(CheckpointError) as e:
        load(path)
    msg = str(e.value)
    assert msg and "\n" not in msg
    if match:
        assert match in msg
    return msg


def test_round_trip_arrays_and_meta(good):
    arrays, meta = load(good)
    expected = sample_arrays()
    assert set(arrays) == set(expected)
    for k, v in expected.items():
        assert arrays[k].dtype == np.asarray(v).dtype and arrays[k].shape == np.shape(v), k
        np.testing.assert_array_equal(arrays[k], v)
    assert {k: meta[k] for k in META} == META  # big ints and floats come back exactly
    assert meta["format"] == checkpoint.FORMAT and meta["version"] == checkpoint.VERSION


def test_load_accepts_the_run_folder(good):
    arrays, _ = load(good.parent)
    np.testing.assert_array_equal(arrays["params/W2"], sample_arrays()["params/W2"])


def test_file_is_a_plain_npz_without_pickle(good):
    with np.load(good, allow_pickle=False) as z:
        assert "meta" in z.files and "params/W1" in z.files
        assert z["meta"].dtype.kind == "U"


def test_save_replaces_old_checkpoint(good):
    new = {"params/W2": np.arange(3.0)}
    save(good, new, {"step": 2})
    arrays, meta = load(good)
    assert set(arrays) == {"params/W2"} and meta["step"] == 2
    assert sorted(p.name for p in good.parent.iterdir()) == ["checkpoint.npz"]


@pytest.mark.parametrize("crash", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_crash_while_writing_keeps_old_checkpoint(good, monkeypatch, crash):
    before = good.read_bytes()

    def half_written_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip file")
        raise crash

    monkeypatch.setattr(checkpoint.np, "savez", half_written_savez)
    monkeypatch.setattr(checkpoint.np, "savez_compressed", half_written_savez)
    with pytest.raises(type(crash)):
        save(good, {"params/W2": np.zeros(2)}, {"step": 99})
    monkeypatch.undo()
    assert good.read_bytes() == before
    arrays, meta = load(good)
    np.testing.assert_array_equal(arrays["params/W2"], sample_arrays()["params/W2"])
    assert "step" not in meta
    assert sorted(p.name for p in good.parent.iterdir()) == ["checkpoint.npz"]  # no temp file left


def test_compressed_round_trip(tmp_path):
    path = tmp_path / "c.npz"
    save(path, sample_arrays(), META, compress=True)
    arrays, _ = load(path)
    np.testing.assert_array_equal(arrays["params/W1"], sample_arrays()["params/W1"])


# ------------------------------------------------------------------ bad files
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1])
def test_truncated_checkpoint(good, keep):
    data = good.read_bytes()
    good.write_bytes(data[: (len(data) - 1 if keep == -1 else int(len(data) * keep))])
    assert_one_line_error(good, str(good))


def test_random_bytes(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert_one_line_error(path)


def test_text_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_text("episode,return\n1,-21\n2,-20\n")
    assert_one_line_error(path)


def test_empty_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"")
    assert_one_line_error(path)


def test_missing_file(tmp_path):
    msg = assert_one_line_error(tmp_path / "nope.npz")
    assert "not found" in msg
    assert_one_line_error(tmp_path)  # a folder without checkpoint.npz


def test_npz_without_meta(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, W1=np.zeros(3))
    assert_one_line_error(path, "meta")


@pytest.mark.parametrize(
    "header",
    [
        "not json {",
        '["a list"]',
        '{"format": "something-else", "version": 1}',
        '{"format": "pongrl-checkpoint", "version": 999}',
    ],
)
def test_bad_header(tmp_path, header):
    path = tmp_path / "checkpoint.npz"
    np.savez(path, meta=np.array(header), W1=np.zeros(3))
    assert_one_line_error(path)


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "checkpoint.npz"
    np.savez(
        path, meta=np.array('{"format": "pongrl-checkpoint", "version": 1}'), evil=np.array([{"a": 1}], dtype=object)
    )
    assert_one_line_error(path)


def test_check_shapes(good):
    arrays, _ = load(good)
    check_shapes(arrays, {"params/W1": (4, 10), "params/W2": (4,)}, good)  # fits: no error
    for expected, word in (({"params/W1": (5, 10)}, "params/W1"), ({"params/W3": (4,)}, "params/W3")):
        with pytest.raises(CheckpointError) as e:
            check_shapes(arrays, expected, good)
        assert word in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ declarations, and versions 1 and 2
def test_every_array_is_declared_in_the_header(good):
    _, meta = load(good)
    assert meta["version"] == checkpoint.VERSION == 3
    assert meta["arrays"]["params/W1"][:2] == ["<f4", [4, 10]] and meta["arrays"]["updates"][:2] == ["<i8", []]
    assert all(isinstance(d[2], int) for d in meta["arrays"].values())  # a CRC-32 of each array


def test_an_array_that_is_not_what_the_header_declares_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    save(path, {"params/W1": np.zeros((2, 3), np.float32)}, {"step": 1})
    with np.load(path) as z:
        header = json.loads(str(z["meta"]))
    header["arrays"]["params/W1"] = ["<f2", [2, 3]]  # the header says float16: the data is float32
    np.savez(path, meta=np.array(json.dumps(header)), **{"params/W1": np.zeros((2, 3), np.float32)})
    with pytest.raises(CheckpointError, match="'params/W1' is <f4 \\(2, 3\\), its header declares <f2 \\(2, 3\\)"):
        load(path)
    np.savez(path, meta=np.array(json.dumps(header)))  # a declared array is missing
    with pytest.raises(CheckpointError, match="do not match its header's list"):
        load(path)


def version_1_file(path, kind=None):
    """A checkpoint as pongrl 0.1 wrote it: no declarations; a run's arrays mid-rollout."""
    meta = {"format": "pongrl-checkpoint", "version": 1, "config": {"algo": "reinforce", "hidden": 4}}
    arrays = {"params/W1": np.ones((4, 6400), np.float32), "params/W2": np.ones(4, np.float32)}
    if kind:
        meta["kind"] = kind
    else:
        arrays |= {"rmsprop/W1": np.zeros((4, 6400), np.float32), "buffer0/indptr": np.zeros(1, np.int64)}
        meta |= {"counters": {"episodes": 3}, "rng": {}}
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def test_version_1_agents_load_and_version_1_runs_say_they_cannot_be_resumed(tmp_path):
    from pongrl.agent import load_agent
    from pongrl.errors import RunError
    from pongrl.runs import load_run

    for kind in ("agent", None):
        path = tmp_path / f"{kind}.npz"
        version_1_file(path, kind)
        arrays, meta = load(path)
        assert sorted(arrays) == ["params/W1", "params/W2"] and meta["resumable"] == (kind == "agent")
        assert load_agent(path).params["W1"].shape == (4, 6400)
    with pytest.raises(RunError, match="older pongrl \\(checkpoint version 1\\).*--init-from"):
        load_run(tmp_path / "None.npz")


def test_version_2_runs_say_they_cannot_be_resumed_and_their_weights_load(tmp_path):
    """pongrl 0.2 saved the games as logs of actions to replay; this version saves the
    emulators' states, so it cannot resume those runs, and says so in one line."""
    from pongrl.agent import load_agent
    from pongrl.errors import RunError
    from pongrl.runs import load_run

    path = tmp_path / "v2.npz"
    params = {"learner/params/W1": np.ones((4, 6400), np.float32), "learner/params/W2": np.ones(4, np.float32)}
    save(
        path,
        params | {"collector/env0/log_actions": np.zeros(3, np.uint8)},
        {"kind": "run", "config": {"algo": "reinforce", "hidden": 4}, "counters": {"episodes": 3}},
    )
    with np.load(path) as z:  # the same file, as version 2 wrote it
        header = json.loads(str(z["meta"])) | {"version": 2}
        arrays = {k: z[k] for k in z.files if k != "meta"}
    np.savez(path, meta=np.array(json.dumps(header)), **arrays)
    arrays, meta = load(path)
    assert sorted(arrays) == sorted(params) and not meta["resumable"]
    assert load_agent(path).params["W1"].shape == (4, 6400)
    with pytest.raises(RunError, match="older pongrl \\(checkpoint version 2\\).*--init-from"):
        load_run(path)
