"""What a convolution over the 80x80 frames costs PPO's learner, per env step.

    python bench/conv_cost.py [--rounds 5] [--filters 16] > conv_cost.json

One of issue 25's candidates: a shared convolution over the frames, "written in
NumPy on the sparse inputs, if it pays for itself in wall time". This measures
the CPU time of one PPO Adam step on a minibatch of real Pong inputs (encode,
forward, backward, gradient clipping, Adam), and of acting for 16 games, for

    mlp           PPO's default network: frame+diff+pyramid (13,800 sparse
                  inputs) -> 256 ReLU -> policy and value heads;
    conv          `--ppo-obs frame+diff --ppo-conv F` (pongrl.conv): F filters
                  of 8x8 over the frame and the difference frame at stride 4,
                  on the nonzero pixels only -> 361 F sparse features -> the
                  same first layer and heads;
    conv+pyramid  `--ppo-conv F` with the default input: the blocks pass
                  beside the features;
    conv_dense    `conv` computed as peers compute it: every window of every
                  frame (im2col) and a dense first layer. It is also the
                  reference that `conv`'s outputs are checked against here.

The variants run interleaved, round by round; the output gives the median
seconds, the CPU-seconds per env step at pongrl's defaults (16 games x 128
steps per rollout, 4 epochs x 8 minibatches of 256: 32 Adam steps per 2,048
env steps, and one 16-game forward pass per 16 env steps), their ratios to
mlp, and the steps per second the learner alone could keep up with on one
core (BLAS on one thread, as in training, where the games take the other).

Frames come from ALE/Pong-v5 played with random UP/DOWN. Nothing here
trains: it says whether a convolution could keep up, not whether it learns
more per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from pongrl import actor_critic, conv, ppo
from pongrl.config import Config
from pongrl.env import DOWN, UP, make_env
from pongrl.inputs import Inputs, compact, encode
from pongrl.optim import adam_step, clip_grad_norm
from pongrl.preprocess import frame_diff, preprocess
from pongrl.rollouts import Batch


def pong_frames(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n difference frames (n, 6400) int8 and binary frames (n, 80, 80) from random play."""
    env, rng = make_env("ALE/Pong-v5"), np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    prev, xs, fs = preprocess(obs), [], []
    while len(fs) < n:
        obs, _, term, trunc, _ = env.step(int(rng.choice([UP, DOWN])))
        cur = preprocess(obs)
        xs.append(frame_diff(cur, prev))
        fs.append(cur)
        prev = cur
        if term or trunc:
            obs, _ = env.reset()
            prev = preprocess(obs)
    env.close()
    return np.array(xs), np.array(fs)


# ---------------------------------------------------------------- the dense way (im2col)
def im2col(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(n, P, TAPS): every 8x8 window (stride 4) of the frame and the difference frame."""
    img = np.stack([frames.astype(np.float32), x.reshape(-1, 80, 80).astype(np.float32)], 1)  # (n, 2, 80, 80)
    w = np.lib.stride_tricks.sliding_window_view(img, (conv.K, conv.K), axis=(2, 3))[:, :, ::conv.S, ::conv.S]
    return w.transpose(0, 2, 3, 1, 4, 5).reshape(len(x), conv.P, conv.TAPS)  # (n, 19, 19, 2, 8, 8) -> (n, P, TAPS)


def dense_step(params: dict, x: np.ndarray, frames: np.ndarray, fake: dict, coefs: ppo.Coefs) -> dict:
    """conv's loss gradients, through every window and a dense first layer."""
    cols = im2col(x, frames)  # (n, P, TAPS)
    z = cols @ params["Wc"]  # (n, P, F)
    feats = Inputs(np.arange(z.shape[1] * z.shape[2]), np.maximum(z, 0).reshape(len(x), -1))
    logits, v, hs = actor_critic.layers(params, feats)
    logp = actor_critic.log_softmax(logits)
    _, dpg, _ = ppo.policy_term(logp, fake["actions"], fake["logp"], fake["advantages"], coefs.clip)
    _, dent = ppo.entropy_term(logp)
    _, dv = ppo.value_term(v, fake["values"], fake["returns"], coefs.vclip)
    dlogits, dv = (dpg - coefs.ent_coef * dent).astype(np.float32), (coefs.vf_coef * dv).astype(np.float32)
    grads = actor_critic.backprop(params, feats, hs, dlogits, dv)
    dh = dlogits @ params["Wpi"] + dv[:, None] * params["Wv"]  # (n, H)
    dh[hs[0] <= 0] = 0
    dz = (dh @ params["W1"]).reshape(z.shape) * (z > 0)  # (n, P, F)
    grads["Wc"] = cols.reshape(-1, conv.TAPS).T @ dz.reshape(-1, z.shape[2])
    return grads


# ---------------------------------------------------------------- the variants
VARIANTS = {"mlp": ("frame+diff+pyramid", False), "conv": ("frame+diff", True),
            "conv+pyramid": ("frame+diff+pyramid", True), "conv_dense": ("frame+diff", True)}


class Net:
    """A variant's parameters, Adam moments and one PPO Adam step."""

    def __init__(self, name: str, filters: int):
        obs, has_conv = VARIANTS[name]
        self.name, self.obs = name, obs
        self.cfg = Config(algo="ppo", ppo_obs=obs, ppo_conv=filters if has_conv else 0)
        self.params = actor_critic.init_for(self.cfg, np.random.default_rng(0))
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.t, self.coefs = 0, ppo.Coefs()

    def act(self, x: np.ndarray, frames: np.ndarray) -> None:
        if self.name == "conv_dense":
            actor_critic.layers(self.params, Inputs(np.arange(self.params["W1"].shape[1]), np.maximum(
                im2col(x, frames) @ self.params["Wc"], 0).reshape(len(x), -1)))
        else:
            actor_critic.forward(self.params, compact(encode(x, frames, self.obs)))

    def step(self, x: np.ndarray, frames: np.ndarray, fake: dict) -> None:
        if self.name == "conv_dense":
            grads = dense_step(self.params, x, frames, fake, self.coefs)
            rows = np.arange(self.params["W1"].shape[1])  # every feature column
        else:
            b = Batch(compact(encode(x, frames, self.obs)), **fake)
            _, _, grads, rows = ppo.loss_and_grads(self.params, b, self.coefs)
        clip_grad_norm(grads, self.cfg.ppo_max_grad_norm)
        self.t += 1
        adam_step(self.params, grads, rows, self.m, self.v, self.t, self.cfg.ppo_lr, self.cfg.ppo_adam_eps, False)


def check(filters: int, x: np.ndarray, frames: np.ndarray, fake: dict) -> dict:
    """conv's gradients against conv_dense's, on the same weights and minibatch."""
    net = Net("conv", filters)
    _, _, grads, rows = ppo.loss_and_grads(net.params, Batch(compact(encode(x, frames, "frame+diff")), **fake),
                                           net.coefs)
    ref = dense_step(net.params, x, frames, fake, net.coefs)
    W1 = np.zeros_like(ref["W1"])
    W1[rows] = grads["W1"]
    rel = {k: float(np.abs((W1 if k == "W1" else grads[k]) - r).max() / np.abs(r).max()) for k, r in ref.items()}
    assert max(rel.values()) < 1e-3, rel  # float32 sums in another order
    return {"max_rel_diff_to_dense": max(rel.values()), "feature_columns": int(len(rows))}


def timed(fn, reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--minibatch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=20, help="Adam steps timed per variant and round")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as the train loop: BLAS on one thread, the other core plays the games
    n = args.minibatch
    x, frames = pong_frames(4 * n)
    rng = np.random.default_rng(0)
    fake = {"actions": rng.integers(0, 2, n), "logp": np.full(n, np.log(0.5), np.float32),
            "values": rng.standard_normal(n).astype(np.float32), "returns": rng.standard_normal(n).astype(np.float32),
            "advantages": rng.standard_normal(n).astype(np.float32)}
    checked = check(args.filters, x[:n], frames[:n], fake)
    nets = [Net(name, args.filters) for name in VARIANTS]
    times = {net.name: {"learn": [], "act": []} for net in nets}
    for r in range(args.rounds):
        i = (r % 4) * n
        for net in nets:
            times[net.name]["learn"].append(timed(lambda: net.step(x[i:i + n], frames[i:i + n], fake), args.reps))
            times[net.name]["act"].append(timed(lambda: net.act(x[i:i + 16], frames[i:i + 16]), 5 * args.reps))
    cfg = Config(algo="ppo")
    adam_steps_per_env_step = cfg.ppo_epochs * cfg.ppo_minibatches / (cfg.num_envs * cfg.ppo_num_steps)
    med = {k: {part: statistics.median(v) for part, v in t.items()} for k, t in times.items()}
    per_step = {k: m["learn"] * adam_steps_per_env_step + m["act"] / cfg.num_envs for k, m in med.items()}
    print(json.dumps({
        "benchmark": "conv_cost", "minibatch": n, "filters": args.filters, "rounds": args.rounds, "check": checked,
        "seconds_per_adam_step": {k: m["learn"] for k, m in med.items()},
        "seconds_per_act_16_games": {k: m["act"] for k, m in med.items()},
        "cpu_seconds_per_env_step": per_step,
        "ratio_to_mlp": {k: s / per_step["mlp"] for k, s in per_step.items()},
        "learner_alone_steps_per_s": {k: 1 / s for k, s in per_step.items()}}, indent=2))


if __name__ == "__main__":
    main()
