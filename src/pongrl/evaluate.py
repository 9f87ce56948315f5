"""Play full games with a trained agent: scores for `pongrl eval`, frames for `pongrl play`.

Evaluation games are reset with seeds from the EVAL split, which never meets
the seeds used in training (see env.episode_seed). `pongrl eval --seed S`
takes S in [0, 2**20); the evaluations made during training (Config.eval_every)
use 2**20 + the run's seed, so a user's evaluation never replays them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, policy
from .config import Config
from .env import EVAL_SEEDS, PongVecEnv, episode_seed, make_env
from .preprocess import frame_diff, preprocess

USER_EVAL_SEEDS = 2**20  # `pongrl eval --seed` is below this; training-time evals are at or above
PRETRAINED = "pong_ppo.npz"  # the shipped agent, in pongrl/pretrained/


@dataclass
class Agent:
    """A policy to act with: the config it was trained with and its parameters."""

    cfg: Config
    params: dict[str, np.ndarray]

    def act(self, x: np.ndarray, frames: np.ndarray, rng: np.random.Generator, greedy: bool = False) -> np.ndarray:
        """Actions (N,) for inputs x (N, 6400) int8 and frames (N, 80, 80)."""
        if self.cfg.algo == "ppo":
            from . import ppo

            if greedy:
                return ppo.greedy_actions(self.params, x, frames)
            return ppo.sample_actions(self.params, x, frames, rng)
        p, _ = policy.p_up(self.params, x)
        u = np.full(len(p), 0.5, p.dtype) if greedy else rng.random(len(p), dtype=p.dtype)
        return policy.actions_from_probs(p, u)


def agent_from_arrays(arrays: dict[str, np.ndarray], cfg: Config, path: str | Path) -> Agent:
    from .train import expected_shapes

    shapes = {k: v for k, v in expected_shapes(cfg).items() if k.startswith("params/")}
    checkpoint.check_shapes(arrays, shapes, path)
    params = {k.removeprefix("params/"): arrays[k] for k in shapes}  # the config's arrays, no stray others
    # agent files may store float16 (the shipped agent does, to stay small): act in float32
    params = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in params.items()}
    params["W1"] = np.asfortranarray(params["W1"])
    return Agent(cfg, params)


def load_agent(path: str | Path) -> Agent:
    """The agent in a checkpoint file (or a run folder's checkpoint.npz)."""
    arrays, meta = checkpoint.load(path)
    try:
        cfg = Config.from_saved(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{path}: damaged config in header ({e})") from None
    return agent_from_arrays(arrays, cfg, path)


def save_agent(path: str | Path, agent: Agent, info: dict, compress: bool = False) -> None:
    """Write an agent-only checkpoint (parameters, config and `info`, e.g. its eval score)."""
    arrays = {f"params/{k}": v for k, v in agent.params.items()}
    checkpoint.save(path, arrays, {"config": agent.cfg.to_dict(), "kind": "agent", **info}, compress=compress)


def pretrained_path() -> Path:
    """The agent that ships with pongrl (trained with PPO; see pongrl/pretrained/README.md)."""
    from importlib.resources import files

    path = Path(str(files("pongrl") / "pretrained" / PRETRAINED))
    if not path.exists():
        raise checkpoint.CheckpointError(f"this pongrl install has no pretrained agent ({path} is missing)")
    return path


def training_eval_seed(run_seed: int) -> int:
    """Evaluation seed of the evaluations made while training (disjoint from `pongrl eval`'s)."""
    return USER_EVAL_SEEDS + run_seed


def _quotas(games: int, n: int) -> np.ndarray:
    return np.array([games // n + (i < games % n) for i in range(n)])


def evaluate(agent: Agent, games: int, seed: int = 0, greedy: bool = False, num_envs: int = 16,
             env_id: str | None = None) -> dict:
    """Play `games` full games; score = agent points minus opponent points."""
    if games < 1:
        raise ValueError(f"games must be >= 1, got {games}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _evaluate(agent, games, seed, greedy, min(games, num_envs), env_id)


def _evaluate(agent: Agent, games: int, seed: int, greedy: bool, n: int, env_id: str | None) -> dict:
    quota = _quotas(games, n)  # each game slot plays a fixed number of games: no bias to short ones
    env = PongVecEnv(env_id or agent.cfg.env_id, n, seed, split=EVAL_SEEDS)
    rng = np.random.default_rng([seed, EVAL_SEEDS])
    scores: list[list[float]] = [[] for _ in range(n)]
    try:
        x = env.reset()
        while any(len(s) < q for s, q in zip(scores, quota)):
            x, _, _, finished = env.step(agent.act(x, env.cur, rng, greedy))
            for f in finished:
                if len(scores[f.env]) < quota[f.env]:
                    scores[f.env].append(f.ret)
    finally:
        env.close()
    return summarize([s for per_env in scores for s in per_env])


def summarize(scores: list[float]) -> dict:
    s = np.asarray(scores, np.float64)
    return {"games": int(len(s)), "mean": float(s.mean()), "std": float(s.std()), "min": float(s.min()),
            "max": float(s.max()), "win_rate": float((s > 0).mean()), "scores": [float(v) for v in s]}


def play_game(agent: Agent, on_frame, seed: int = 0, greedy: bool = False, max_steps: int | None = None,
              env_id: str | None = None) -> dict:
    """Play one whole game, calling on_frame(rgb (210, 160, 3)) for every frame. Returns the score."""
    env = make_env(env_id or agent.cfg.env_id)
    rng = np.random.default_rng([seed, EVAL_SEEDS])
    try:
        obs, _ = env.reset(seed=episode_seed(seed, 0, EVAL_SEEDS))
        on_frame(obs)
        prev = cur = preprocess(obs)
        score, steps, done = 0.0, 0, False
        while not done and (max_steps is None or steps < max_steps):
            a = agent.act(frame_diff(cur, prev)[None], cur[None], rng, greedy)
            obs, r, term, trunc, _ = env.step(int(a[0]))
            on_frame(obs)
            prev, cur = cur, preprocess(obs)
            score, steps, done = score + float(r), steps + 1, term or trunc
    finally:
        env.close()
    return {"score": score, "steps": steps, "finished": bool(done)}
