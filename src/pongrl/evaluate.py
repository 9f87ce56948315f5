"""Play full games with a trained agent: scores for `pongrl eval`, frames for `pongrl play`.

Evaluation games are reset with seeds from the EVAL split, which never meets
the seeds used in training (see env.episode_seed). `pongrl eval --seed S`
takes S in [0, 2**20); the evaluations made during training (Config.eval_every)
use 2**20 + the run's seed, so a user's evaluation never replays them.
"""

from __future__ import annotations

import numpy as np

from .agent import Agent
from .blas import one_thread
from .env import EVAL_SEEDS, PongVecEnv
from .errors import UserError

USER_EVAL_SEEDS = 2**20  # `pongrl eval --seed` is below this; training-time evals are at or above


def training_eval_seed(run_seed: int) -> int:
    """Evaluation seed of the evaluations made while training (disjoint from `pongrl eval`'s)."""
    return USER_EVAL_SEEDS + run_seed


def _quotas(games: int, n: int) -> np.ndarray:
    return np.array([games // n + (i < games % n) for i in range(n)])


def evaluate(
    agent: Agent, games: int, seed: int = 0, greedy: bool = True, num_envs: int = 16, env_id: str | None = None
) -> dict:
    """Play `games` full games; score = agent points minus opponent points. `greedy`
    plays the policy's most likely action (the default, as SB3's evaluate_policy);
    False samples it, as in training."""
    if games < 1:
        raise UserError(f"games must be >= 1, got {games}")
    with one_thread():
        return _evaluate(agent, games, seed, greedy, min(games, num_envs), env_id)


def _evaluate(agent: Agent, games: int, seed: int, greedy: bool, n: int, env_id: str | None) -> dict:
    quota = _quotas(games, n)  # each game slot plays a fixed number of games: no bias to short ones
    env = PongVecEnv(env_id or agent.cfg.env_id, n, seed, split=EVAL_SEEDS)
    rng = np.random.default_rng([seed, EVAL_SEEDS])
    scores: list[list[float]] = [[] for _ in range(n)]
    try:
        x = env.reset()
        while (playing := np.array([len(s) < q for s, q in zip(scores, quota)])).any():
            actions = agent.act_batch(x, env.cur, rng, greedy).astype(np.int64)
            actions[~playing] = -1  # a game slot that has played its quota stands still
            x, _, _, finished = env.step(actions)
            for f in finished:
                if len(scores[f.env]) < quota[f.env]:
                    scores[f.env].append(f.ret)
    finally:
        env.close()
    return summarize([s for per_env in scores for s in per_env])


def summarize(scores: list[float]) -> dict:
    s = np.asarray(scores, np.float64)
    return {
        "games": int(len(s)),
        "mean": float(s.mean()),
        "std": float(s.std()),
        "min": float(s.min()),
        "max": float(s.max()),
        "win_rate": float((s > 0).mean()),
        "scores": [float(v) for v in s],
    }


def play_game(
    agent: Agent, on_frame, seed: int = 0, greedy: bool = True, max_steps: int | None = None, env_id: str | None = None
) -> dict:
    """Play one whole game, calling on_frame(rgb (210, 160, 3)) for every frame but
    the last (the emulator starts the next game on it). Returns the score. It is
    the game that `evaluate(agent, 1, seed)` plays: the same emulator, seed and
    sticky actions, and with greedy actions the same moves."""
    env = PongVecEnv(env_id or agent.cfg.env_id, 1, seed, split=EVAL_SEEDS, processes=0)
    rng = np.random.default_rng([seed, EVAL_SEEDS])
    try:
        x = env.reset()
        on_frame(env.rgb())
        score, steps, done = 0.0, 0, False
        while not done and (max_steps is None or steps < max_steps):
            x, rewards, dones, _ = env.step(agent.act_batch(x, env.cur, rng, greedy).astype(np.int64))
            score, steps, done = score + float(rewards[0]), steps + 1, bool(dones[0])
            if not done:
                on_frame(env.rgb())
    finally:
        env.close()
    return {"score": score, "steps": steps, "finished": done}
