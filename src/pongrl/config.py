"""Run configuration: one dataclass, saved as JSON in every run folder.

`Config` holds the fields every run has, and inherits those of each algorithm
from the dataclass beside its code (pongrl.reinforce.ReinforceConfig,
pongrl.ppo.PPOConfig), so that one flat dict (config.json) and one flag per
field (`pongrl train --help`) describe a run."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import ClassVar

from .errors import UserError
from .ppo import PPOConfig
from .reinforce import ReinforceConfig
from .version import __version__

ALGOS = ("reinforce", "ppo")
# what --resume may change: the targets, and where the work runs (learner_threads changes the numbers
# to float32 rounding from there on; emulators never changes them)
TARGET_FIELDS = ("episodes", "steps", "checkpoint_every", "eval_every", "eval_games", "learner_threads", "emulators")
# Fields added after runs had been saved without them, with the value those runs used.
SAVED_BEFORE = {
    "ppo_overlap": False,
    "eval_greedy": False,
    "ppo_obs": "diff",
    "ppo_anneal_entropy": False,
    "lr_anneal_steps": 0,
    "lr_floor": 0.0,
    "learner_threads": 1,
    "emulators": 0,
}
# Fields added after runs had been saved without them, whose value those runs kept in another field.
SAVED_AS = {"ppo_gamma": "gamma"}
# Options measured and not kept: the value that means "not used" (which old configs carry) and
# the last pongrl that has them. A config that uses one is refused; one that leaves it off loads.
RETIRED = {
    "ppo_lazy_adam": False,
    "ppo_norm_value": False,
    "ppo_hidden2": 0,
    "ppo_actions": "updown",
    "adv_norm": "episode",
}
RETIRED_VALUES = {"ppo_obs": ("frame+diff+coarse", "frame+diff+pyramid3")}
LAST_WITH_RETIRED = "0.6.0"


class ConfigError(UserError):
    """A configuration value a user gave is not acceptable."""


@dataclass
class Config(ReinforceConfig, PPOConfig):
    """A run's configuration: the fields every run has, below, and those of its
    algorithm (`ReinforceConfig` in pongrl.reinforce, `PPOConfig` in pongrl.ppo)."""

    algo: str = "reinforce"
    """Learning algorithm: 'reinforce' is the tutorial's; 'ppo' is actor-critic PPO (pongrl.ppo)."""
    env_id: str = "ALE/Pong-v5"
    """Gymnasium id of the Pong env (ALE/Pong-v5, Pong-v0, PongNoFrameskip-v4, ...)."""
    seed: int = 0
    """Seeds the weights, the action sampling and every game's reset."""
    init_from: str | None = None
    """Start from the network weights of this agent or checkpoint file (.npz), to
    fine-tune a trained agent. The optimiser state, schedules, counters and games
    start fresh; its algo and network shapes must match this config's."""
    num_envs: int = 16
    """Games stepped in lockstep. 1 reproduces the tutorial's loop."""
    groups: int = 0
    """Games are stepped in this many groups, in turn: while the emulator runs one
    group, the learner works on another. 1 steps all games together; 0 picks 2
    for REINFORCE when num_envs is even, else 1."""
    episodes: int | None = None
    """Stop once the run has finished this many episodes in total (resume included).
    Games that end on the same step all count, so the total can be passed by a
    few; PPO stops at the end of the rollout in which it is reached."""
    steps: int | None = None
    """Stop once the run has taken this many agent steps in total (resume included);
    PPO stops at the end of the rollout in which it is reached."""
    checkpoint_every: int = 50
    """Save a checkpoint after every this many finished episodes (0: only at the end)."""
    eval_every: int = 0
    """Every this many env steps, play eval_games full games on evaluation seeds
    (never used for training), append the score to RUN_DIR/eval.csv and keep the
    best policy so far in RUN_DIR/best.npz (0: never)."""
    eval_games: int = 10
    """Full games per evaluation during training (see eval_every)."""
    eval_greedy: bool = True
    """Evaluations during training play the policy's most likely action, as
    `pongrl eval` does; false samples it as in training."""
    workers: int = 0
    """Ray workers (actors) that play the games, num_envs games each, while the
    learner stays in this process; needs `pongrl train --ray ADDRESS`. 0: play
    and learn in this process."""
    worker_steps: int = 128
    """With workers, REINFORCE: steps of every worker's rollout (a PPO rollout
    is ppo_num_steps steps)."""
    learner_threads: int = 0
    """Threads that share the learner's products and optimizer steps (pongrl.parallel). 0: placed
    at start-up by measured cost (pongrl.placement), and the number chosen is saved in the run's
    config. 1 gives the numbers of a one-thread learner; T > 1 the same to float32 rounding, and
    the same bits for the same T."""
    emulators: int = 0
    """Emulator processes that step the games, in all (at most num_envs; with workers, each
    worker has its own). 0: placed at start-up by measured cost. Never changes the numbers."""

    CHOICES: ClassVar[dict[str, tuple]] = {"algo": ALGOS}
    RANGES: ClassVar[dict[str, str]] = {
        "seed": "in [0, 1048576)",
        "num_envs": "in [1, 256]",
        "groups": "in [0, 256]",
        "episodes": ">= 0",
        "steps": ">= 0",
        "checkpoint_every": ">= 0",
        "eval_every": ">= 0",
        "eval_games": "in [1, 100000]",
        "workers": "in [0, 100000]",
        "worker_steps": "in [1, 1048576]",
        "learner_threads": "in [0, 1024]",
        "emulators": "in [0, 256]",
    }

    def validate(self) -> Config:
        """Every field of the right type and in its range; else ConfigError naming the field and value."""
        ranges = _rules("RANGES")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _has_type(value, str(f.type)):
                raise ConfigError(f"{f.name} must be {TYPE_WORDS[str(f.type)]}, got {value!r}")
            rule = ranges.get(f.name)
            if rule is not None and value is not None and not _in_range(value, rule):
                raise ConfigError(f"{f.name} must be {rule}, got {value!r}")
        for name, choices in _rules("CHOICES").items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        problems = self.check_reinforce() + self.check_ppo() + self.check_run()
        if problems:
            raise ConfigError(problems[0])
        return self

    def check_run(self) -> list[str]:
        """What is wrong across the shared fields and the algorithms' (empty: nothing)."""
        if self.init_from == "":
            return ["init_from must be a file path, got ''"]
        if self.groups and self.num_envs % self.groups:
            return [f"groups must be 0 (auto) or divide num_envs ({self.num_envs}), got {self.groups!r}"]
        if self.ppo_minibatches > self.num_envs * self.ppo_num_steps:
            return [f"ppo_minibatches must be in [1, num_envs * ppo_num_steps], got {self.ppo_minibatches!r}"]
        if self.emulators > self.num_envs:
            return [f"emulators must be 0 (placed) or in [1, num_envs ({self.num_envs})], got {self.emulators!r}"]
        return []

    @property
    def num_groups(self) -> int:
        """The number of game groups actually used (resolves groups=0)."""
        if self.groups:
            return self.groups
        return 2 if self.num_envs % 2 == 0 and self.algo == "reinforce" else 1

    @property
    def overlap(self) -> bool:
        """Whether PPO learns in a thread while the games play (ppo_overlap)."""
        return self.algo == "ppo" and self.ppo_overlap

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, d: dict) -> Config:
        """The config of a saved run: fields it predates take the value it ran with (SAVED_BEFORE, SAVED_AS)."""
        moved = {new: d[old] for new, old in SAVED_AS.items() if new not in d and old in d}
        return cls.from_dict({**SAVED_BEFORE, **moved, **d})

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        d = without_retired(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json_file(cls, path: str | Path) -> Config:
        """The config in a JSON file, or in a config that ships with pongrl, by name (config_file)."""
        path = config_file(path)
        d = read_json_object(path, "config file")
        missing = {f.name for f in dataclasses.fields(cls)} - set(d)
        if missing and missing <= set(SAVED_BEFORE) | set(SAVED_AS):  # a run's config.json from before those fields
            return cls.from_saved(d)
        return cls.from_dict(d)  # a partial file: the fields it omits take the defaults


MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH = 1 << 20, 8  # a config is a flat object of ~50 fields


def read_json_object(path: Path, what: str) -> dict:
    """The JSON object in a small regular file; ConfigError in one line for anything else
    (missing, a FIFO or device, too big, binary, not JSON, nested too deep, not an object)."""
    from .archive import header_depth

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} {path} is over {MAX_CONFIG_BYTES} bytes: not a pongrl config")
    try:
        text = data.decode("utf-8")
        if header_depth(text) > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{what} {path} nests deeper than a config does")
        d = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ConfigError(f"{what} {path} is not valid JSON: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object")
    return d


def without_retired(d: dict) -> dict:
    """A config dict without the retired options it leaves off; ConfigError if it uses one."""
    for name, value in d.items():
        if (name in RETIRED and value != RETIRED[name]) or value in RETIRED_VALUES.get(name, ()):
            raise ConfigError(
                f"{name} = {value!r} was retired in pongrl {__version__}; pongrl "
                f"{LAST_WITH_RETIRED} still has it (pip install 'pongrl=={LAST_WITH_RETIRED}')"
            )
    return {k: v for k, v in d.items() if k not in RETIRED}


def _rules(kind: str) -> dict:
    """The RANGES or CHOICES of every part of Config, together."""
    return {k: v for cls in (ReinforceConfig, PPOConfig, Config) for k, v in getattr(cls, kind).items()}


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with pongrl (pongrl/configs/NAME.json), by name."""
    folder = Path(str(files("pongrl") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


def config_file(name_or_path: str | Path) -> Path:
    """A config file's path: the path given, or, for a bare name that is not a file
    here (no folder, no suffix), the shipped config of that name."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    shipped = shipped_configs()
    if str(path) not in shipped:
        raise ConfigError(f"config file not found: {path} (pongrl ships the configs: {', '.join(shipped)})")
    return shipped[str(path)]


TYPE_WORDS = {
    "int": "an integer",
    "float": "a finite number",
    "bool": "true or false",
    "str": "a string",
    "int | None": "an integer or null",
    "str | None": "a string or null",
}


def _has_type(value, kind: str) -> bool:
    if value is None:
        return kind.endswith("| None")
    kind = kind.removesuffix(" | None")
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, str)


def _in_range(v: float, rule: str) -> bool:
    if rule.startswith(">"):
        op, bound = rule.split()
        return v >= float(bound) if op == ">=" else v > float(bound)
    lo, hi = (float(t) for t in rule[4:-1].split(","))
    return lo <= v and (v <= hi if rule.endswith("]") else v < hi)
