"""`--tensorboard`: event files that TensorBoard reads, with CleanRL-style scalar names.

The event files are read back here with no TensorBoard install: each is a
TFRecord file (u64 length, masked CRC-32C of the length, the bytes, masked
CRC-32C of the bytes), every record a serialised `Event` protobuf, parsed with
the protobuf classes that tensorboardX ships.
"""

import struct
import sys

import pytest
from conftest import tiny_config

from pongrl.cli import main
from pongrl.logger import read_csv
from pongrl.train import train

pytest.importorskip("tensorboardX")


def read_events(run_dir) -> list:
    """Every Event in the run folder's event files, in file order, CRCs checked."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    events = []
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {run_dir}"
    for path in files:
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header = data[pos : pos + 8]
            (length,) = struct.unpack("<Q", header)
            (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
            body = data[pos + 12 : pos + 12 + length]
            (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
            assert header_crc == masked_crc32c(header) and body_crc == masked_crc32c(body), f"bad CRC in {path}"
            events.append(Event.FromString(body))
            pos += 16 + length
    return events


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value), ...] of every scalar logged in the run folder."""
    out: dict[str, list] = {}
    for ev in read_events(run_dir):
        for v in ev.summary.value:
            out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


@pytest.mark.slow
def test_reinforce_run_logs_episodes_losses_sps_and_evals(run_dir):
    cfg = tiny_config(episodes=2, eval_every=1000, eval_games=1)
    train(cfg, run_dir, progress=False, tensorboard=True)
    tb = scalars(run_dir)
    rows = read_csv(run_dir / "metrics.csv")
    # one point per finished episode, at its env step, equal to metrics.csv
    assert tb["charts/episodic_return"] == [(int(r["env_steps"]), r["return"]) for r in rows]
    assert [v for _, v in tb["charts/episodic_length"]] == [r["length"] for r in rows]
    assert [v for _, v in tb["charts/running_reward"]] == pytest.approx([r["running_reward"] for r in rows], abs=1e-5)
    assert all(v > 0 for _, v in tb["charts/SPS"])
    assert len(tb["losses/policy_loss"]) >= 1 and "losses/entropy" in tb  # REINFORCE's update stats
    evals = read_csv(run_dir / "eval.csv")
    assert tb["eval/mean_score"] == [(int(r["env_steps"]), r["mean"]) for r in evals]
    assert "eval/win_rate" in tb


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [False, True])
def test_ppo_run_logs_its_update_stats(run_dir, overlap):
    cfg = tiny_config(
        algo="ppo", episodes=None, steps=64, ppo_num_steps=8, ppo_minibatches=2, ppo_hidden=16, ppo_overlap=overlap
    )
    train(cfg, run_dir, progress=False, tensorboard=True)
    tb = scalars(run_dir)
    updates = 64 // (8 * 2)
    for tag in (
        "losses/value_loss",
        "losses/policy_loss",
        "losses/entropy",
        "losses/explained_variance",
        "charts/learning_rate",
    ):
        assert len(tb[tag]) == updates, tag
    assert [v for _, v in tb["charts/updates"]] == list(range(1, updates + 1))
    steps = [step for step, _ in tb["charts/learning_rate"]]
    if overlap:  # an update's stats come when the next one starts, the last one's at the end
        assert steps == [16 * (i + 2) for i in range(updates - 1)] + [64]
    else:
        assert steps == [16 * (i + 1) for i in range(updates)]
    assert len(tb["charts/SPS"]) >= updates


@pytest.mark.slow
def test_resume_accepts_tensorboard_and_purges_what_was_not_saved(run_dir, capsys):
    assert (
        main(
            [
                "train",
                "--out",
                str(run_dir),
                "--num-envs",
                "2",
                "--hidden",
                "16",
                "--batch-size",
                "1",
                "--episodes",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert not list(run_dir.glob("events.out.tfevents.*"))  # not asked for: no event file
    assert main(["train", "--resume", str(run_dir), "--episodes", "2", "--tensorboard", "--no-progress"]) == 0
    rows = read_csv(run_dir / "metrics.csv")
    events = read_events(run_dir)
    starts = [ev.step for ev in events if ev.HasField("session_log")]
    assert starts == [int(rows[0]["env_steps"])]  # TensorBoard hides older events from this step on
    logged = [(ev.step, v.simple_value) for ev in events for v in ev.summary.value if v.tag == "charts/episodic_return"]
    assert logged == [(int(r["env_steps"]), r["return"]) for r in rows[1:]]  # the resumed session's episodes


def test_without_tensorboardx_the_flag_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` now fails
    rc = main(["train", "--out", str(tmp_path / "run"), "--episodes", "1", "--tensorboard"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "pip install tensorboardX" in err and "[tensorboard]" in err
    assert not (tmp_path / "run").exists()  # failed before making the run folder


def test_tensorboard_is_a_run_option_not_a_config_field():
    from pongrl.config import Config

    assert "tensorboard" not in Config.__dataclass_fields__  # not saved in config.json; --resume may give it
