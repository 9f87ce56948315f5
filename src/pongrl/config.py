"""Run configuration: one dataclass, saved as JSON in every run folder."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from .errors import UserError

ALGOS = ("reinforce", "ppo")
PPO_OBS = ("diff", "frame+diff", "frame+diff+coarse", "frame+diff+pyramid", "frame+diff+pyramid3")
PPO_ACTIONS = ("updown", "noop+updown")
ADV_NORMS = ("episode", "batch")
# Fields added after runs had been saved without them, with the value those runs used.
SAVED_BEFORE = {"ppo_overlap": False, "eval_greedy": False, "ppo_obs": "diff", "ppo_anneal_entropy": False,
                "lr_anneal_steps": 0, "lr_floor": 0.0, "adv_norm": "episode"}
# Fields added after runs had been saved without them, whose value those runs kept in another field.
SAVED_AS = {"ppo_gamma": "gamma"}


class ConfigError(UserError):
    """A configuration value a user gave is not acceptable."""


@dataclass
class Config:
    # --- run ---------------------------------------------------------------
    algo: str = "reinforce"
    """Learning algorithm: 'reinforce' is the tutorial's; 'ppo' is actor-critic PPO (pongrl.ppo, pongrl.actor_critic)."""
    env_id: str = "ALE/Pong-v5"
    """Gymnasium id of the Pong env (ALE/Pong-v5, Pong-v0, PongNoFrameskip-v4, ...)."""
    seed: int = 0
    """Seeds the weights, the action sampling and every game's reset."""
    init_from: str | None = None
    """Start from the network weights of this agent or checkpoint file (.npz), to
    fine-tune a trained agent. The optimiser state, schedules, counters and games
    start fresh; its algo and network shapes must match this config's."""
    num_envs: int = 16
    """Games stepped in lockstep (16 measured fastest by bench/speed.py). 1 reproduces the tutorial's loop."""
    groups: int = 0
    """Games are stepped in this many groups, in turn: while the emulator runs one
    group, the learner works on another. 1 steps all games together; 0 picks 2
    for REINFORCE when num_envs is even, else 1 (PPO measured no gain from 2)."""
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
    `pongrl eval` does (and SB3's EvalCallback); false samples it as in training.
    The evaluation's own random stream is separate: training is the same either way."""
    # --- Ray (pongrl[ray]; see pongrl.distributed) ----------------------------
    workers: int = 0
    """Ray workers (actors) that play the games, num_envs games each, while the
    learner stays in this process; needs `pongrl train --ray ADDRESS`. 0: play
    and learn in this process."""
    worker_steps: int = 128
    """With workers, REINFORCE: steps of every worker's rollout (a PPO rollout
    is ppo_num_steps steps)."""
    # --- policy ------------------------------------------------------------
    hidden: int = 200
    """Hidden ReLU units of the 2-layer MLP."""
    # --- REINFORCE (the tutorial's hyperparameters) -------------------------
    batch_size: int = 10
    """Episodes whose gradients are summed before one RMSProp step."""
    lr: float = 1e-4
    """RMSProp learning rate (at the start, if lr_anneal_steps)."""
    lr_anneal_steps: int = 0
    """The learning rate decays linearly to 0 over this many env steps, then stays 0
    (0: constant, the tutorial's)."""
    lr_floor: float = 0.0
    """With lr_anneal_steps, the decaying rate is held here once it falls to it:
    lr * max(1 - env_steps / lr_anneal_steps, 0), never below lr_floor."""
    gamma: float = 0.99
    """REINFORCE's discount factor; the discounted sum restarts at every point (PPO's is ppo_gamma)."""
    adv_norm: str = "episode"
    """Standardise the discounted returns within each 'episode' (the tutorial's) or
    over the whole 'batch' of episodes, so that better episodes weigh more."""
    decay_rate: float = 0.99
    """RMSProp decay of the running mean of squared gradients."""
    rms_eps: float = 1e-5
    """RMSProp epsilon added to the root of that mean."""
    # --- PPO (algo="ppo"; also uses seed and num_envs above) --------------------
    ppo_obs: str = "frame+diff+pyramid"
    """Network input (pongrl.inputs): 'frame+diff+pyramid' (the current and the difference frame, each
    also at 4x4- and 8x8-block resolution: 13800 inputs; learns fastest, see bench/TIME_TO_WIN.md),
    'diff' (the tutorial's), 'frame+diff' (12800), 'frame+diff+coarse' (4x4 blocks only: 13600) or
    'frame+diff+pyramid3' (16x16 blocks too: 13850)."""
    ppo_actions: str = "updown"
    """Action set: 'updown' (UP, DOWN) or 'noop+updown' (NOOP, UP, DOWN)."""
    ppo_hidden: int = 256
    """Hidden ReLU units of the shared first layer (sparse inputs -> these units)."""
    ppo_hidden2: int = 0
    """Units of an optional second, dense hidden ReLU layer; 0: none, the heads sit on the first layer."""
    ppo_conv: int = 0
    """Filters of a convolution (8x8, stride 4, pongrl.conv) over the frame and the difference
    frame, whose 361 features per filter replace those pixels before the first layer; block
    inputs pass beside it. 0: none. Needs an input kind with the frame (not 'diff')."""
    ppo_num_steps: int = 128
    """Steps per game in one rollout; a rollout holds num_envs * ppo_num_steps transitions."""
    ppo_epochs: int = 4
    """Passes over each rollout."""
    ppo_minibatches: int = 8
    """Minibatches per pass (Adam steps per pass). 8 since 0.5.0 (4 before): twice the Adam steps
    per rollout learn more per env step for ~10% fewer steps a second (bench/TIME_TO_WIN.md)."""
    ppo_lr: float = 2.5e-4
    """Adam learning rate at the start."""
    ppo_anneal_steps: int = 10_000_000
    """The learning rate decays linearly to 0 over this many env steps, then stays 0 (0: constant)."""
    ppo_anneal_entropy: bool = True
    """Anneal the entropy coefficient on the same schedule as the learning rate
    (it lets the final policy settle on its moves; see bench/TIME_TO_WIN.md)."""
    ppo_adam_eps: float = 1e-5
    """Adam epsilon."""
    ppo_lazy_adam: bool = False
    """Update only the W1 rows (pixels) present in the minibatch, and their moments (faster; learned slower)."""
    ppo_gamma: float = 0.995
    """Discount of the returns and GAE: 0.995 since 0.6.0 (before: gamma, 0.99, the peers'). With it 3 seeds
    of 3 beat the built-in AI at 0.4M steps (2 with 0.99), level or better at 2M (bench/TIME_TO_WIN.md)."""
    ppo_gae_lambda: float = 0.95
    """GAE lambda."""
    ppo_clip: float = 0.1
    """Clip range of the probability ratio (and of the value change, if ppo_clip_vloss)."""
    ppo_clip_vloss: bool = True
    """Clip the value loss around the rollout's values, as in PPO2 / CleanRL."""
    ppo_ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    ppo_vf_coef: float = 0.5
    """Weight of the value loss."""
    ppo_max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    ppo_norm_adv: bool = True
    """Normalise the advantages within each minibatch."""
    ppo_norm_value: bool = False
    """Fit the value head to returns scaled by the running mean and std of every
    return seen so far, as MAPPO's ValueNorm; values are scaled back for GAE."""
    ppo_overlap: bool = True
    """Learn from a finished rollout in a second thread while the games (local or
    on Ray workers) play the next one, acted with the parameters from before that
    update (the policy that plays lags the learner by one update). 1.3-1.45x the
    steps/s of the serial loop on 2 cores (bench/ppo_speed.py); results stay
    exactly reproducible."""

    def validate(self) -> "Config":
        """Every field of the right type and in its range; else ConfigError naming the field and value."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _has_type(value, str(f.type)):
                raise ConfigError(f"{f.name} must be {TYPE_WORDS[str(f.type)]}, got {value!r}")
            rule = RANGES.get(f.name)
            if rule is not None and value is not None and not _in_range(value, rule):
                raise ConfigError(f"{f.name} must be {rule}, got {value!r}")
        for name, choices in (("algo", ALGOS), ("adv_norm", ADV_NORMS), ("ppo_obs", PPO_OBS),
                              ("ppo_actions", PPO_ACTIONS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.lr_floor > self.lr:
            raise ConfigError(f"lr_floor must be in [0, lr] (lr is {self.lr!r}), got {self.lr_floor!r}")
        if self.init_from == "":
            raise ConfigError("init_from must be a file path, got ''")
        if self.groups and self.num_envs % self.groups:
            raise ConfigError(f"groups must be 0 (auto) or divide num_envs ({self.num_envs}), got {self.groups!r}")
        if self.ppo_conv and self.ppo_obs == "diff":
            raise ConfigError(f"ppo_conv needs the frame in the input: ppo_obs must not be 'diff' with "
                              f"ppo_conv {self.ppo_conv!r}")
        if self.ppo_minibatches > self.num_envs * self.ppo_num_steps:
            raise ConfigError(f"ppo_minibatches must be in [1, num_envs * ppo_num_steps], got {self.ppo_minibatches!r}")
        return self

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
    def from_saved(cls, d: dict) -> "Config":
        """The config of a saved run: fields it predates take the value it ran with (SAVED_BEFORE, SAVED_AS)."""
        moved = {new: d[old] for new, old in SAVED_AS.items() if new not in d and old in d}
        return cls.from_dict({**SAVED_BEFORE, **moved, **d})

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
        """The config in a JSON file, or in a config that ships with pongrl, by name (config_file)."""
        path = config_file(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
        missing = {f.name for f in dataclasses.fields(cls)} - set(d)
        if missing and missing <= set(SAVED_BEFORE) | set(SAVED_AS):  # a run's config.json from before those fields
            return cls.from_saved(d)
        return cls.from_dict(d)  # a partial file: the fields it omits take the defaults


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


TYPE_WORDS = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
              "int | None": "an integer or null", "str | None": "a string or null"}
RANGES = {  # "lo <= v", "lo < v" or an interval; floats must also be finite (_has_type)
    "seed": "in [0, 1048576)", "num_envs": "in [1, 256]", "groups": "in [0, 256]", "episodes": ">= 0",
    "steps": ">= 0", "checkpoint_every": ">= 0", "eval_every": ">= 0", "eval_games": ">= 1",
    "workers": "in [0, 100000]", "worker_steps": ">= 1", "hidden": ">= 1", "batch_size": ">= 1", "lr": "> 0",
    "lr_anneal_steps": ">= 0", "lr_floor": ">= 0",
    "gamma": "in [0, 1]", "decay_rate": "in [0, 1)", "rms_eps": "> 0", "ppo_hidden": ">= 1", "ppo_hidden2": ">= 0",
    "ppo_conv": ">= 0",
    "ppo_num_steps": ">= 1", "ppo_epochs": ">= 1", "ppo_minibatches": ">= 1", "ppo_lr": "> 0",
    "ppo_anneal_steps": ">= 0", "ppo_adam_eps": "> 0", "ppo_gamma": "in [0, 1]", "ppo_gae_lambda": "in [0, 1]",
    "ppo_clip": "> 0", "ppo_ent_coef": ">= 0", "ppo_vf_coef": ">= 0", "ppo_max_grad_norm": "> 0",
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
