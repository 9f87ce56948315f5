"""The bytes protocol between a `GamesProcess` and its child, and the child's side of it.

Nothing is pickled. Each message is one command byte and a payload; each reply
is b"+" and a payload, or b"!" and the child's error (its traceback).

  b"r" seeds (k,) int64, -1 = keep   -> frames (k, 80, 80) binary, 8 pixels a byte (np.packbits)
  b"s" actions (k,) int8, -1 = skip  -> frames, rewards (k,) float32, dones (k,) bool
  b"g"                               -> sizes (k,) int64, then the games' states
  b"p" sizes (k,) int64, states      -> nothing
  b"q"                               -> the child exits

Messages are framed as multiprocessing.connection frames them: the child reads
and writes them with a `Connection` (`serve`, which returns when the parent's pipe
closes); the parent frames its own (`emulator_process`).
"""

from __future__ import annotations

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
    return [payload[e - s : e] for s, e in zip(sizes, ends)]


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
