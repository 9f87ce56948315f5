"""Reference for the speed benchmark: the NumPy tutorial's pg-pong loop, timed.

This re-states, in our own code, the structure of Karpathy's pg-pong as the
NumPy tutorial "Deep reinforcement learning with Pong from pixels" presents it,
so that `bench/speed.py` can compare pongrl with it on the same machine:

- one gymnasium env (`ALE/Pong-v5`, RGB frames), stepped one frame at a time;
- every frame becomes a dense float64 vector of 6400 zeros and ones (red
  channel, rows 35:195, every 2nd row and column, the two background colours
  erased, everything else 1), and the input is the difference of two such
  vectors;
- a dense float64 forward pass per frame (W1 200x6400, ReLU, W2 200, sigmoid);
- per step the input, the hidden activations, the "fake label" gradient
  y - p and the reward are appended to Python lists;
- at each episode end the lists are stacked, the discounted returns (reset at
  every point) are normalised, the dense backward pass runs, its gradient is
  added to a buffer and, every `batch_size` episodes, RMSProp updates the
  weights.

Nothing here is shared with pongrl except `pongrl.env.make_env`; every function
takes what it needs as arguments (no globals).
"""

from __future__ import annotations

import time

import numpy as np

from pongrl.env import make_env

D = 80 * 80
UP, DOWN = 2, 3


def bytes_per_transition(hidden: int = 200, inputs: int = D) -> int:
    """What the tutorial keeps per agent step: x and h as float64 vectors, dlogp and reward."""
    return inputs * 8 + hidden * 8 + 8 + 8


def frame_to_vector(frame: np.ndarray) -> np.ndarray:
    """(210, 160, 3) uint8 RGB frame -> (6400,) float64 vector of 0s and 1s."""
    img = frame[35:195]  # the playing field
    img = img[::2, ::2, 0].copy()  # half resolution, red channel only
    img[img == 144] = 0  # background, first shade
    img[img == 109] = 0  # background, second shade
    img[img != 0] = 1  # paddles and ball
    return img.astype(np.float64).ravel()


def init_model(hidden: int, rng: np.random.Generator, inputs: int = D) -> dict[str, np.ndarray]:
    return {
        "W1": rng.standard_normal((hidden, inputs)) / np.sqrt(inputs),
        "W2": rng.standard_normal(hidden) / np.sqrt(hidden),
    }


def forward(model: dict[str, np.ndarray], x: np.ndarray) -> tuple[float, np.ndarray]:
    """One input (6400,) -> P(UP) and the hidden activations (H,)."""
    h = model["W1"] @ x
    h[h < 0] = 0.0
    logit = float(model["W2"] @ h)
    return 1.0 / (1.0 + np.exp(-logit)), h


def backward(
    model: dict[str, np.ndarray], epx: np.ndarray, eph: np.ndarray, epdlogp: np.ndarray
) -> dict[str, np.ndarray]:
    """Dense gradient of one episode: epx (T, 6400), eph (T, H), epdlogp (T,)."""
    dW2 = eph.T @ epdlogp
    dh = np.outer(epdlogp, model["W2"])
    dh[eph <= 0] = 0.0
    return {"W1": dh.T @ epx, "W2": dW2}


def discounted_returns(r: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted sum of future rewards; restarts at every point (nonzero reward)."""
    out = np.zeros_like(r)
    acc = 0.0
    for t in range(len(r) - 1, -1, -1):
        if r[t] != 0:
            acc = 0.0
        acc = acc * gamma + r[t]
        out[t] = acc
    return out


def rmsprop(model, grads, cache, lr: float, decay: float, eps: float) -> None:
    for k in model:
        cache[k] = decay * cache[k] + (1 - decay) * grads[k] ** 2
        model[k] += lr * grads[k] / (np.sqrt(cache[k]) + eps)


def run(
    seconds: float | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    env_id: str = "ALE/Pong-v5",
    hidden: int = 200,
    batch_size: int = 10,
    lr: float = 1e-4,
    gamma: float = 0.99,
    decay: float = 0.99,
    eps: float = 1e-5,
) -> dict:
    """Play and learn until `seconds` of wall time or `max_steps` agent steps have passed.

    The clock starts after the env is made and first reset (start-up excluded),
    and includes every backward pass and RMSProp update. Returns the counts.
    """
    if seconds is None and max_steps is None:
        raise ValueError("give seconds or max_steps")
    rng = np.random.default_rng(seed)
    model = init_model(hidden, rng)
    grad_sum = {k: np.zeros_like(v) for k, v in model.items()}
    cache = {k: np.zeros_like(v) for k, v in model.items()}
    env = make_env(env_id)
    frame, _ = env.reset(seed=seed)
    prev = None
    xs, hs, dlogps, rewards = [], [], [], []
    steps = episodes = updates = 0
    longest = 0
    returns: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")
    try:
        while time.perf_counter() < deadline and (max_steps is None or steps < max_steps):
            cur = frame_to_vector(frame)
            x = cur - prev if prev is not None else np.zeros(D)
            prev = cur
            p_up, h = forward(model, x)
            action = UP if rng.random() < p_up else DOWN
            xs.append(x)
            hs.append(h)
            dlogps.append((1.0 if action == UP else 0.0) - p_up)
            frame, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            steps += 1
            if terminated or truncated:
                episodes += 1
                longest = max(longest, len(xs))
                epx, eph = np.vstack(xs), np.vstack(hs)
                epdlogp, epr = np.array(dlogps), np.array(rewards)
                returns.append(float(epr.sum()))
                xs, hs, dlogps, rewards = [], [], [], []
                adv = discounted_returns(epr, gamma)
                adv -= adv.mean()
                adv /= adv.std() + 1e-8
                grads = backward(model, epx, eph, epdlogp * adv)
                for k in model:
                    grad_sum[k] += grads[k]
                if episodes % batch_size == 0:
                    rmsprop(model, grad_sum, cache, lr, decay, eps)
                    for v in grad_sum.values():
                        v[:] = 0.0
                    updates += 1
                frame, _ = env.reset()
                prev = None
        wall = time.perf_counter() - start
    finally:
        env.close()
    return {
        "steps": steps,
        "episodes": episodes,
        "updates": updates,
        "wall_s": wall,
        "steps_per_s": steps / wall if wall > 0 else 0.0,
        "longest_episode": max(longest, len(xs)),
        "mean_return": float(np.mean(returns)) if returns else None,
        "bytes_per_transition": bytes_per_transition(hidden),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)))
