"""Record a game to MP4 (imageio-ffmpeg's bundled ffmpeg) or GIF.

The video is written to a temporary file beside the output (NAME.pongrl-RANDOM.tmp)
and renamed when whole: any failure (a full disk, Ctrl-C) removes it and is one line."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .agent import Agent
from .checkpoint import remove_quietly, replace_with, temp_file
from .errors import UserError
from .evaluate import play_game

VIDEO_SUFFIXES = (".mp4", ".gif")


class VideoError(UserError):
    """The video could not be written (a full disk, ffmpeg failed)."""


def record(
    agent: Agent, path: str | Path, seed: int = 0, greedy: bool = True, max_steps: int | None = None, fps: int = 30
) -> dict:
    """Play one game and write it to `path` (.mp4 or .gif). Returns the game's result."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"video file must end in .mp4 or .gif, got {path.name!r}")
    try:  # an unwritable place fails here, in one line, before any game or writer
        fd, tmp = temp_file(path)
    except OSError as e:
        raise VideoError(f"cannot write the video {path}: {e.strerror or e}") from None
    try:
        try:
            writer = Mp4Writer(fd, tmp, fps, path) if suffix == ".mp4" else GifWriter(fd, fps, path)
        except BaseException:
            os.close(fd)  # each writer takes the descriptor only once nothing else can fail
            raise
        try:
            result = play_game(agent, writer.add, seed=seed, greedy=greedy, max_steps=max_steps)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        replace_with(tmp, path)
    except OSError as e:
        remove_quietly(tmp)
        raise VideoError(f"cannot write the video {path}: {e.strerror or e}") from None
    except BaseException:
        remove_quietly(tmp)
        raise
    return result | {"video": str(path)}


class GifWriter:
    """Every 2nd frame (a whole game's GIF stays small), encoded in memory, then written
    to the open temporary file `fd` in one go: a failed write is one OSError, and no
    half-closed encoder is left to fail again when it is collected."""

    def __init__(self, fd: int, fps: int, path: Path):
        import imageio.v2 as imageio

        self.count, self.buf = 0, io.BytesIO()
        self.writer = imageio.get_writer(self.buf, format="GIF", duration=2000 / fps, loop=0)
        self.fd: int | None = fd

    def add(self, frame: np.ndarray) -> None:
        if self.count % 2 == 0:
            self.writer.append_data(frame)
        self.count += 1

    def close(self) -> None:
        fd, self.fd = self.fd, None
        assert fd is not None  # closed once (`record`), with the descriptor it was given
        with open(fd, "wb") as f:
            self.writer.close()
            f.write(self.buf.getbuffer())

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # into memory: nothing to fail on, nothing to report
            self.writer.close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Mp4Writer:
    """H.264 by imageio-ffmpeg's ffmpeg, fed raw frames on its stdin, upscaled 2x (420x320
    suits video players and codec block sizes). Its messages are kept and, if it fails, say
    why in one line (a full disk: "No space left on device", not a "Broken pipe" on our side)."""

    def __init__(self, fd: int, tmp: str, fps: int, path: Path):
        import imageio_ffmpeg

        self.tmp, self.fps, self.path = tmp, fps, path
        try:
            self.exe = imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError as e:
            raise VideoError(f"cannot write the video {path}: no ffmpeg ({e})") from None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close, abort or failure)
        os.close(fd)  # ffmpeg opens the temporary file itself

    def start(self, height: int, width: int) -> None:
        quality = int((1 - 7 / 10) * 51)  # as imageio's quality=7 for libx264
        cmd = [
            self.exe,
            "-y",
            "-f",
            "rawvideo",
            "-vcodec",
            "rawvideo",
            "-s",
            f"{width}x{height}",
            "-pix_fmt",
            "rgb24",
            "-r",
            str(self.fps),
            "-i",
            "-",
            "-an",
            "-vcodec",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-crf",
            str(quality),
            "-v",
            "error",
            "-f",
            "mp4",
            self.tmp,
        ]
        # its own session: a Ctrl-C reaches pongrl, which stops ffmpeg and removes the file
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True
        )

    def add(self, frame: np.ndarray) -> None:
        big = np.ascontiguousarray(np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1), dtype=np.uint8)
        if self.proc is None:
            self.start(*big.shape[:2])
        assert self.proc is not None and self.proc.stdin is not None  # start made it, stdin a pipe
        try:
            self.proc.stdin.write(big.data)
        except OSError:  # ffmpeg stopped (a full disk): its own message says why
            raise self.failure() from None

    def close(self) -> None:
        if self.proc is None:
            self.log.close()
            raise VideoError(f"cannot write the video {self.path}: the game has no frames")
        assert self.proc.stdin is not None  # started with stdin a pipe
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.wait() != 0:
            raise self.failure()
        self.log.close()

    def abort(self) -> None:
        if self.proc is not None:
            self.stop()
        self.log.close()

    def stop(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None  # only a started ffmpeg is stopped
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        try:
            self.proc.stdin.close()  # what it could not take is dropped: the file is removed
        except OSError:
            pass

    def failure(self) -> VideoError:
        assert self.proc is not None  # only a started ffmpeg fails
        self.stop()
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().decode(errors="replace").splitlines() if line.strip()]
        self.log.close()
        return VideoError(f"cannot write the video {self.path}: {ffmpeg_reason(lines, self.proc.returncode)}")


SYSTEM_ERRORS = {os.strerror(n) for n in errno.errorcode}


def ffmpeg_reason(lines: list[str], status: int) -> str:
    """Why ffmpeg failed, from its messages: the system's error if it names one ("No
    space left on device"), else its first message."""
    for line in lines:
        if line.rsplit(": ", 1)[-1] in SYSTEM_ERRORS:
            return line.rsplit(": ", 1)[-1]
    return "ffmpeg: " + (lines[0].split("] ", 1)[-1][:200] if lines else f"it exited with status {status}")
