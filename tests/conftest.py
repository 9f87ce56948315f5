"""Shared helpers for the pongrl tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pongrl import checkpoint
from pongrl.config import Config
from pongrl.env import DOWN, UP


def tiny_config(**overrides) -> Config:
    """A config small enough to train a few Pong episodes in a second or two."""
    base = dict(num_envs=2, batch_size=1, episodes=2, hidden=16, seed=0, checkpoint_every=0)
    base.update(overrides)
    return Config(**base)


@pytest.fixture
def make_config():
    """Factory: make_config(**overrides) -> a tiny, valid Config."""
    return tiny_config


@pytest.fixture
def run_dir(tmp_path):
    """A run folder that does not exist yet (train() creates it)."""
    return tmp_path / "run"


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random UP/DOWN actions, as int64."""
    return rng.choice(np.array([UP, DOWN], np.int64), size=n)


def random_diff_frames(
    rng: np.random.Generator, rows: int, dim: int = 6400, density: float = 0.01, empty_rows: tuple[int, ...] = ()
) -> np.ndarray:
    """(rows, dim) int8 difference frames: sparse entries in {-1, 1}; the given rows all zero."""
    x = np.zeros((rows, dim), np.int8)
    mask = rng.random((rows, dim)) < density
    x[mask] = rng.choice(np.array([-1, 1], np.int8), size=int(mask.sum()))
    x[list(empty_rows)] = 0
    return x


def rewritten(saved, tmp_path, change) -> Path:
    """A checkpoint whose arrays were changed and re-declared, as a careful forger would."""
    arrays, meta = checkpoint.load(saved)
    change(arrays, meta)
    meta = {k: v for k, v in meta.items() if k not in ("format", "version", "arrays")}
    path = tmp_path / "forged.npz"
    checkpoint.save(path, arrays, meta)
    return path
