"""Reading and writing files safely (issue 46): every bad file a checkpoint, agent or
log can be (a FIFO, a device, a zip bomb, a forged header, a garbage CSV row) is one
line (CheckpointError / UserError; exit 2 on the command line) and nothing hangs; every
write that fails (a full disk) leaves neither a partial output nor a temporary file,
and prints no "Exception ignored" traceback."""

from __future__ import annotations

import fnmatch
import gc
import json
import os
import resource
import signal
import stat
import struct
import sys
import zipfile

import numpy as np
import pytest

from pongrl import checkpoint
from pongrl.checkpoint import CheckpointError, load, save
from pongrl.cli import main
from pongrl.errors import UserError

CONFIG = {"algo": "reinforce", "hidden": 2}
W1 = np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.fixture(autouse=True)
def never_hangs():
    """A case that would block (on a FIFO) fails after 30 s instead of hanging the suite."""

    def hung(*_):
        raise TimeoutError("this case hung")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def unraisable(monkeypatch):
    """What would print "Exception ignored in ...": collected here (after a gc.collect())."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    yield seen
    gc.collect()


def agent_file(path, arrays=None, meta=None, compress=False):
    save(path, arrays or {"params/W1": W1}, meta or {"kind": "agent", "config": CONFIG}, compress=compress)
    return path


def header_of(path) -> dict:
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def arrays_of(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def rewrite(path, header, arrays=None, compress=False):
    """The file with another header (as text or JSON-able), as a forger would write it."""
    arrays = arrays_of(path) if arrays is None else arrays
    text = header if isinstance(header, str) else json.dumps(header)
    (np.savez_compressed if compress else np.savez)(path, meta=np.array(text), **arrays)
    return path


CENTRAL = {"flags": (8, "<H"), "method": (10, "<H"), "csize": (20, "<I"), "usize": (24, "<I")}


def patch_central(path, member, **fields):
    """Edit the zip's central directory entry of `member` (what zipfile trusts) in place."""
    data, pos, found = bytearray(path.read_bytes()), 0, False
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:
        (n,) = struct.unpack_from("<H", data, pos + 28)
        if data[pos + 46 : pos + 46 + n] == member.encode():
            for name, value in fields.items():
                off, fmt = CENTRAL[name]
                struct.pack_into(fmt, data, pos + off, value)
            found = True
        pos += 4
    assert found, member
    path.write_bytes(bytes(data))
    return path


def one_line(path, *says) -> str:
    with pytest.raises(CheckpointError) as e:
        load(path)
    msg = str(e.value)
    assert msg and "\n" not in msg, msg
    for s in says:
        assert s in msg, msg
    return msg


def one_line_exit_2(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------ file kinds
def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "checkpoint.npz")
    one_line(tmp_path / "checkpoint.npz", "not a regular file", "FIFO")
    one_line(tmp_path, "not a regular file", "FIFO")  # the run folder's checkpoint is the FIFO


def test_a_symlink_to_dev_zero_is_refused_without_reading(tmp_path):
    os.symlink("/dev/zero", tmp_path / "agent.npz")
    one_line(tmp_path / "agent.npz", "not a regular file", "character device")


def test_folders_that_are_not_run_folders(tmp_path):
    one_line(tmp_path, "not found")
    (tmp_path / "checkpoint.npz").mkdir()
    one_line(tmp_path, "not a regular file", "folder")


def test_a_symlink_to_a_checkpoint_loads(tmp_path):
    os.symlink(agent_file(tmp_path / "real.npz"), tmp_path / "link.npz")
    np.testing.assert_array_equal(load(tmp_path / "link.npz")[0]["params/W1"], W1)


# ------------------------------------------------------------------ zip members
@pytest.mark.parametrize("method", [9, 99, 12, 14])  # deflate64, AES; bzip2 and lzma: never written by pongrl
def test_a_member_compressed_another_way_is_refused(tmp_path, method):
    path = patch_central(agent_file(tmp_path / "a.npz"), "params/W1.npy", method=method)
    one_line(path, "params/W1.npy", f"zip method {method}", "stored or deflated")


@pytest.mark.parametrize("member", ["params/W1.npy", "meta.npy"])
def test_an_encrypted_member_is_refused(tmp_path, member):
    path = patch_central(agent_file(tmp_path / "a.npz"), member, flags=0x1)
    one_line(path, member, "encrypted")


def test_strong_encryption_or_patched_data_flags_are_refused(tmp_path):
    for flag in (0x20, 0x40):
        path = patch_central(agent_file(tmp_path / f"{flag}.npz"), "params/W1.npy", flags=flag)
        one_line(path, "zip feature")


def test_two_members_of_one_name_are_refused(tmp_path):
    path = agent_file(tmp_path / "a.npz")
    with zipfile.ZipFile(path) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("params/W1.npy", files["params/W1.npy"])
    one_line(path, "two of its members")


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("compress", [False, True])
def test_a_2_gib_member_in_a_small_file_is_refused_before_it_is_read(tmp_path, compress):
    before = max_rss_mb()
    path = patch_central(agent_file(tmp_path / "a.npz", compress=compress), "params/W1.npy", usize=2**31)
    assert path.stat().st_size < 10_000
    one_line(path, "params/W1.npy")
    # declared so (a consistent forgery of the header), it is still refused: it would expand too far
    header = header_of(path)
    header["arrays"]["params/W1"][:2] = ["<f4", [2**29]]
    path = patch_central(
        rewrite(tmp_path / "b.npz", header, {"params/W1": W1}, compress), "params/W1.npy", usize=2**31 + 128
    )
    one_line(path, "params/W1.npy")
    assert max_rss_mb() < before + 200


def test_a_member_larger_than_its_declaration_allows_is_refused_before_it_is_read(tmp_path):
    path = patch_central(agent_file(tmp_path / "a.npz", compress=True), "params/W1.npy", usize=60 << 20)
    one_line(path, "array 'params/W1'", "more than its declaration allows")


def test_a_stored_member_whose_sizes_differ_is_refused(tmp_path):
    path = patch_central(agent_file(tmp_path / "a.npz"), "params/W1.npy", usize=10**6)
    one_line(path, "stored, yet its two sizes differ")


def test_a_member_claiming_more_bytes_than_the_file_is_refused(tmp_path):
    path = patch_central(agent_file(tmp_path / "a.npz", compress=True), "params/W1.npy", csize=10**7)
    one_line(path, "more than the whole file holds")


def test_version_1_weights_are_bounded_too(tmp_path):
    path = tmp_path / "v1.npz"
    meta = {"format": "pongrl-checkpoint", "version": 1, "kind": "agent", "config": CONFIG}
    arrays = {f"params/W{i}": W1 for i in range(5)}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    assert sorted(load(path)[0]) == sorted(arrays)  # a genuine version-1 file loads
    for i in range(5):
        patch_central(path, f"params/W{i}.npy", usize=60 << 20)
    one_line(path, "weights would take")
    patch_central(path, "params/W0.npy", usize=2**31)
    one_line(path, "params/W0.npy")


# ------------------------------------------------------------------ the header
def test_header_json_nested_100000_deep_is_one_line(tmp_path):
    path = agent_file(tmp_path / "a.npz")
    rewrite(path, "[" * 100_000 + "]" * 100_000)
    one_line(path, "nested more than 32 deep")
    rewrite(path, '{"format": "pongrl-checkpoint", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    one_line(path, "nested more than 32 deep")
    rewrite(path, "[" * 100_000)  # never closed
    one_line(path)


def test_brackets_inside_strings_are_not_nesting(tmp_path):
    path = agent_file(tmp_path / "a.npz")
    header = header_of(path) | {"note": "[[[{{{" * 1000 + '\\"]]' + "\\\\"}
    rewrite(path, header)
    assert load(path)[1]["note"] == header["note"]


def test_a_header_of_more_than_1_mib_is_refused(tmp_path):
    path = agent_file(tmp_path / "a.npz")
    rewrite(path, header_of(path) | {"note": "x" * (1 << 20)})
    one_line(path, "header", "at most 1048576 characters")


@pytest.mark.parametrize(
    "header",
    [
        '{"format": "pongrl-checkpoint", "version": ' + "9" * 5000 + "}",  # an int too long to convert
        '{"format": "pongrl-checkpoint", "version": true}',
        '{"format": "pongrl-checkpoint", "version": 1.0}',
        '{"format": "pongrl-checkpoint", "version": "3"}',
        '"just a string"',
    ],
)
def test_headers_that_are_not_what_a_checkpoint_writes(tmp_path, header):
    one_line(rewrite(agent_file(tmp_path / "a.npz"), header))


def test_a_header_that_is_an_array_of_strings_is_refused(tmp_path):
    path = agent_file(tmp_path / "a.npz")
    np.savez(path, meta=np.array([json.dumps(header_of(path))] * 2), **arrays_of(path))
    one_line(path, "damaged header")


@pytest.mark.parametrize(
    "declaration",
    [
        {"dtype": "<f4"},
        7,
        3.5,
        None,
        "<f4",
        [],
        ["<f4"],
        ["<f4", [2, 3], 0, 0],
        ["<f4", [2, 3], "crc"],
        ["<f4", [2, 3], -1],
        ["<f4", [2, 3], 2**32],
        ["<f4", [2, 3], True],
        ["<f4", [2, -3], 0],
        ["<f4", "2,3", 0],
        ["<f4", [2, 3.0], 0],
        ["<f4", [[2], 3], 0],
        ["|O", [2, 3], 0],
        ["<U3", [2, 3], 0],
        ["float32", [2, 3], 0],
        ["<f99999999999", [2, 3], 0],
        [7, [2, 3], 0],
    ],
)
def test_a_declaration_that_is_not_dtype_shape_checksum_is_one_line(tmp_path, declaration):
    path = agent_file(tmp_path / "a.npz")
    header = header_of(path)
    header["arrays"]["params/W1"] = declaration
    one_line(rewrite(path, header), "params/W1")


@pytest.mark.parametrize("arrays", [[], {"params/W1": 1}, 3, None, "params/W1"])
def test_a_list_of_declarations_that_is_not_an_object_is_one_line(tmp_path, arrays):
    path = agent_file(tmp_path / "a.npz")
    one_line(rewrite(path, header_of(path) | {"arrays": arrays}))


# ------------------------------------------------------------------ version 1 only for version-1 files
def flipped(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.view(np.uint8).flat[0] ^= 0x01
    return b


def test_a_flipped_weight_under_a_forged_version_1_header_is_refused(tmp_path):
    path = agent_file(tmp_path / "a.npz")
    header = header_of(path)
    bad = {"params/W1": flipped(W1)}
    one_line(rewrite(path, header, bad), "checksum")  # as saved: the checksum catches it
    one_line(rewrite(path, header | {"version": 1}, bad), "says version 1", "declares its arrays")
    one_line(rewrite(path, header | {"version": 1}, {"params/W1": W1}), "says version 1")


def test_a_run_relabelled_version_1_is_refused(tmp_path):
    arrays = {"learner/params/W1": W1, "collector/env0/cur": np.zeros(3, np.uint8)}
    path = agent_file(tmp_path / "run.npz", arrays, {"kind": "run", "config": CONFIG})
    header = {k: v for k, v in header_of(path).items() if k != "arrays"} | {"version": 1}
    one_line(
        rewrite(path, header, arrays | {"learner/params/W1": flipped(W1)}),
        "says version 1",
        "'collector/env0/cur'",
        "only versions 2 and later",
    )


@pytest.mark.parametrize("version", [2, 3])
def test_an_array_declared_null_is_refused(tmp_path, version):
    path = agent_file(tmp_path / "a.npz")
    header = header_of(path) | {"version": version}
    header["arrays"]["params/W1"] = None
    one_line(rewrite(path, header, {"params/W1": flipped(W1)}), "params/W1", "declares it as null")


def test_genuine_version_1_files_still_load(tmp_path):
    path = tmp_path / "v1.npz"
    meta = {"format": "pongrl-checkpoint", "version": 1, "config": CONFIG, "counters": {"episodes": 3}}
    np.savez(
        path,
        meta=np.array(json.dumps(meta)),
        **{"params/W1": W1, "rmsprop/W1": np.zeros_like(W1), "buffer0/indptr": np.zeros(1, np.int64)},
    )
    arrays, meta = load(path)
    assert sorted(arrays) == ["params/W1"] and not meta["resumable"] and meta["saved_version"] == 1
    # what migrate drops is not read, yet its dtype is still checked
    v1 = {"format": "pongrl-checkpoint", "version": 1, "config": CONFIG}
    np.savez(path, meta=np.array(json.dumps(v1)), **{"params/W1": W1, "rmsprop/W1": np.array([1 + 2j])})
    one_line(path, "rmsprop/W1", "dtype complex128")


# ------------------------------------------------------------------ on the command line: one line, exit 2
def fifo(tmp_path):
    os.mkfifo(tmp_path / "c.npz")
    return tmp_path / "c.npz"


def dev_zero(tmp_path):
    os.symlink("/dev/zero", tmp_path / "c.npz")
    return tmp_path / "c.npz"


def method_99(tmp_path):
    return patch_central(agent_file(tmp_path / "c.npz"), "params/W1.npy", method=99)


def encrypted(tmp_path):
    return patch_central(agent_file(tmp_path / "c.npz"), "params/W1.npy", flags=0x1)


def huge_member(tmp_path):
    return patch_central(agent_file(tmp_path / "c.npz", compress=True), "params/W1.npy", usize=2**31)


def deep_header(tmp_path):
    return rewrite(agent_file(tmp_path / "c.npz"), "[" * 100_000 + "]" * 100_000)


def declared_as_dict(tmp_path):
    path = agent_file(tmp_path / "c.npz")
    header = header_of(path)
    header["arrays"]["params/W1"] = {"dtype": "<f4"}
    return rewrite(path, header)


def forged_version_1(tmp_path):
    path = agent_file(tmp_path / "c.npz")
    return rewrite(path, header_of(path) | {"version": 1}, {"params/W1": flipped(W1)})


@pytest.mark.parametrize(
    "make", [fifo, dev_zero, method_99, encrypted, huge_member, deep_header, declared_as_dict, forged_version_1]
)
def test_bad_agent_files_on_the_command_line(tmp_path, capsys, make):
    path = make(tmp_path)
    err = one_line_exit_2(capsys, ["eval", str(path), "--games", "1"])
    assert str(path) in err


def test_bad_init_from_file_is_one_line(tmp_path, capsys):
    one_line_exit_2(capsys, ["train", "--init-from", str(fifo(tmp_path)), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ metrics.csv
HEADER = "episode,env_steps,return,running_reward,length,wall_s\n"
GOOD = HEADER + "1,900,-21,-21,900,1.0\n2,1800,-20,-20.99,900,2.0\n"
GARBAGE = {
    "key cell not a number": GOOD + "x,2700,-20,-20.98,900,3.0\n",
    "key cell empty": GOOD + ",2700,-20,-20.98,900,3.0\n",
    "another cell not a number": GOOD + "3,2700,abc,-20.98,900,3.0\n",
    "cells missing": GOOD + "3,2700\n",
    "cells too many": GOOD + "3,2700,-20,-20.98,900,3.0,7,8\n",
    "binary junk": GOOD.encode() + bytes(range(128, 256)) + b"\n",
    "a NUL byte": GOOD.encode() + b"3,27\x0000,-20,-20.98,900,3.0\n",
}


def write_csv(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path.read_bytes()


@pytest.mark.parametrize("what", sorted(GARBAGE))
def test_truncate_csv_with_a_garbage_row_is_one_line_and_keeps_the_file(tmp_path, what):
    from pongrl.logger import truncate_csv

    before = write_csv(tmp_path / "metrics.csv", GARBAGE[what])
    with pytest.raises(UserError) as e:
        truncate_csv(tmp_path / "metrics.csv", "episode", 10)
    assert "metrics.csv" in str(e.value) and "\n" not in str(e.value)
    assert (tmp_path / "metrics.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


@pytest.mark.parametrize("what", ["key cell not a number", "binary junk", "a NUL byte"])
def test_read_csv_with_a_garbage_row_is_one_line(tmp_path, what):
    from pongrl.logger import METRIC_COLUMNS, read_csv

    write_csv(tmp_path / "metrics.csv", GARBAGE[what])
    with pytest.raises(UserError) as e:
        read_csv(tmp_path / "metrics.csv", METRIC_COLUMNS)
    assert "metrics.csv" in str(e.value) and "\n" not in str(e.value)


def test_truncate_csv_keeps_the_rows_up_to_the_checkpoint(tmp_path):
    from pongrl.logger import read_csv, truncate_csv

    write_csv(tmp_path / "metrics.csv", GOOD + "3,2700,-19,-20.97,900,3.0\n")
    truncate_csv(tmp_path / "metrics.csv", "episode", 2)
    assert [r["episode"] for r in read_csv(tmp_path / "metrics.csv")] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_plot_of_a_run_with_a_binary_metrics_csv_is_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    write_csv(tmp_path / "run" / "metrics.csv", GARBAGE["binary junk"])
    assert "metrics.csv" in one_line_exit_2(capsys, ["plot", str(tmp_path / "run")])


def test_a_csv_log_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    from pongrl.logger import METRIC_COLUMNS, CsvLog, read_csv, truncate_csv

    os.mkfifo(tmp_path / "metrics.csv")
    for call in (lambda p: read_csv(p), lambda p: truncate_csv(p, "episode", 1), lambda p: CsvLog(p, METRIC_COLUMNS)):
        with pytest.raises(UserError, match="not a regular file"):
            call(tmp_path / "metrics.csv")


# ------------------------------------------------------------------ a full disk
@pytest.fixture
def full_disk(monkeypatch):
    """Every temporary file pongrl makes is real (so leaving it would show), but writes to
    it go to /dev/full: No space left on device, as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    real = checkpoint.temp_file
    made = []

    def temp_on_a_full_disk(path):
        fd, tmp = real(path)
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, fd)
        os.close(full)
        made.append(tmp)
        return fd, tmp

    monkeypatch.setattr(checkpoint, "temp_file", temp_on_a_full_disk)
    return made


def test_temporary_files_are_named_as_pongrl_s_own(tmp_path):
    fd, tmp = checkpoint.temp_file(tmp_path / "config.json")
    os.close(fd)
    name = os.path.basename(tmp)
    assert name.startswith("config.json.pongrl-") and name.endswith(".tmp")
    assert fnmatch.fnmatch(name, checkpoint.TEMP_GLOB)
    for user_file in ("notes.tmp", "metrics.csv.tmp", "checkpoint.npz.abc123.tmp", "config.json"):
        assert not fnmatch.fnmatch(user_file, checkpoint.TEMP_GLOB)


def test_write_json_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path, full_disk):
    from pongrl.logger import write_json

    (tmp_path / "config.json").write_text('{"old": 1}\n')
    with pytest.raises(OSError, match="No space left"):
        write_json(tmp_path / "config.json", {"new": 2})
    assert full_disk and (tmp_path / "config.json").read_text() == '{"old": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_truncate_csv_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path, full_disk):
    from pongrl.logger import truncate_csv

    before = write_csv(tmp_path / "metrics.csv", GOOD)
    with pytest.raises(OSError, match="No space left"):
        truncate_csv(tmp_path / "metrics.csv", "episode", 1)
    assert full_disk and (tmp_path / "metrics.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_written_files_keep_the_usual_permissions(tmp_path):
    from pongrl.logger import write_json

    write_json(tmp_path / "config.json", {"a": 1})
    agent_file(tmp_path / "a.npz")
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "a.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


def test_a_checkpoint_on_a_full_disk_keeps_the_old_one(tmp_path, request):
    path = agent_file(tmp_path / "a.npz")
    before = path.read_bytes()
    full_disk = request.getfixturevalue("full_disk")  # from here on
    with pytest.raises(OSError):
        agent_file(path, {"params/W1": W1 + 1})
    assert full_disk and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_a_picture_on_a_full_disk_leaves_no_partial_png(tmp_path, full_disk):
    from pongrl.plots import figure
    from pongrl.plots import save as save_figure

    fig = figure(2, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    with pytest.raises(OSError, match="No space left"):
        save_figure(fig, tmp_path / "curve.png")
    assert full_disk and list(tmp_path.iterdir()) == []


def test_a_picture_is_written_whole(tmp_path):
    from pongrl.plots import figure
    from pongrl.plots import save as save_figure

    fig = figure(2, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    assert save_figure(fig, tmp_path / "curve") == tmp_path / "curve.png"
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]


# ------------------------------------------------------------------ videos
FRAMES = 12


@pytest.fixture
def quick_game(monkeypatch):
    """play_game without an emulator: FRAMES frames of a moving bar."""
    from pongrl import video

    def play_game(agent, on_frame, **kwargs):
        for i in range(FRAMES):
            frame = np.zeros((210, 160, 3), np.uint8)
            frame[:, 10 * i : 10 * i + 8] = 200
            on_frame(frame)
        return {"score": 1.0, "steps": FRAMES - 1, "finished": True}

    monkeypatch.setattr(video, "play_game", play_game)


@pytest.fixture
def video_on_a_full_disk(monkeypatch, full_disk):
    """The video's temporary file is on the full disk: a GIF is written through its file
    descriptor; ffmpeg opens it by name, so for an MP4 the name leads to /dev/full."""
    from pongrl import video

    def temp(path):
        fd, tmp = checkpoint.temp_file(path)
        if str(path).endswith(".mp4"):
            os.unlink(tmp)
            os.symlink("/dev/full", tmp)
        return fd, tmp

    monkeypatch.setattr(video, "temp_file", temp)


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_video_is_written_whole(tmp_path, quick_game, suffix):
    import imageio.v2 as imageio

    from pongrl.video import record

    res = record(None, tmp_path / f"game{suffix}")
    assert res["video"] == str(tmp_path / f"game{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"game{suffix}"]
    frames = imageio.mimread(tmp_path / f"game{suffix}")
    assert len(frames) == (FRAMES + 1) // 2 if suffix == ".gif" else FRAMES
    assert frames[0].shape[:2] == ((210, 160) if suffix == ".gif" else (420, 320))


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_video_on_a_full_disk_is_one_line_and_leaves_nothing(
    tmp_path, quick_game, video_on_a_full_disk, unraisable, capsys, suffix
):
    from pongrl.video import record

    with pytest.raises(UserError) as e:
        record(None, tmp_path / f"game{suffix}")
    assert str(e.value) == f"cannot write the video {tmp_path / f'game{suffix}'}: No space left on device"
    gc.collect()
    assert unraisable == [] and list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_play_on_a_full_disk_is_one_line_exit_2(tmp_path, quick_game, video_on_a_full_disk, unraisable, capsys, suffix):
    err = one_line_exit_2(capsys, ["play", "--pretrained", "--video", str(tmp_path / f"game{suffix}")])
    assert "No space left on device" in err and "Broken pipe" not in err
    gc.collect()
    assert unraisable == [] and list(tmp_path.iterdir()) == []


def test_ffmpeg_that_stops_mid_game_is_its_reason_not_a_broken_pipe(tmp_path, quick_game, monkeypatch):
    import imageio_ffmpeg

    from pongrl.video import record

    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\nhead -c 1000 >/dev/null\n"
        "echo '[out#0/mp4 @ 0x1] Error writing trailer: Disk quota exceeded' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(fake))
    with pytest.raises(UserError, match="game.mp4: Disk quota exceeded$"):
        record(None, tmp_path / "game.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ffmpeg"]
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'something odd' >&2\nexit 3\n")
    with pytest.raises(UserError, match="game.mp4: ffmpeg: something odd$"):
        record(None, tmp_path / "game.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ffmpeg"]


def test_ctrl_c_while_recording_leaves_no_partial_video(tmp_path, monkeypatch):
    from pongrl import video

    def interrupted(agent, on_frame, **kwargs):
        on_frame(np.zeros((210, 160, 3), np.uint8))
        raise KeyboardInterrupt

    monkeypatch.setattr(video, "play_game", interrupted)
    for suffix in (".gif", ".mp4"):
        with pytest.raises(KeyboardInterrupt):
            video.record(None, tmp_path / f"game{suffix}")
    assert list(tmp_path.iterdir()) == []
