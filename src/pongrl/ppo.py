"""PPO with a clipped surrogate objective (Schulman et al. 2017), in NumPy: the
loss terms and their gradients, and the learner. The network it trains, and
acting with it, are pongrl.actor_critic's.

Loss of a minibatch of B samples (minimised):

    L = pg_loss + vf_coef * value_loss - ent_coef * entropy
    pg_loss    = mean(max(-A r, -A clip(r, 1-c, 1+c))),  r = pi(a|x) / pi_old(a|x)
    value_loss = 0.5 mean(max((v - R)^2, (v_old + clip(v - v_old, -c, c) - R)^2))
    entropy    = mean(-sum_a pi log pi)

Its gradient is written by hand (`loss_and_grads`, through
actor_critic.backprop) and checked in float64 against finite differences by
the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .actor_critic import Params, action_set, backprop, first_inputs, layers, log_softmax
from .config import Config
from .optim import adam_step, clip_grad_norm, linear_decay
from .rollouts import Batch, Rollout, RolloutBuffer


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


# ---------------------------------------------------------------- value normalisation
def merge_moments(moments: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(count, mean, sum of squared deviations) of the data behind `moments` and x
    together (Chan et al.'s parallel update)."""
    n, mean, m2 = moments
    k, xmean = x.size, float(np.mean(x, dtype=np.float64))
    xm2 = float(np.sum((x.astype(np.float64) - xmean) ** 2))
    total, delta = n + k, xmean - mean
    return np.array([total, mean + delta * k / total, m2 + xm2 + delta ** 2 * n * k / total])


def value_scale(moments: np.ndarray) -> tuple[float, float]:
    """(mean, std) of the returns seen, the units of a normalised value head ((0, 1) before any)."""
    n, mean, m2 = moments
    return (0.0, 1.0) if n == 0 else (float(mean), float(np.sqrt(m2 / n + 1e-8)))


# ---------------------------------------------------------------- the learner
def schedule(cfg: Config, env_steps: int) -> float:
    """Fraction of the initial learning rate (and entropy coef, if annealed) after env_steps."""
    return linear_decay(env_steps, cfg.ppo_anneal_steps)


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - pred] / Var[target] (nan when the targets are constant)."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


class PPO:
    """The learner: parameters, Adam's moments and step count, an update counter and,
    with ppo_norm_value, the moments of the returns seen.

    Each `learn` is one update: ppo_epochs passes over the rollouts in
    ppo_minibatches minibatches, the minibatch order drawn from [seed, updates]."""

    def __init__(self, cfg: Config, params: Params):
        self.cfg, self.params = cfg, params
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0  # Adam steps taken
        self.updates = 0
        self.returns_seen = np.zeros(3)  # (count, mean, sum of squared deviations), if ppo_norm_value

    def rollout_size(self) -> tuple[int | None, int | None]:
        """(steps per game, episodes) that complete a rollout: ppo_num_steps steps."""
        return self.cfg.ppo_num_steps, None

    def learn(self, rollouts: list[Rollout], env_steps: int) -> dict:
        """One update from whole rollouts; env_steps (taken before them) sets the schedules."""
        cfg = self.cfg
        buffer = RolloutBuffer(action_set(self.params))
        for r in rollouts:
            buffer.add(r)
        buffer.compute_returns(cfg.ppo_gamma, cfg.ppo_gae_lambda, value_scale(self.returns_seen))
        if cfg.ppo_norm_value:
            self.returns_seen = merge_moments(self.returns_seen, buffer.flat("returns"))
        frac = schedule(cfg, env_steps)
        coefs = Coefs(cfg.ppo_clip, cfg.ppo_vf_coef, cfg.ppo_ent_coef * (frac if cfg.ppo_anneal_entropy else 1.0),
                      cfg.ppo_clip if cfg.ppo_clip_vloss else None)
        out = self.epochs(buffer, cfg.ppo_lr * frac, coefs, value_scale(self.returns_seen))
        out["losses/explained_variance"] = explained_variance(buffer.flat("values"), buffer.flat("returns"))
        self.updates += 1
        return out | {"charts/learning_rate": cfg.ppo_lr * frac, "charts/ent_coef": coefs.ent_coef,
                      "charts/updates": self.updates}

    def epochs(self, buffer: RolloutBuffer, lr: float, coefs: Coefs, scale: tuple[float, float]) -> dict:
        """ppo_epochs passes of Adam steps over the buffer, value targets in units of
        scale = (mean, std); the mean of each stat."""
        cfg, sums = self.cfg, {}
        rng = np.random.default_rng([cfg.seed, self.updates])  # minibatch order: a function of the update
        for _ in range(cfg.ppo_epochs):
            for b in buffer.get(cfg.ppo_minibatches, rng, scale):
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
        out |= {"adam/t": np.int64(self.t), "updates": np.int64(self.updates)}
        return out | ({"returns_seen": self.returns_seen.copy()} if self.cfg.ppo_norm_value else {})

    def restore(self, s: dict[str, np.ndarray]) -> None:
        self.params = {k: s[f"params/{k}"] for k in self.params}
        self.m = {k: s[f"adam/m/{k}"] for k in self.m}
        self.v = {k: s[f"adam/v/{k}"] for k in self.v}
        self.t, self.updates = int(s["adam/t"]), int(s["updates"])
        if self.cfg.ppo_norm_value:
            seen = np.asarray(s["returns_seen"], np.float64)
            if seen.shape != (3,) or not np.isfinite(seen).all() or seen[0] < 0 or seen[2] < 0:
                raise ValueError(f"returns_seen must be 3 finite numbers (count, mean, squares) >= 0, got {seen}")
            self.returns_seen = seen
