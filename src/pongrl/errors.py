"""How a command ends other than by finishing: a user error, Ctrl-C or SIGTERM.

The command line prints a `UserError` as one line and exits with code 2, and
Ctrl-C and SIGTERM as one line with 130 and 143. Any other exception is a bug,
and shows its traceback.
"""

import signal


class UserError(Exception):
    """Something a user asked for or gave cannot be done; the message says what, in one line."""


class RunError(UserError):
    """A run (its folder, its Ray cluster) cannot be used as asked."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (sent by `timeout`, Docker, Kubernetes, SLURM) arrived: handled as Ctrl-C."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) arrived. Not a bare KeyboardInterrupt: under `python -m pongrl`, CPython
    marks one that leaves an exec of generated source (a dataclass made during an import) as
    unhandled even once main has caught it, and then ends by SIGINT instead of main's 130."""


def terminate(signum: int, frame: object) -> None:
    raise Terminated


def interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def own_stop_signals() -> dict:
    """Install terminate and interrupt; return the handlers they replace. An ignored Ctrl-C
    (a background job's) stays ignored."""
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, terminate)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    return previous
