"""Record a game to MP4 (imageio-ffmpeg's bundled ffmpeg) or GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .agent import Agent
from .errors import UserError
from .evaluate import play_game

VIDEO_SUFFIXES = (".mp4", ".gif")


def record(agent: Agent, path: str | Path, seed: int = 0, greedy: bool = True, max_steps: int | None = None,
           fps: int = 30) -> dict:
    """Play one game and write it to `path` (.mp4 or .gif). Returns the game's result."""
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"video file must end in .mp4 or .gif, got {path.name!r}")
    tmp = path.with_name(path.stem + ".partial" + suffix)
    try:
        tmp.open("wb").close()  # an unwritable place fails here, in one line, before any game or writer
    except OSError as e:
        raise UserError(f"cannot write the video {path}: {e.strerror or e}") from None
    if suffix == ".mp4":
        # 2x upscale: 420x320 suits video players and codec block sizes
        writer = imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=7, macro_block_size=4)

        def add(frame):
            writer.append_data(np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1))
    else:
        # every 2nd frame keeps a whole game's GIF small
        writer = imageio.get_writer(tmp, format="GIF", duration=2000 / fps, loop=0)
        count = [0]

        def add(frame):
            if count[0] % 2 == 0:
                writer.append_data(frame)
            count[0] += 1
    try:
        try:
            result = play_game(agent, add, seed=seed, greedy=greedy, max_steps=max_steps)
        finally:
            writer.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return result | {"video": str(path)}
