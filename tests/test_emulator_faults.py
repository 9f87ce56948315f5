"""Emulator processes watched (issue 46): a child that dies or stops answering gives one line
(EmulatorError, a user error: exit 2), nothing waits on a child without a deadline, close()
never hangs, and the children say nothing when the parent goes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pongrl import emulator_process
from pongrl.emulators import EmulatorError, Games
from pongrl.env import PongVecEnv
from pongrl.errors import UserError

SPEC = {"game": "pong", "frameskip": 4, "repeat_action_probability": 0.25}


def children_of(pid: int) -> list[int]:
    """Child process ids of pid: psutil where installed, else /proc."""
    try:
        import psutil
    except ImportError:
        kids = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
        return kids
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def emulator_children(pid: int) -> list[int]:
    out = []
    for c in children_of(pid):
        try:
            if b"serve_games" in Path(f"/proc/{c}/cmdline").read_bytes():
                out.append(c)
        except OSError:
            pass
    return out


def resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


@pytest.fixture
def env():
    """4 games in 2 emulator processes, a few steps in."""
    env = PongVecEnv("ALE/Pong-v5", 4, seed=0, processes=2)
    try:
        env.reset()
        for _ in range(3):
            env.step(np.array([2, 3, 2, 3]))
        yield env
    finally:
        for part in env._games.parts:
            resume(part.proc.pid)
        t = time.monotonic()
        env.close()
        assert time.monotonic() - t < 10
        assert all(part.proc.returncode is not None for part in env._games.parts)


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and isinstance(e.value, UserError)
    return msg


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV], ids=lambda s: s.name)
def test_a_killed_child_ends_the_next_step_with_one_line(env, sig):
    child = env._games.parts[1].proc
    os.kill(child.pid, sig)
    t = time.monotonic()
    with pytest.raises(EmulatorError) as e:
        env.step(np.array([2, 3, 2, 3]))
    assert time.monotonic() - t < 5
    assert one_line(e) == f"emulator process {child.pid} was killed by {sig.name} during a step"
    assert child.returncode == -sig


def test_a_child_killed_between_send_and_recv(env):
    child = env._games.parts[0].proc
    env.send(np.array([2, 3, 2, 3]))
    child.kill()
    with pytest.raises(EmulatorError, match=f"emulator process {child.pid} was killed by SIGKILL"):
        env.recv()  # raises, unless the step's reply came before the kill: then the next step does
        env.step(np.array([2, 3, 2, 3]))


def test_a_stopped_child_ends_a_step_at_the_deadline(env, monkeypatch):
    monkeypatch.setattr(emulator_process, "ANSWER_S", 2.0)
    child = env._games.parts[0].proc
    os.kill(child.pid, signal.SIGSTOP)
    t = time.monotonic()
    with pytest.raises(EmulatorError) as e:
        env.step(np.array([2, 3, 2, 3]))
    assert 2.0 <= time.monotonic() - t < 6
    assert one_line(e) == f"emulator process {child.pid} did not answer within 2 s during a step (it is stopped)"
    t = time.monotonic()
    env.close()  # the stopped child is ended (SIGTERM, then SIGCONT so that it acts on it)
    assert time.monotonic() - t < 3
    assert child.returncode == -signal.SIGTERM


@pytest.mark.parametrize("what", ["seed", "state", "restore"])
def test_a_stopped_child_ends_every_other_command_at_the_deadline(env, monkeypatch, what):
    state = env.state()
    monkeypatch.setattr(emulator_process, "ANSWER_S", 1.0)
    monkeypatch.setattr(emulator_process, "PER_GAME_S", {})
    child = env._games.parts[0].proc  # the first one waited for: the other's deadline does not come into it
    os.kill(child.pid, signal.SIGSTOP)
    doing = {"seed": "seeding", "state": "saving", "restore": "restoring"}[what]
    with pytest.raises(EmulatorError, match=f"{child.pid} did not answer within 1 s while {doing} its games"):
        {"seed": env.reset, "state": env.state, "restore": lambda: env.restore(state)}[what]()


def test_a_message_too_big_for_the_pipe_does_not_block_on_a_stopped_child(monkeypatch):
    """Restoring 8 games sends ~140 kB, more than a pipe holds: the write waits, with a deadline."""
    games = Games(SPEC, 8, processes=1)
    child = games.parts[0].proc
    try:
        games.seed(np.arange(8))
        state = games.state()
        assert state["games"].nbytes > 100_000
        monkeypatch.setattr(emulator_process, "ANSWER_S", 1.0)
        monkeypatch.setattr(emulator_process, "PER_GAME_S", {})
        os.kill(child.pid, signal.SIGSTOP)
        with pytest.raises(EmulatorError, match="did not answer within 1 s while restoring its games"):
            games.restore(state)
    finally:
        resume(child.pid)
        games.close()
    assert child.returncode is not None


def test_a_child_stopped_in_the_middle_of_its_reply(monkeypatch):
    """The child stops with half its reply (8 saved games, ~140 kB) in the pipe: the parent's
    read does not wait for the rest past the deadline."""
    games = Games(SPEC, 8, processes=1)
    part = games.parts[0]
    try:
        games.seed(np.arange(8))
        monkeypatch.setattr(emulator_process, "ANSWER_S", 1.0)
        monkeypatch.setattr(emulator_process, "PER_GAME_S", {})
        part.send(b"g")
        assert part.readable.poll(10_000)  # the reply has begun
        time.sleep(0.3)  # the child fills the pipe, and waits for the parent to read
        os.kill(part.proc.pid, signal.SIGSTOP)
        with pytest.raises(EmulatorError, match="did not answer within 1 s while saving its games"):
            part.reply()
    finally:
        resume(part.proc.pid)
        games.close()


def test_close_does_not_hang_on_a_stopped_child(monkeypatch):
    """Nothing has failed yet: close() asks the child to leave, and ends it when it does not."""
    monkeypatch.setattr(emulator_process, "EXIT_S", 1.0)
    games = Games(SPEC, 2, processes=2)
    kids = [part.proc for part in games.parts]
    try:
        games.seed(np.array([1, 2]))
        os.kill(kids[0].pid, signal.SIGSTOP)
        t = time.monotonic()
        games.close()
        assert time.monotonic() - t < 5
        assert kids[0].returncode == -signal.SIGTERM and kids[1].returncode == 0
    finally:
        resume(kids[0].pid)
        games.close()  # a second close() does nothing


def test_close_after_a_child_died_is_quick_and_quiet(env):
    child = env._games.parts[0].proc
    child.kill()
    child.wait()
    t = time.monotonic()
    env.close()
    assert time.monotonic() - t < 2


def test_children_ignore_sigint(env):
    """Ctrl-C is the parent's to handle (it saves the games): a SIGINT that reaches a child,
    or its process group, changes nothing."""
    for part in env._games.parts:
        os.kill(part.proc.pid, signal.SIGINT)
        os.killpg(part.proc.pid, signal.SIGINT)
    time.sleep(0.2)
    env.step(np.array([2, 3, 2, 3]))
    assert all(part.proc.poll() is None for part in env._games.parts)


QUIET_SCRIPT = textwrap.dedent("""
    import faulthandler, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises, even if started with it ignored
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # where it is, should it hang
    import numpy as np
    from pongrl.env import PongVecEnv
    env = PongVecEnv("ALE/Pong-v5", 4, seed=0, processes=2)
    try:
        env.reset()
        print("ready", flush=True)
        while True:
            env.send(np.array([2, 3, 2, 3]))
            env.state()  # big replies in flight too
            env.recv()
    except KeyboardInterrupt:
        env.close()
        sys.exit(130)
""")


def hung(p: subprocess.Popen, kids: list[int]) -> str:
    """What a parent that did not leave, and its children, were doing: their kernel states and
    the parent's Python stack (QUIET_SCRIPT dumps it on SIGUSR1)."""
    states = {pid: emulator_process.process_state(pid) or "gone" for pid in [p.pid, *kids]}
    if p.poll() is None:
        os.kill(p.pid, signal.SIGUSR1)
        time.sleep(1)
    for pid in [p.pid, *kids]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, err = p.communicate(timeout=10)
    return f"did not leave within 60 s; process states {states}; stderr:\n{err.decode()[-4000:]}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig, group",
    [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGKILL, False)],
    ids=["ctrl-c", "SIGTERM", "SIGKILL"],
)
def test_children_say_nothing_when_the_parent_goes(sig, group):
    """Ctrl-C in a terminal (SIGINT to the foreground process group), SIGTERM, kill -9: the
    children leave without a word. stdout and stderr are the children's too: communicate()
    returns only when the last of them has gone."""
    p = subprocess.Popen(
        [sys.executable, "-c", QUIET_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        assert p.stdout.readline() == b"ready\n"
        kids = emulator_children(p.pid)
        assert len(kids) == 2
        time.sleep(0.5)
        os.killpg(p.pid, sig) if group else os.kill(p.pid, sig)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(hung(p, kids))
    finally:
        p.kill()
        p.wait()
    assert err == b""  # and the children have gone: they held the pipes to the end
    assert p.returncode in (130, -sig)


@pytest.mark.slow
def test_train_ends_in_one_line_and_exit_2_when_a_child_is_killed(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pongrl",
            "train",
            "--algo",
            "ppo",
            "--steps",
            "100000",
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "metrics.csv").exists() and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
        kids = emulator_children(p.pid)
        assert kids, "no emulator process found"
        time.sleep(1.0)  # training well under way
        os.kill(kids[0], signal.SIGKILL)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
        p.wait()
    lines = err.decode().splitlines()
    assert p.returncode == 2, err.decode()
    assert lines == [f"pongrl: error: emulator process {kids[0]} was killed by SIGKILL during a step"], lines
    assert not list(out.glob("*.tmp"))
