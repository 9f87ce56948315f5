"""PPO with a clipped surrogate objective (Schulman et al. 2017), actor-critic,
in NumPy, with a sparse first layer: the network, its losses, acting, and the learner.

Network: sparse inputs (D,) [-> F convolution filters] -> H ReLU units (shared)
[-> H2 ReLU units] -> a softmax policy head over the action set and a scalar
value head. Parameters live in a plain dict:

    W1 (H, D') Fortran order, so that W1.T (D', H) is C-contiguous
    b1 (H,)   Wpi (A, T)   bpi (A,)   Wv (T,)   bv (1,)
    W2 (H2, H)   b2 (H2,)   only with a second layer (`ppo_hidden2`)
    Wc (128, F)             only with a convolution (`ppo_conv`, pongrl.conv)

where T is H2 with a second layer, else H, and D' is D, or with a convolution
D with its 12800 frame and difference pixels replaced by the 361 F features.
The input kind (pongrl.inputs) and the action set are read off the shapes: a
params dict is all acting needs.

Loss of a minibatch of B samples (minimised):

    L = pg_loss + vf_coef * value_loss - ent_coef * entropy
    pg_loss    = mean(max(-A r, -A clip(r, 1-c, 1+c))),  r = pi(a|x) / pi_old(a|x)
    value_loss = 0.5 mean(max((v - R)^2, (v_old + clip(v - v_old, -c, c) - R)^2))
    entropy    = mean(-sum_a pi log pi)

Its gradient is written by hand (`loss_and_grads`) and checked in float64
against finite differences by the tests. The W1 gradient is row-sparse: (U, H)
for the rows `Inputs.cols` of W1.T (the pixels present in the minibatch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import conv
from .config import Config
from .env import DOWN, UP
from .inputs import WIDTHS, Inputs, compact, encode, kind_of_width
from .optim import adam_step, clip_grad_norm, linear_decay
from .rollouts import Batch, Rollout, RolloutBuffer
from .sparse import SparseRows

NOOP = 0
ACTION_SETS = {"updown": (UP, DOWN), "noop+updown": (NOOP, UP, DOWN)}

Params = dict[str, np.ndarray]


# ---------------------------------------------------------------- the network
def param_shapes(cfg: Config) -> dict[str, tuple]:
    """Shapes of the network's parameters for a config."""
    h, h2, f, a = cfg.ppo_hidden, cfg.ppo_hidden2, cfg.ppo_conv, len(ACTION_SETS[cfg.ppo_actions])
    top, width = h2 or h, WIDTHS[cfg.ppo_obs] + (conv.P * f - conv.PIXELS if f else 0)
    shapes = {"W1": (h, width), "b1": (h,), "Wpi": (a, top), "bpi": (a,), "Wv": (top,), "bv": (1,)}
    return shapes | ({"W2": (h2, h), "b2": (h2,)} if h2 else {}) | ({"Wc": (conv.TAPS, f)} if f else {})


def init_for(cfg: Config, rng: np.random.Generator) -> Params:
    """A config's initial parameters, drawn from rng."""
    return init_params(param_shapes(cfg)["W1"][1], cfg.ppo_hidden, len(ACTION_SETS[cfg.ppo_actions]), rng,
                       hidden2=cfg.ppo_hidden2, filters=cfg.ppo_conv)


def action_set(params: Params) -> np.ndarray:
    """ALE action ids of the policy head's outputs, in order (from the height of Wpi)."""
    return np.array({len(v): v for v in ACTION_SETS.values()}[params["Wpi"].shape[0]])

def init_params(inputs: int, hidden: int, n_actions: int, rng: np.random.Generator, dtype=np.float32,
                hidden2: int = 0, filters: int = 0) -> Params:
    """W1 ~ N(0, 1/inputs) as the tutorial; a near-zero policy head (uniform
    initial policy, like CleanRL's 0.01 gain); value head ~ N(0, 1/T); zero biases.
    hidden2 > 0 adds a second layer W2 ~ N(0, 2/H) (He's scale for ReLU inputs);
    filters > 0 convolution filters Wc ~ N(0, 2/128), drawn last."""
    top = hidden2 or hidden  # T
    W1 = rng.standard_normal((hidden, inputs)) / np.sqrt(inputs)
    Wpi = 0.01 * rng.standard_normal((n_actions, top)) / np.sqrt(top)
    Wv = rng.standard_normal(top) / np.sqrt(top)
    p = {"W1": np.asfortranarray(W1), "b1": np.zeros(hidden), "Wpi": Wpi, "bpi": np.zeros(n_actions),
         "Wv": Wv, "bv": np.zeros(1)}
    if hidden2:
        p |= {"W2": rng.standard_normal((hidden2, hidden)) * np.sqrt(2 / hidden), "b2": np.zeros(hidden2)}
    if filters:
        p["Wc"] = rng.standard_normal((conv.TAPS, filters)) * np.sqrt(2 / conv.TAPS)
    return {k: (np.asfortranarray(v, dtype) if k == "W1" else v.astype(dtype)) for k, v in p.items()}


def forward(params: Params, x: Inputs) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Inputs (B, D) -> logits (B, A), values (B,) and the hidden layers'
    activations: [(B, H)], or [(B, H), (B, H2)] with a second layer."""
    return layers(params, first_inputs(params, x)[0])


def first_inputs(params: Params, x: Inputs) -> tuple[Inputs, conv.Saved | None]:
    """What the first layer reads (B, D'): x itself; or, with filters Wc, their
    features of x's frame and difference pixels, then x's block columns."""
    if "Wc" not in params:
        return x, None
    split = int(np.searchsorted(x.cols, conv.PIXELS))  # x's columns before it are pixels
    feats, saved = conv.forward(params["Wc"], Inputs(x.cols[:split], x.X[:, :split]))
    shift = conv.P * params["Wc"].shape[1] - conv.PIXELS  # block columns move past the features
    return Inputs(np.concatenate([feats.cols, x.cols[split:] + shift]), np.hstack([feats.X, x.X[:, split:]])), saved


def layers(params: Params, x: Inputs) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The first layer's inputs (B, D') -> forward's logits, values and activations."""
    hs = [np.maximum(x.X @ params["W1"].T[x.cols] + params["b1"], 0)]  # (B, H)
    if "W2" in params:
        hs.append(np.maximum(hs[0] @ params["W2"].T + params["b2"], 0))  # (B, H2)
    logits = hs[-1] @ params["Wpi"].T + params["bpi"]  # (B, A)
    values = hs[-1] @ params["Wv"] + params["bv"][0]  # (B,)
    return logits, values, hs


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(B, A) -> (B, A) log probabilities."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

def unit_weights(params: Params) -> np.ndarray:
    """(H,) the norm of each first-layer unit's column of the policy head Wpi (with a
    second layer, of Wpi @ W2, which ignores that layer's ReLU): its sway on the policy."""
    head = params["Wpi"].astype(np.float64)  # (A, T)
    if "W2" in params:
        head = head @ params["W2"].astype(np.float64)  # (A, H)
    return np.linalg.norm(head, axis=0)


# ---------------------------------------------------------------- acting
def input_kind(params: Params) -> str:
    """The input kind (pongrl.inputs) the network reads, from the width of W1."""
    width = params["W1"].shape[1]
    if "Wc" in params:
        width += conv.PIXELS - conv.P * params["Wc"].shape[1]
    return kind_of_width(width)


def encode_for(params: Params, x: np.ndarray, frames: np.ndarray) -> SparseRows:
    """The inputs (N, D) of the kind the network was trained on."""
    return encode(x, frames, input_kind(params))


def probabilities(params: Params, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Action probabilities (N, A) for difference frames x (N, 6400) and frames
    (N, 80, 80); column j is the ALE action `action_set(params)[j]`."""
    logits, _, _ = forward(params, compact(encode_for(params, x, frames), params["W1"].dtype))
    return np.exp(log_softmax(logits))


def greedy_actions(params: Params, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """ALE action ids (N,) of the most probable action in every game."""
    return action_set(params)[np.argmax(probabilities(params, x, frames), axis=1)]


def act(params: Params, x: np.ndarray, frames: np.ndarray,
        rng: np.random.Generator) -> tuple[np.ndarray, SparseRows, dict]:
    """Sample an action in every game: ALE ids (N,), the encoded inputs (N, D) and
    {"logp": log pi(a|x) (N,), "values": V(x) (N,)}, which the learner stores."""
    xs = encode_for(params, x, frames)
    logits, values, _ = forward(params, compact(xs))
    logp = log_softmax(logits)
    a = sample(logp, rng.random(len(logp)))
    return action_set(params)[a], xs, {"logp": logp[np.arange(len(a)), a], "values": values}


def bootstrap(params: Params, x: np.ndarray, frames: np.ndarray) -> dict:
    """{"values": V(x) (N,)} of the inputs that follow a rollout (GAE's bootstrap)."""
    _, values, _ = forward(params, compact(encode_for(params, x, frames)))
    return {"values": values}


def sample(logp: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices (B,) drawn from log probabilities (B, A) by inverting the CDF at u (B,) in [0, 1)."""
    cdf = np.cumsum(np.exp(logp), axis=1)  # (B, A)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), logp.shape[1] - 1)


# ---------------------------------------------------------------- loss terms and their gradients
def policy_term(logp: np.ndarray, actions: np.ndarray, old_logp: np.ndarray, adv: np.ndarray,
                clip: float) -> tuple[float, np.ndarray, dict]:
    """Clipped surrogate loss, its gradient w.r.t. the logits (B, A) and diagnostics.
    logp (B, A) log probabilities, actions (B,) indices, old_logp (B,), adv (B,)."""
    B = len(actions)
    rows = np.arange(B)
    logratio = logp[rows, actions] - old_logp  # (B,)
    ratio = np.exp(logratio)
    pg1, pg2 = -adv * ratio, -adv * np.clip(ratio, 1 - clip, 1 + clip)
    # the clipped term has zero gradient; where it is the max, so is the loss's
    dlogpa = np.where(pg1 >= pg2, -adv * ratio, 0.0) / B  # (B,) dL / d log pi(a|x)
    dlogits = -np.exp(logp) * dlogpa[:, None]  # d log pi(a) / d z_j = [j = a] - pi_j
    dlogits[rows, actions] += dlogpa
    stats = {"losses/approx_kl": float(np.mean((ratio - 1) - logratio)),
             "losses/clipfrac": float(np.mean(np.abs(ratio - 1) > clip))}
    return float(np.maximum(pg1, pg2).mean()), dlogits, stats


def entropy_term(logp: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean entropy of the policies (B, A) and its gradient w.r.t. the logits:
    dH/dz_j = -pi_j (log pi_j + H)."""
    p = np.exp(logp)
    ent = -(p * logp).sum(axis=1)  # (B,)
    return float(ent.mean()), -p * (logp + ent[:, None]) / len(logp)


def value_term(v: np.ndarray, old_v: np.ndarray, returns: np.ndarray, clip: float | None) -> tuple[float, np.ndarray]:
    """0.5 * mean squared error (clipped around old_v unless clip is None) and its gradient (B,)."""
    B = len(v)
    if clip is None:
        return float(0.5 * np.mean((v - returns) ** 2)), (v - returns) / B
    vc = old_v + np.clip(v - old_v, -clip, clip)
    l1, l2 = (v - returns) ** 2, (vc - returns) ** 2
    dv = np.where(l1 >= l2, v - returns, np.where(np.abs(v - old_v) < clip, vc - returns, 0.0))
    return float(0.5 * np.mean(np.maximum(l1, l2))), dv / B


def backprop(params: Params, x: Inputs, hs: list[np.ndarray], dlogits: np.ndarray, dv: np.ndarray,
             saved: conv.Saved | None = None) -> Params:
    """Gradients of the loss from its gradients w.r.t. logits (B, A) and values (B,);
    x and hs are the first layer's inputs and the activations (first_inputs,
    layers), saved the convolution's (if any). grads["W1"] is (U, H): the
    gradient of the rows x.cols of W1.T (all others are 0)."""
    h = hs[-1]  # (B, T)
    grads = {"Wpi": dlogits.T @ h, "bpi": dlogits.sum(axis=0), "Wv": h.T @ dv, "bv": np.array([dv.sum()], h.dtype)}
    dh = dlogits @ params["Wpi"] + dv[:, None] * params["Wv"]  # (B, T)
    dh[h <= 0] = 0  # ReLU
    if "W2" in params:
        grads["W2"], grads["b2"] = dh.T @ hs[0], dh.sum(axis=0)  # (H2, H), (H2,)
        dh = dh @ params["W2"]  # (B, H)
        dh[hs[0] <= 0] = 0
    grads["b1"] = dh.sum(axis=0)
    grads["W1"] = x.X.T @ dh  # (U, H)
    if saved is not None:
        grads["Wc"] = conv.backward(dh @ params["W1"].T[saved.cols].T, saved)  # through the features (B, W F)
    return grads


@dataclass
class Coefs:
    """Coefficients of one update's loss."""

    clip: float = 0.1
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    vclip: float | None = 0.1  # None: unclipped value loss


def loss_and_grads(params: Params, b: Batch, c: Coefs) -> tuple[float, dict, Params, np.ndarray]:
    """Loss of a minibatch (advantages used as given), stats, grads and the rows of
    W1.T that grads["W1"] (U, H) belongs to (columns of the first layer's inputs)."""
    x, saved = first_inputs(params, b.x)
    logits, v, hs = layers(params, x)
    logp = log_softmax(logits)
    pg, dpg, stats = policy_term(logp, b.actions, b.logp, b.advantages, c.clip)
    ent, dent = entropy_term(logp)
    vl, dv = value_term(v, b.values, b.returns, c.vclip)
    dt = logits.dtype
    dlogits = (dpg - c.ent_coef * dent).astype(dt, copy=False)
    grads = backprop(params, x, hs, dlogits, (c.vf_coef * dv).astype(dt, copy=False), saved)
    stats |= {"losses/policy_loss": pg, "losses/value_loss": vl, "losses/entropy": ent}
    return pg + c.vf_coef * vl - c.ent_coef * ent, stats, grads, x.cols


# ---------------------------------------------------------------- the learner
def schedule(cfg: Config, env_steps: int) -> float:
    """Fraction of the initial learning rate (and entropy coef, if annealed) after env_steps."""
    return linear_decay(env_steps, cfg.ppo_anneal_steps)


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - pred] / Var[target] (nan when the targets are constant)."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


class PPO:
    """The learner: parameters, Adam's moments and step count, and an update counter.

    Each `learn` is one update: ppo_epochs passes over the rollouts in
    ppo_minibatches minibatches, the minibatch order drawn from [seed, updates]."""

    def __init__(self, cfg: Config, params: Params):
        self.cfg, self.params = cfg, params
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0  # Adam steps taken
        self.updates = 0

    def rollout_size(self) -> tuple[int | None, int | None]:
        """(steps per game, episodes) that complete a rollout: ppo_num_steps steps."""
        return self.cfg.ppo_num_steps, None

    def learn(self, rollouts: list[Rollout], env_steps: int) -> dict:
        """One update from whole rollouts; env_steps (taken before them) sets the schedules."""
        cfg = self.cfg
        buffer = RolloutBuffer(action_set(self.params))
        for r in rollouts:
            buffer.add(r)
        buffer.compute_returns(cfg.gamma, cfg.ppo_gae_lambda)
        frac = schedule(cfg, env_steps)
        coefs = Coefs(cfg.ppo_clip, cfg.ppo_vf_coef, cfg.ppo_ent_coef * (frac if cfg.ppo_anneal_entropy else 1.0),
                      cfg.ppo_clip if cfg.ppo_clip_vloss else None)
        out = self.epochs(buffer, cfg.ppo_lr * frac, coefs)
        out["losses/explained_variance"] = explained_variance(buffer.flat("values"), buffer.flat("returns"))
        self.updates += 1
        return out | {"charts/learning_rate": cfg.ppo_lr * frac, "charts/ent_coef": coefs.ent_coef,
                      "charts/updates": self.updates}

    def epochs(self, buffer: RolloutBuffer, lr: float, coefs: Coefs) -> dict:
        """ppo_epochs passes of Adam steps over the buffer; the mean of each stat."""
        cfg, sums = self.cfg, {}
        rng = np.random.default_rng([cfg.seed, self.updates])  # minibatch order: a function of the update
        for _ in range(cfg.ppo_epochs):
            for b in buffer.get(cfg.ppo_minibatches, rng):
                if cfg.ppo_norm_adv:
                    b.advantages = (b.advantages - b.advantages.mean()) / (b.advantages.std() + 1e-8)
                _, stats, grads, rows = loss_and_grads(self.params, b, coefs)
                stats["losses/grad_norm"] = clip_grad_norm(grads, cfg.ppo_max_grad_norm)
                self.t += 1
                adam_step(self.params, grads, rows, self.m, self.v, self.t, lr, cfg.ppo_adam_eps, cfg.ppo_lazy_adam)
                for k, val in stats.items():
                    sums[k] = sums.get(k, 0.0) + val
        return {k: s / (cfg.ppo_epochs * cfg.ppo_minibatches) for k, s in sums.items()}

    # -- checkpointing
    def state(self) -> dict[str, np.ndarray]:
        out = {f"params/{k}": v for k, v in self.params.items()}
        out |= {f"adam/m/{k}": v for k, v in self.m.items()} | {f"adam/v/{k}": v for k, v in self.v.items()}
        return out | {"adam/t": np.int64(self.t), "updates": np.int64(self.updates)}

    def restore(self, s: dict[str, np.ndarray]) -> None:
        self.params = {k: s[f"params/{k}"] for k in self.params}
        self.m = {k: s[f"adam/m/{k}"] for k in self.m}
        self.v = {k: s[f"adam/v/{k}"] for k in self.v}
        self.t, self.updates = int(s["adam/t"]), int(s["updates"])
