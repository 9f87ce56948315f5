"""The training loop, top to bottom: play a rollout, learn from it, log, checkpoint.

    run = open_run(...)                                  # new, or resumed from checkpoint.npz
    while the run's targets are not reached:
        rollouts = run.collector.collect(run.acting, ...)   # play: local games or Ray workers
        count and log the episodes that ended
        stats = learn(run, rollouts)                      # PPO may learn in a thread meanwhile
        checkpoint and evaluate when due

Everything an algorithm does differently comes from the registry (pongrl.algos);
everything about where the games run, from the collector (pongrl.runs).
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .agent import Agent, save_agent
from .blas import one_thread
from .collector import finished_in_order
from .config import Config
from .evaluate import evaluate, training_eval_seed
from .logger import Logs
from .runs import Counters, Run, open_run, save_run

REPORT_EVERY = 2048  # env steps: the longest a rollout of a batch of episodes goes on without reporting


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; and what timeout, Docker, Kubernetes, SLURM send


@dataclass
class Stop:
    """The loop's handler of SIGINT and SIGTERM: either asks the loop to checkpoint and stop.

    An evaluation of full games can take a minute or more, so a signal during one
    also abandons it (EvalInterrupted): nothing of it has been written, and the
    resumed run plays it first, at the same env step."""

    signum: int = 0  # the signal that asked to stop (0: none)
    evaluating: bool = False

    @property
    def requested(self) -> bool:
        return self.signum != 0

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = self.signum or signum
        if self.evaluating:
            self.evaluating = False  # raise at most once per evaluation
            raise EvalInterrupted


class EvalInterrupted(Exception):
    """Ctrl-C arrived while the loop was playing its evaluation games."""


def train(
    cfg: Config | None,
    run_dir: str | Path,
    resume: bool = False,
    targets: dict | None = None,
    progress: bool = True,
    tensorboard: bool = False,
) -> dict:
    """Train a new run of `cfg` in `run_dir`, or (resume=True, cfg None) continue the
    one saved there with new `targets`, until its episode/step totals or Ctrl-C.

    On Ctrl-C or SIGTERM the run is checkpointed and the summary says
    interrupted (and by which signal). With
    `tensorboard`, scalars go to TensorBoard event files in run_dir too. BLAS
    runs on one thread per caller (pongrl.blas); the learner's own threads
    (cfg.learner_threads, pongrl.parallel) split its products, and the
    placement of threads and emulator processes is printed when `progress`."""
    with one_thread():
        run = open_run(Path(run_dir), cfg, resume, targets or {}, tensorboard)
        if progress and run.placement is not None:
            print(run.placement.line(), file=sys.stderr)
        try:
            return loop(run, Path(run_dir), Logs(Path(run_dir), run.cfg, run.counters, resume, progress, tensorboard))
        finally:
            run.close()


def loop(run: Run, run_dir: Path, logs: Logs) -> dict:
    cfg, c = run.cfg, run.counters
    stop = Stop()
    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    clock = Clock(c.wall_s)
    try:
        evaluate_if_due(run, run_dir, logs, stop, clock)  # one abandoned by Ctrl-C before a resume
        while not finished_training(cfg, c) and not stop.requested:
            rollouts = run.collector.collect(run.acting, *rollout_limits(run))
            before, steps_before = c.episodes, c.env_steps
            for _, f in finished_in_order(rollouts):
                c.env_steps = steps_before + f.taken
                count_episode(c, f.ret, clock.now())
                logs.episode(c, f.length)
            c.env_steps = steps_before + sum(r.rewards.size for r in rollouts)
            logs.turn(c, c.episodes - before, run.learn(rollouts, steps_before))
            if cfg.checkpoint_every and c.episodes // cfg.checkpoint_every > before // cfg.checkpoint_every:
                checkpoint(run, run_dir, logs, clock)
            evaluate_if_due(run, run_dir, logs, stop, clock)
        checkpoint(run, run_dir, logs, clock)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        logs.close()
    return {
        "run_dir": str(run_dir),
        "episodes": c.episodes,
        "env_steps": c.env_steps,
        "wall_s": c.wall_s,
        "updates": run.learner.updates,
        "running_reward": c.running_reward,
        "interrupted": stop.requested,
        "signal": signal.Signals(stop.signum).name if stop.signum else None,
        "placement": run.placement.summary() if run.placement else None,
    }


def finished_training(cfg: Config, c: Counters) -> bool:
    return (cfg.episodes is not None and c.episodes >= cfg.episodes) or (
        cfg.steps is not None and c.env_steps >= cfg.steps
    )


def count_episode(c: Counters, ret: float, wall_s: float) -> None:
    c.episodes += 1
    c.last_return = ret
    c.running_reward = ret if c.running_reward is None else 0.99 * c.running_reward + 0.01 * ret
    c.wall_s = wall_s


def rollout_limits(run: Run) -> tuple[int | None, int | None, int | None]:
    """(steps per game, episodes, env steps) that end the next rollout. A rollout
    that ends with a batch of episodes (local REINFORCE) may stop earlier: after
    REPORT_EVERY env steps (to log, and to hear Ctrl-C), at the run's targets and
    at the next evaluation. One of fixed length (PPO, Ray workers) is played whole."""
    cfg, c = run.cfg, run.counters
    steps, episodes = run.learner.rollout_size()
    if episodes is None:
        return steps, None, None
    budget = cap(REPORT_EVERY, cfg.steps, c.env_steps)
    if cfg.eval_every:
        budget = cap(budget, (c.evals + 1) * cfg.eval_every, c.env_steps)
    return steps, cap(episodes, cfg.episodes, c.episodes), budget


def cap(wanted: int | None, target: int | None, done: int) -> int | None:
    """What a rollout may take: `wanted`, and no more than the run's target leaves (at least 1)."""
    if target is None:
        return wanted
    left = max(target - done, 1)
    return left if wanted is None else min(wanted, left)


class Clock:
    """Training time: resumed time included, evaluation time left out."""

    def __init__(self, elapsed: float):
        self.t0 = time.perf_counter() - elapsed

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def pause(self, seconds: float) -> None:
        self.t0 += seconds


def checkpoint(run: Run, run_dir: Path, logs: Logs, clock: Clock) -> None:
    logs.turn(run.counters, 0, run.settle())  # the update in flight, if any, is part of the checkpoint
    run.counters.wall_s = clock.now()
    save_run(run, run_dir / "checkpoint.npz")


def evaluate_if_due(run: Run, run_dir: Path, logs: Logs, stop: Stop, clock: Clock) -> None:
    cfg, c = run.cfg, run.counters
    if not (cfg.eval_every and c.env_steps >= (c.evals + 1) * cfg.eval_every):
        return
    logs.turn(c, 0, run.settle())
    c.wall_s = clock.now()
    t = time.perf_counter()
    try:  # the flag is cleared inside the try: a Ctrl-C just after the games still lands in it
        stop.evaluating = True
        res = evaluate_policy(run)
        stop.evaluating = False
    except EvalInterrupted:
        return
    finally:
        clock.pause(time.perf_counter() - t)  # evaluation time is not training time
    c.evals = c.env_steps // cfg.eval_every
    keep_best(run, run_dir, res)
    logs.evaluation(c, res)
    save_run(run, run_dir / "checkpoint.npz")  # eval.csv and best.npz never run ahead of the checkpoint


def evaluate_policy(run: Run) -> dict:
    """Score the learner's policy over cfg.eval_games full games on the run's evaluation seed."""
    cfg = run.cfg
    return evaluate(
        Agent(cfg, run.learner.params), cfg.eval_games, seed=training_eval_seed(cfg.seed), greedy=cfg.eval_greedy
    )


def keep_best(run: Run, run_dir: Path, res: dict) -> None:
    """If `res` is the best evaluation so far, keep the policy in best.npz and its mean in the counters."""
    cfg, c = run.cfg, run.counters
    if c.best_eval is not None and res["mean"] <= c.best_eval:
        return
    c.best_eval = res["mean"]
    info = {
        "eval": {
            "env_steps": c.env_steps,
            "wall_s": c.wall_s,
            "seed": training_eval_seed(cfg.seed),
            "greedy": cfg.eval_greedy,
            **{k: res[k] for k in ("games", "mean", "std", "win_rate", "scores")},
        }
    }
    save_agent(run_dir / "best.npz", Agent(cfg, run.learner.params), info)
