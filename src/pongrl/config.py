"""Run configuration: one dataclass, saved as JSON in every run folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

ALGOS = ("reinforce",)


class ConfigError(ValueError):
    """A configuration value a user gave is not acceptable."""


@dataclass
class Config:
    # --- run ---------------------------------------------------------------
    algo: str = "reinforce"
    """Learning algorithm: 'reinforce' is the tutorial's."""
    env_id: str = "ALE/Pong-v5"
    """Gymnasium id of the Pong env (ALE/Pong-v5, Pong-v0, PongNoFrameskip-v4, ...)."""
    seed: int = 0
    """Seeds the weights, the action sampling and every game's reset."""
    num_envs: int = 8
    """Games stepped in lockstep. 1 reproduces the tutorial's one-game loop."""
    episodes: int | None = None
    """Stop once the run has finished this many episodes in total (resume included)."""
    steps: int | None = None
    """Stop once the run has taken this many agent steps in total (resume included)."""
    checkpoint_every: int = 50
    """Save a checkpoint after every this many finished episodes (0: only at the end)."""
    # --- policy ------------------------------------------------------------
    hidden: int = 200
    """Hidden ReLU units of the 2-layer MLP."""
    # --- REINFORCE (the tutorial's hyperparameters) -------------------------
    batch_size: int = 10
    """Episodes whose gradients are summed before one RMSProp step."""
    lr: float = 1e-4
    """RMSProp learning rate."""
    gamma: float = 0.99
    """Discount factor; the discounted sum restarts at every point."""
    decay_rate: float = 0.99
    """RMSProp decay of the running mean of squared gradients."""
    rms_eps: float = 1e-5
    """RMSProp epsilon added to the root of that mean."""

    def validate(self) -> "Config":
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(self.algo in ALGOS, f"unknown algo {self.algo!r}; choose one of {', '.join(ALGOS)}")
        need(0 <= self.seed < 2**20, f"seed must be in [0, 2**20), got {self.seed!r}")
        need(1 <= self.num_envs <= 256, f"num_envs must be in [1, 256], got {self.num_envs!r}")
        need(self.episodes is None or self.episodes >= 0, f"episodes must be >= 0, got {self.episodes!r}")
        need(self.steps is None or self.steps >= 0, f"steps must be >= 0, got {self.steps!r}")
        need(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every!r}")
        need(self.hidden >= 1, f"hidden must be >= 1, got {self.hidden!r}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size!r}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        need(0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma!r}")
        need(0.0 <= self.decay_rate < 1.0, f"decay_rate must be in [0, 1), got {self.decay_rate!r}")
        need(self.rms_eps > 0, f"rms_eps must be > 0, got {self.rms_eps!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json_file(cls, path: str | Path) -> "Config":
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
        return cls.from_dict(d)
