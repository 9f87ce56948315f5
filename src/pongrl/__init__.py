"""pongrl: learn Atari Pong from pixels with policy gradients, in NumPy.

    import pongrl
    agent = pongrl.load_agent("pretrained")      # an agent to play with (pongrl.agent)
    pongrl.train(pongrl.Config(algo="ppo"), "runs/mine")   # train one (pongrl.train)

The names below are imported when first used, so that `import pongrl` (and the
`pongrl` command's start) stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from . import wrappers
    from .agent import Agent, load_agent
    from .config import Config
    from .errors import UserError
    from .evaluate import evaluate
    from .train import train

WHERE = {"Agent": "agent", "load_agent": "agent", "Config": "config", "UserError": "errors",
         "evaluate": "evaluate", "train": "train", "wrappers": None}
__all__ = ["Agent", "Config", "UserError", "__version__", "evaluate", "load_agent", "train", "wrappers"]


def __getattr__(name: str) -> Any:
    if name not in WHERE:
        raise AttributeError(f"module 'pongrl' has no attribute {name!r}")
    module = WHERE[name]
    value = importlib.import_module(f".{name}" if module is None else f".{module}", __name__)
    return value if module is None else getattr(value, name)
