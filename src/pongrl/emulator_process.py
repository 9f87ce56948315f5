"""Pong games in a child process: the emulator runs on its own core while Python learns.

ale-py's emulator holds Python's GIL while it steps, so threads cannot run it
beside the learner; processes can. `GamesProcess` starts a
Python running `emulators.serve_games` with two pipes, and speaks a small bytes
protocol with it (nothing is pickled). Each message is one command byte and a
payload; each reply is b"+" and a payload, or b"!" and the child's error.

  b"r" seeds (k,) int64, -1 = keep   -> frames (k, 80, 80) binary, 8 pixels a byte (np.packbits)
  b"s" actions (k,) int8, -1 = skip  -> frames, rewards (k,) float32, dones (k,) bool
  b"g"                               -> sizes (k,) int64, then the games' states
  b"p" sizes (k,) int64, states      -> nothing
  b"q"                               -> the child exits

The child runs in its own process group and ignores SIGINT, so Ctrl-C reaches
only the parent (which then saves the games); it exits when the parent's pipe
closes, even after kill -9.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection

import numpy as np

PACKED = 80 * 80 // 8  # bytes of one binary frame, 8 pixels a byte: an eighth of the pipe's traffic


def pack_frames(frames: np.ndarray) -> bytes:
    """Binary frames (k, 80, 80) -> k * PACKED bytes."""
    return np.packbits(frames).tobytes()


def unpack_frames(b: bytes, k: int) -> np.ndarray:
    """k * PACKED bytes -> binary frames (k, 80, 80) uint8."""
    return np.unpackbits(np.frombuffer(b, np.uint8, k * PACKED)).reshape(k, 80, 80)


def encode_states(states: list[bytes]) -> bytes:
    return np.array([len(s) for s in states], np.int64).tobytes() + b"".join(states)


def decode_states(payload: bytes, k: int) -> list[bytes]:
    sizes = np.frombuffer(payload[: 8 * k], np.int64)
    ends = 8 * k + np.cumsum(sizes)
    return [payload[e - s:e] for s, e in zip(sizes, ends)]


class GamesProcess:
    """k Pong games (`emulators.AleGames`) in a child process; `spec` holds the env's
    settings (gymnasium's spec kwargs: game, frameskip, repeat_action_probability, ...)."""

    def __init__(self, spec: dict, k: int):
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        args = [sys.executable, "-c", "import sys, pongrl.emulators as e; e.serve_games(sys.argv[1:])",
                str(child_reads), str(child_writes), json.dumps(spec), str(k)]
        # its own process group, so Ctrl-C in a terminal reaches only the parent; the same
        # session, so the scheduler shares the CPU with it as with threads of the parent
        group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
        self.proc = subprocess.Popen(args, pass_fds=(child_reads, child_writes), **group)
        os.close(child_reads)
        os.close(child_writes)
        self.out, self.inp = Connection(parent_writes, readable=False), Connection(parent_reads, writable=False)
        self.k = k

    def send(self, command: bytes, payload: bytes = b"") -> None:
        try:
            self.out.send_bytes(command + payload)
        except OSError:
            self.stopped()

    def reply(self) -> bytes:
        try:
            msg = self.inp.recv_bytes()
        except (EOFError, OSError):
            self.stopped()
        if msg[:1] == b"!":
            raise RuntimeError("an emulator process failed:\n" + msg[1:].decode())
        return msg[1:]

    def stopped(self):
        raise RuntimeError(f"an emulator process stopped (exit code {self.proc.wait()})") from None

    def close(self) -> None:
        try:
            self.out.send_bytes(b"q")
        except OSError:
            pass
        self.out.close()
        self.inp.close()
        self.proc.wait()


# --------------------------------------------------------------------------- the child
def handle(games, command: bytes, payload: bytes) -> bytes:
    """One command to the child's games; returns the reply's payload."""
    if command == b"s":
        frames, rewards, dones = games.step(np.frombuffer(payload, np.int8))
        return pack_frames(frames) + rewards.tobytes() + dones.tobytes()
    if command == b"r":
        return pack_frames(games.seed(np.frombuffer(payload, np.int64)))
    if command == b"g":
        return encode_states(games.states())
    if command == b"p":
        games.set_states(decode_states(payload, games.n))
        return b""
    raise ValueError(f"unknown command {command!r}")


def serve(inp: Connection, out: Connection, games) -> None:
    while True:
        try:
            msg = inp.recv_bytes()
        except (EOFError, OSError):
            return  # the parent has gone
        if msg[:1] == b"q":
            return
        try:
            reply = b"+" + handle(games, msg[:1], msg[1:])
        except Exception:
            reply = b"!" + traceback.format_exc().encode()
        try:
            out.send_bytes(reply)
        except OSError:
            return  # the parent has gone while we worked: it was stopped mid-command
