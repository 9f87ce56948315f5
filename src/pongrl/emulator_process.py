"""Pong games in a child process: the emulator runs on its own core while Python learns.

ale-py's emulator holds Python's GIL while it steps, so threads cannot run it
beside the learner; processes can. `GamesProcess` starts a Python running
`emulators.serve_games` with two pipes (`start_child`), and speaks a small bytes
protocol with it (`emulator_protocol`: nothing is pickled).

The child runs in its own process group and ignores SIGINT, so Ctrl-C reaches
only the parent (which then saves the games); it exits when the parent's pipe
closes, even after kill -9, and says nothing on its way out.

The parent watches its children: every wait on one has a deadline. A child
that dies (kill -9, a crash) or does not answer in time (stopped by SIGSTOP,
hung) raises `EmulatorError`, one line naming the process and what became of
it; `close()` never hangs either, and kills a child that does not leave.
Messages are framed as multiprocessing.connection frames them (the child reads
them with a `Connection`); the parent reads and writes its ends of the pipes
without blocking, so that a child stopped in the middle of a message cannot
hold it either.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from typing import NoReturn

from .errors import RunError

# How long the parent waits for a child. A step takes about half a millisecond a game and
# seeding (a ROM reload) about 0.2 s a game, so these deadlines are met by any child that
# runs at all, on a loaded machine too: only a child that is stopped or hung reaches one.
ANSWER_S = 30.0  # seconds any command may take, whatever its size (the first also waits for start-up)
PER_GAME_S = {b"s": 0.05, b"r": 1.0, b"g": 0.05, b"p": 1.0}  # and seconds more for each game of the child
EXIT_S = 5.0  # seconds a child may take to leave after b"q" (or to be reaped once its pipe closed)
KILL_S = 1.0  # seconds between SIGTERM and SIGKILL for a child that does not leave
DOING = {
    b"s": "during a step",
    b"r": "while seeding its games",
    b"g": "while saving its games",
    b"p": "while restoring its games",
}
STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "waiting on a disk",
    "T": "stopped",
    "t": "stopped by a debugger",
    "Z": "exited",
}


class EmulatorError(RunError):
    """An emulator process died or stopped answering: the run cannot go on (its last checkpoint stays)."""


class GamesProcess:
    """k Pong games (`ale_games.AleGames`) in a child process; `spec` holds the env's
    settings (gymnasium's spec kwargs: game, frameskip, repeat_action_probability, ...)."""

    def __init__(self, spec: dict, k: int):
        self.proc, parent_reads, parent_writes = start_child(spec, k)
        os.set_blocking(parent_reads, False)
        os.set_blocking(parent_writes, False)
        self.fd_in, self.fd_out = parent_reads, parent_writes
        self.readable, self.writable = select.poll(), select.poll()
        self.readable.register(parent_reads, select.POLLIN)
        self.writable.register(parent_writes, select.POLLOUT)
        self.k, self.command = k, b"r"
        self.failed = False  # the child died or did not answer: close() kills it at once
        self.closed = False

    # -- the parent's side of the protocol, every wait with a deadline
    def send(self, command: bytes, payload: bytes = b"") -> None:
        self.command = command
        n = 1 + len(payload)
        head = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
        data, deadline = memoryview(head + command + payload), None
        while data:
            try:
                data = data[os.write(self.fd_out, data) :]
            except BlockingIOError:  # the pipe is full: the child is busy, or stopped
                deadline = deadline or time.monotonic() + self.timeout()
                self._poll(self.writable, deadline)
            except OSError:  # BrokenPipeError: the child has gone
                self._gone()

    def reply(self) -> bytes:
        deadline = time.monotonic() + self.timeout()
        self._poll(self.readable, deadline)  # the one wait of a step: for its reply, or the child's end
        (n,) = struct.unpack("!i", self._read(4, deadline))
        if n == -1:
            (n,) = struct.unpack("!Q", self._read(8, deadline))
        msg = self._read(n, deadline)
        if msg[:1] == b"!":
            raise RuntimeError("an emulator process failed:\n" + msg[1:].decode())
        return msg[1:]

    def timeout(self) -> float:
        """Seconds the command in hand may take."""
        return ANSWER_S + PER_GAME_S.get(self.command, 0.0) * self.k

    def _read(self, n: int, deadline: float) -> bytes:
        parts = []
        while n:
            try:
                b = os.read(self.fd_in, min(n, 1 << 20))
            except BlockingIOError:
                self._poll(self.readable, deadline)
                continue
            except OSError:
                self._gone()
            if not b:  # end of file: the child's end of the pipe has closed
                self._gone()
            parts.append(b)
            n -= len(b)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _poll(self, poller, deadline: float) -> None:
        """Wait until the pipe is ready (or closed), or raise EmulatorError at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            self._no_answer()

    def _gone(self) -> NoReturn:
        """The child's pipe closed: it has exited; say how."""
        self.failed = True
        try:
            code = self.proc.wait(EXIT_S)
        except subprocess.TimeoutExpired:
            raise EmulatorError(
                f"emulator process {self.proc.pid} closed its pipe {self.doing()}, and did not exit"
            ) from None
        raise EmulatorError(f"emulator process {self.proc.pid} {exit_text(code)} {self.doing()}") from None

    def _no_answer(self) -> NoReturn:
        self.failed = True
        if self.proc.poll() is not None:
            self._gone()
        state = STATES.get(process_state(self.proc.pid), "")
        raise EmulatorError(
            f"emulator process {self.proc.pid} did not answer within {self.timeout():.0f} s "
            f"{self.doing()}" + (f" (it is {state})" if state else "")
        )

    def doing(self) -> str:
        return DOING.get(self.command, "while busy")

    # -- leaving
    def close(self) -> None:
        self.quit()
        self.join()

    def quit(self) -> None:
        """Ask the child to leave, and close the pipes: a reply in flight finds no reader, and
        the child, end of file."""
        if self.closed:
            return
        self.closed = True
        if not self.failed:
            try:
                os.write(self.fd_out, struct.pack("!i", 1) + b"q")  # 5 bytes: written whole, or not at all
            except OSError:
                pass
        for fd in (self.fd_out, self.fd_in):
            try:
                os.close(fd)
            except OSError:
                pass

    def join(self) -> None:
        """Wait for the child to leave; one that does not (stopped, hung, or failed) is ended."""
        if self.proc.returncode is not None:
            return
        if not self.failed:
            try:
                self.proc.wait(EXIT_S)
                return
            except subprocess.TimeoutExpired:
                pass
        for sig, wait in ((signal.SIGTERM, KILL_S), (signal.SIGKILL, EXIT_S)):
            try:
                self.proc.send_signal(sig)
                if sig == signal.SIGTERM and self.proc.returncode is None:
                    os.kill(self.proc.pid, signal.SIGCONT)  # a stopped child acts on its SIGTERM now
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                return


def start_child(spec: dict, k: int) -> tuple[subprocess.Popen, int, int]:
    """A Python running `emulators.serve_games` on k games -> (its process, the parent's
    ends of the two pipes: the one it reads, the one it writes)."""
    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()
    # SIGINT is ignored first thing, so that even a Ctrl-C during the child's imports leaves it quiet
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "import sys, pongrl.emulators as e; e.serve_games(sys.argv[1:])"
    )
    args = [sys.executable, "-c", code, str(child_reads), str(child_writes), json.dumps(spec), str(k)]
    # its own process group, so Ctrl-C in a terminal reaches only the parent; the same
    # session, so the scheduler shares the CPU with it as with threads of the parent
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    try:
        proc = subprocess.Popen(args, pass_fds=(child_reads, child_writes), **group)
    except BaseException:
        os.close(parent_reads)
        os.close(parent_writes)
        raise
    finally:
        os.close(child_reads)
        os.close(child_writes)
    return proc, parent_reads, parent_writes


def exit_text(code: int) -> str:
    """How a child ended, from its exit code (negative: the signal that killed it)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}" if code else "exited"


def process_state(pid: int) -> str:
    """The kernel's one-letter state of a process (R, S, D, T, ...), or "" where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return ""
