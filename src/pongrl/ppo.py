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
from typing import ClassVar

import numpy as np

from .actor_critic import Params, action_set, backprop, first_inputs, layers, log_softmax
from .optim import adam_step, clip_grad_norm, guard, linear_decay
from .parallel import SERIAL, Pool
from .rollouts import Batch, Rollout, RolloutBuffer
from .schema import Spec, check, require


@dataclass
class PPOConfig:
    """PPO's settings (with algo="ppo"); a run's `Config` holds them beside the shared ones."""

    ppo_obs: str = "frame+diff+pyramid"
    """Network input (pongrl.inputs): 'frame+diff+pyramid' (the current and the difference frame,
    each also at 4x4- and 8x8-block resolution: 13800 inputs; learns fastest), 'frame+diff' (12800)
    or 'diff' (the tutorial's 6400)."""
    ppo_hidden: int = 256
    """Hidden ReLU units of the first layer (sparse inputs -> these units)."""
    ppo_conv: int = 0
    """Filters of a convolution (8x8, stride 4, pongrl.conv) over the frame and the difference
    frame, whose 361 features per filter replace those pixels before the first layer; block
    inputs pass beside it. 0: none. Needs an input kind with the frame (not 'diff')."""
    ppo_num_steps: int = 128
    """Steps per game in one rollout; a rollout holds num_envs * ppo_num_steps transitions."""
    ppo_epochs: int = 4
    """Passes over each rollout."""
    ppo_minibatches: int = 8
    """Minibatches per pass (Adam steps per pass)."""
    ppo_lr: float = 2.5e-4
    """Adam learning rate at the start."""
    ppo_anneal_steps: int = 10_000_000
    """The learning rate decays linearly to 0 over this many env steps, then stays 0 (0: constant)."""
    ppo_anneal_entropy: bool = True
    """Anneal the entropy coefficient on the same schedule as the learning rate."""
    ppo_adam_eps: float = 1e-5
    """Adam epsilon."""
    ppo_gamma: float = 0.995
    """Discount of the returns and GAE."""
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
    ppo_overlap: bool = True
    """Learn from a finished rollout in a second thread while the games play the next one,
    acted with the parameters from before that update (the policy that plays lags the
    learner by one update); results stay exactly reproducible."""

    CHOICES: ClassVar[dict[str, tuple]] = {"ppo_obs": ("diff", "frame+diff", "frame+diff+pyramid")}
    RANGES: ClassVar[dict[str, str]] = {
        "ppo_hidden": "in [1, 65536]",
        "ppo_conv": "in [0, 1024]",
        "ppo_num_steps": "in [1, 1048576]",
        "ppo_epochs": ">= 1",
        "ppo_minibatches": ">= 1",
        "ppo_lr": "> 0",
        "ppo_anneal_steps": ">= 0",
        "ppo_adam_eps": "> 0",
        "ppo_gamma": "in [0, 1]",
        "ppo_gae_lambda": "in [0, 1]",
        "ppo_clip": "> 0",
        "ppo_ent_coef": ">= 0",
        "ppo_vf_coef": ">= 0",
        "ppo_max_grad_norm": "> 0",
    }

    def check_ppo(self) -> list[str]:
        """What is wrong across PPO's fields (empty: nothing)."""
        if self.ppo_conv and self.ppo_obs == "diff":
            return [
                f"ppo_conv needs the frame in the input: ppo_obs must not be 'diff' with ppo_conv {self.ppo_conv!r}"
            ]
        return []


# ---------------------------------------------------------------- loss terms and their gradients
def policy_term(
    logp: np.ndarray, actions: np.ndarray, old_logp: np.ndarray, adv: np.ndarray, clip: float
) -> tuple[float, np.ndarray, dict]:
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
    stats = {
        "losses/approx_kl": float(np.mean((ratio - 1) - logratio)),
        "losses/clipfrac": float(np.mean(np.abs(ratio - 1) > clip)),
    }
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


def loss_and_grads(params: Params, b: Batch, c: Coefs, pool: Pool = SERIAL) -> tuple[float, dict, Params, np.ndarray]:
    """Loss of a minibatch (advantages used as given), stats, grads and the rows of
    W1.T that grads["W1"] (U, H) belongs to (columns of the first layer's inputs)."""
    x, saved = first_inputs(params, b.x, pool)
    logits, v, h = layers(params, x, pool)
    logp = log_softmax(logits)
    pg, dpg, stats = policy_term(logp, b.actions, b.logp, b.advantages, c.clip)
    ent, dent = entropy_term(logp)
    vl, dv = value_term(v, b.values, b.returns, c.vclip)
    dt = logits.dtype
    dlogits = (dpg - c.ent_coef * dent).astype(dt, copy=False)
    grads = backprop(params, x, h, dlogits, (c.vf_coef * dv).astype(dt, copy=False), saved, pool)
    stats |= {"losses/policy_loss": pg, "losses/value_loss": vl, "losses/entropy": ent}
    return pg + c.vf_coef * vl - c.ent_coef * ent, stats, grads, x.cols


# ---------------------------------------------------------------- the learner
GUARDED = ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/grad_norm")  # finite, or stop


def schedule(cfg: PPOConfig, env_steps: int) -> float:
    """Fraction of the initial learning rate (and entropy coef, if annealed) after env_steps."""
    return linear_decay(env_steps, cfg.ppo_anneal_steps)


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - pred] / Var[target] (nan when the targets are constant)."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


class PPO:
    """The learner: parameters, Adam's moments and step count, and an update counter.

    Each `learn` is one update: ppo_epochs passes over the rollouts in
    ppo_minibatches minibatches, the minibatch order drawn from [seed, updates].
    The pool's threads share each minibatch's products and Adam step (pongrl.parallel)."""

    def __init__(self, cfg: PPOConfig, params: Params, seed: int, pool: Pool = SERIAL):
        self.cfg, self.params, self.seed, self.pool = cfg, params, seed, pool
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
        buffer.compute_returns(cfg.ppo_gamma, cfg.ppo_gae_lambda)
        frac = schedule(cfg, env_steps)
        coefs = Coefs(
            cfg.ppo_clip,
            cfg.ppo_vf_coef,
            cfg.ppo_ent_coef * (frac if cfg.ppo_anneal_entropy else 1.0),
            cfg.ppo_clip if cfg.ppo_clip_vloss else None,
        )
        where = f"in update {self.updates + 1}, at env step {env_steps}"
        out = self.epochs(buffer, cfg.ppo_lr * frac, coefs, where)
        guard({f"parameters {k}": v for k, v in self.params.items()}, where)
        out["losses/explained_variance"] = explained_variance(buffer.flat("values"), buffer.flat("returns"))
        self.updates += 1
        return out | {
            "charts/learning_rate": cfg.ppo_lr * frac,
            "charts/ent_coef": coefs.ent_coef,
            "charts/updates": self.updates,
        }

    def epochs(self, buffer: RolloutBuffer, lr: float, coefs: Coefs, where: str) -> dict:
        """ppo_epochs passes of Adam steps over the buffer; the mean of each stat. A loss
        term or gradient that is not finite stops training (optim.Diverged)."""
        cfg = self.cfg
        sums: dict[str, float] = {}
        rng = np.random.default_rng([self.seed, self.updates])  # minibatch order: a function of the update
        for _ in range(cfg.ppo_epochs):
            for b in buffer.get(cfg.ppo_minibatches, rng):
                if cfg.ppo_norm_adv:
                    b.advantages = (b.advantages - b.advantages.mean()) / (b.advantages.std() + 1e-8)
                _, stats, grads, rows = loss_and_grads(self.params, b, coefs, self.pool)
                stats["losses/grad_norm"] = clip_grad_norm(grads, cfg.ppo_max_grad_norm)
                guard({k.split("/")[1].replace("_", " "): v for k, v in stats.items() if k in GUARDED}, where)
                self.t += 1
                adam_step(self.params, grads, rows, self.m, self.v, self.t, lr, cfg.ppo_adam_eps, self.pool)
                for k, val in stats.items():
                    sums[k] = sums.get(k, 0.0) + val
        return {k: s / (cfg.ppo_epochs * cfg.ppo_minibatches) for k, s in sums.items()}

    # -- checkpointing
    def state(self) -> dict[str, np.ndarray]:
        out = {f"params/{k}": v for k, v in self.params.items()}
        out |= {f"adam/m/{k}": v for k, v in self.m.items()} | {f"adam/v/{k}": v for k, v in self.v.items()}
        return out | {"adam/t": np.int64(self.t), "updates": np.int64(self.updates)}

    def schema(self) -> dict[str, Spec]:
        """What the saved state must be: the network's shapes, Adam's second moments >= 0."""
        out: dict[str, Spec] = {}
        for k, v in self.params.items():
            out |= {
                f"params/{k}": Spec("float32", v.shape),
                f"adam/m/{k}": Spec("float32", v.shape),
                f"adam/v/{k}": Spec("float32", v.shape, lo=0),
            }
        return out | {"adam/t": Spec("int64", (), lo=0), "updates": Spec("int64", (), lo=0, hi=2**40)}

    def restore(self, s: dict[str, np.ndarray]) -> None:
        check(s, self.schema(), what="PPO's learner state")
        steps = int(s["updates"]) * self.cfg.ppo_epochs * self.cfg.ppo_minibatches
        require(
            int(s["adam/t"]) == steps,
            f"PPO's learner state: Adam's step count {int(s['adam/t'])} must be "
            f"updates x ppo_epochs x ppo_minibatches = {steps}",
        )
        self.params = {k: s[f"params/{k}"] for k in self.params}
        self.m = {k: s[f"adam/m/{k}"] for k in self.m}
        self.v = {k: s[f"adam/v/{k}"] for k in self.v}
        self.t, self.updates = int(s["adam/t"]), int(s["updates"])
