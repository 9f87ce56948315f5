"""A trained agent: its config and parameters, to play with.

    agent = pongrl.load_agent("pretrained")   # or an agent file, checkpoint.npz or a run folder
    obs, info = env.reset(seed=0)
    agent.reset()                              # a new game: forget the previous frame
    action = agent.act(obs)                    # a raw RGB frame (210, 160, 3) in, an ALE action out

`act_batch` is the same for N games at once, given their preprocessed inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import algos, checkpoint
from .checkpoint import section
from .config import Config
from .errors import RunError, UserError
from .preprocess import PreviousFrame

PRETRAINED = {"ppo": "pong_ppo.npz", "reinforce": "pong_reinforce.npz"}  # the shipped agents, in pongrl/pretrained/
DEFAULT_PRETRAINED = "ppo"  # the strongest


class Agent:
    """A policy to act with: the config it was trained with and its parameters."""

    def __init__(self, cfg: Config, params: dict[str, np.ndarray], seed: int = 0):
        self.cfg, self.params = cfg, params
        self.algo = algos.get(cfg.algo)
        self.rng = np.random.default_rng(seed)  # for act()'s sampled actions
        self.observe = PreviousFrame()  # the game's previous frame

    def reset(self) -> None:
        """A new game: the next frame has no previous one (its input is all zeros)."""
        self.observe.reset()

    def act(self, obs: np.ndarray, greedy: bool = False) -> int:
        """The ALE action for one raw RGB frame (210, 160, 3) of the game being played."""
        x, cur = self.observe(obs)  # (6400,), (80, 80)
        return int(self.act_batch(x[None], cur[None], self.rng, greedy)[0])

    def act_batch(
        self, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator, greedy: bool = False
    ) -> np.ndarray:
        """ALE actions (N,) for inputs x (N, 6400) int8 and binary frames (N, 80, 80)."""
        if greedy:
            return self.algo.greedy(self.params, x, frames)
        actions, _, _ = self.algo.act(self.params, x, frames, rng)
        return actions


def load_agent(source: str | Path) -> Agent:
    """The agent in an agent file, a checkpoint or a run folder; "pretrained" is
    the strongest agent that ships with pongrl, "pretrained:NAME" names one."""
    if isinstance(source, str) and source.split(":")[0] == "pretrained":
        source = pretrained_path(source.partition(":")[2] or DEFAULT_PRETRAINED)
    arrays, meta = checkpoint.load(source)
    try:
        cfg = Config.from_saved(meta["config"])
    except (KeyError, TypeError, UserError) as e:
        raise checkpoint.CheckpointError(f"{source}: damaged config in header ({e})") from None
    return agent_from_arrays(section(arrays, "params/") or section(arrays, "learner/params/"), cfg, source)


def agent_from_arrays(params: dict[str, np.ndarray], cfg: Config, path: str | Path) -> Agent:
    """The agent of a config from its parameter arrays, checked against the config's shapes."""
    shapes = algos.get(cfg.algo).param_shapes(cfg)
    checkpoint.check_shapes(params, shapes, path)
    checkpoint.check_params({k: params[k] for k in shapes}, (np.dtype(np.float32), np.dtype(np.float16)), path)
    # agent files may store float16 (the shipped agent does, to stay small): act in float32
    params = {k: params[k].astype(np.float32) if params[k].dtype == np.float16 else params[k] for k in shapes}
    params["W1"] = np.asfortranarray(params["W1"])
    return Agent(cfg, params)


def save_agent(path: str | Path, agent: Agent, info: dict, compress: bool = False) -> None:
    """Write an agent file: parameters, config and `info` (e.g. its evaluation)."""
    arrays = {f"params/{k}": v for k, v in agent.params.items()}
    checkpoint.save(path, arrays, {"config": agent.cfg.to_dict(), "kind": "agent", **info}, compress=compress)


# ------------------------------------------------------------------ a run's starting weights
def init_weights(cfg: Config) -> dict[str, np.ndarray] | None:
    """The weights of cfg.init_from, checked against cfg's network (None: random weights)."""
    if cfg.init_from is None:
        return None
    agent = load_agent(cfg.init_from)
    if agent.cfg.algo != cfg.algo:
        raise RunError(f"init_from {cfg.init_from}: it holds a {agent.cfg.algo} agent, this run trains {cfg.algo}")
    needs = algos.get(cfg.algo).param_shapes(cfg)
    extra, missing = sorted(set(agent.params) - set(needs)), sorted(set(needs) - set(agent.params))
    if extra or missing:
        what = (
            f"has {', '.join(extra)}, which this config's network lacks"
            if extra
            else f"lacks {', '.join(missing)}, which this config's network needs"
        )
        raise RunError(f"init_from {cfg.init_from}: its network {what} (match its layers: --ppo-conv)")
    for name, shape in needs.items():
        if agent.params[name].shape != shape:
            raise RunError(
                f"init_from {cfg.init_from}: its {name} is {agent.params[name].shape}, this config's "
                f"network needs {shape} (match its hidden sizes, filters and obs)"
            )
    return agent.params


def initial_params(cfg: Config) -> dict[str, np.ndarray]:
    """The parameters a run of this Config started from: those of cfg.init_from
    (a fine-tuned run), else the random ones of its seed."""
    if cfg.init_from is not None:
        if not Path(cfg.init_from).exists():
            raise FileNotFoundError(f"this agent was fine-tuned from {cfg.init_from}, which is not here")
        return init_weights(cfg) or {}
    return algos.get(cfg.algo).init_params(cfg, np.random.default_rng(cfg.seed))


def pretrained_path(name: str = DEFAULT_PRETRAINED) -> Path:
    """The file of a shipped agent (see pongrl/pretrained/README.md)."""
    from importlib.resources import files

    if name not in PRETRAINED:
        raise checkpoint.CheckpointError(f"no pretrained agent {name!r}; pongrl ships: {', '.join(PRETRAINED)}")
    path = Path(str(files("pongrl") / "pretrained" / PRETRAINED[name]))
    if not path.exists():
        raise checkpoint.CheckpointError(f"this pongrl install has no pretrained agent ({path} is missing)")
    return path
