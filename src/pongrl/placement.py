"""Where a machine's cores go: emulator processes and learner threads, placed by measured cost.

A training step costs CPU in three places, in µs per agent step (COSTS, from
bench/learner_capacity.py and bench/scaling.py on a 2-core AMD EPYC):

    e  the emulator processes: ALE's emulation, the screens and their pipes;
    a  the training thread: acting, encoding, the collector's bookkeeping;
    l  the learner's update on one thread; on T threads it takes l / s(T),
       s(T) = 1 / (f + (1 - f) / T), f the part that stays on one thread.

The emulators and the training thread take turns (the games wait for their
actions), and with PPO's overlap the learner runs beside both. So on N cores,
with E emulator processes and T learner threads, a step takes

    max(a + e' / E,  l / s(T),  (e' + a + l) / N)

(collecting, learning, or the CPU itself as the bound), and `predict` gives
steps/s as 1e6 over that. e' = e on one core and e / ε on more: ε is the
share of each core that N emulator processes get on N cores, measured with
the training thread feeding them (pipes, wake-ups and the scheduler take the
rest). REINFORCE learns between rollouts, not beside them: its step takes
a + e' / E + l / s(T), or the CPU bound.

`place` picks E and T for N cores: on 1 or 2 cores one learner thread and a
process per core (measured best there); above, the split of N into E + T = N
that the model predicts fastest, the fewest threads among near-equal ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

NEAR = 0.03  # placements predicted within 3% of the best count as equal: the fewest threads wins


@dataclass(frozen=True)
class Costs:
    """CPU µs per agent step of one config (module docstring)."""

    emulator: float  # e
    acting: float  # a
    learner: float  # l, on one thread
    serial: float  # f, the learner's part that T threads do not share
    overlap: bool  # whether the learner runs beside the games (PPO) or between rollouts
    shared: float = 1.0  # on 2+ cores, the emulator processes' efficiency, ε (module docstring)


# Measured on a 2-core AMD EPYC from late states (0.5M steps): e and a by `python bench/scaling.py`,
# l and f (from T = 2's speed-up s, f = 2 / s - 1) by `python bench/learner_capacity.py` (docs/scaling.md).
EMULATOR_US = 490.0
ACTING_US = {"reinforce": 41.0, "ppo": 133.0, "ppo_conv": 104.0}
LEARNER_US = {"reinforce": 17.0, "ppo": 310.0, "ppo_conv": 628.0}
SERIAL = {"reinforce": 0.31, "ppo": 0.41, "ppo_conv": 0.56}
EMULATOR_SHARED = 0.78
REFERENCE_HIDDEN = {"reinforce": 200, "ppo": 256, "ppo_conv": 256}  # the widths they were measured at


def kind(cfg) -> str:
    """The row of the cost tables a config falls in: 'reinforce', 'ppo' or 'ppo_conv'."""
    if cfg.algo == "reinforce":
        return "reinforce"
    return "ppo_conv" if cfg.ppo_conv else "ppo"


def costs(cfg) -> Costs:
    """A config's costs per step: the measured ones, the learner's scaled by the hidden width."""
    k = kind(cfg)
    hidden = cfg.hidden if k == "reinforce" else cfg.ppo_hidden
    return Costs(EMULATOR_US, ACTING_US[k], LEARNER_US[k] * hidden / REFERENCE_HIDDEN[k], SERIAL[k], k != "reinforce")


def speedup(c: Costs, threads: int) -> float:
    """s(T): how many times faster the learner is on T threads (Amdahl's law with its serial part f)."""
    return 1.0 / (c.serial + (1.0 - c.serial) / threads)


def predict(c: Costs, cores: int, emulators: int, threads: int) -> float:
    """Predicted steps per second on `cores` cores with E emulator processes and T learner threads."""
    e = c.emulator / (c.shared if cores > 1 else 1.0)
    collect = c.acting + e / max(1, min(emulators, cores))
    learn = c.learner / speedup(c, threads)
    cpu = (e + c.acting + c.learner) / cores
    return 1e6 / (max(collect, learn, cpu) if c.overlap else max(collect + learn, cpu))


@dataclass(frozen=True)
class Placement:
    cores: int
    emulators: int
    threads: int
    costs: Costs
    chosen: tuple[bool, bool]  # (emulators, threads) placed here rather than given

    @property
    def steps_per_s(self) -> float:
        return predict(self.costs, self.cores, self.emulators, self.threads)

    def summary(self) -> dict:
        return {
            "cores": self.cores,
            "emulators": self.emulators,
            "learner_threads": self.threads,
            "predicted_steps_per_s": round(self.steps_per_s),
        }

    def line(self) -> str:
        """One line for the user: the split, the costs it came from, and how to override it."""
        c = self.costs
        how = ["placed" if chosen else "given" for chosen in self.chosen]
        return (
            f"placement: {self.cores} cores -> emulator processes {self.emulators} ({how[0]}), "
            f"learner threads {self.threads} ({how[1]}); per step e {c.emulator:.0f} µs, "
            f"a {c.acting:.0f} µs, l {c.learner:.0f} µs; predicted {self.steps_per_s:,.0f} steps/s "
            "(--emulators, --learner-threads override)"
        )


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def place(cfg, cores: int | None = None, games: int | None = None) -> Placement:
    """E emulator processes and T learner threads for a config on `cores` cores; a nonzero
    cfg.emulators or cfg.learner_threads is kept as given. `games`: the most processes
    that have games to step (num_envs)."""
    n, c = cores or available_cores(), costs(cfg)
    games = games or cfg.num_envs
    if cfg.workers:  # the games are on the workers (one process each): the head's cores learn
        options = [(1, max(1, n - 1))]
    elif n <= 2:
        options = [(min(n, games), 1)]
    else:
        options = [(min(n - t, games), t) for t in range(1, n)]
    options = [(cfg.emulators or e, cfg.learner_threads or t) for e, t in options]
    best = max(predict(c, n, e, t) for e, t in options)
    e, t = min((t, e) for e, t in options if predict(c, n, e, t) >= (1 - NEAR) * best)[::-1]
    return Placement(n, e, t, c, (not cfg.emulators, not cfg.learner_threads))
