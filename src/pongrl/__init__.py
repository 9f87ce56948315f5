"""pongrl: learn Atari Pong from pixels with policy gradients, in NumPy.

    import pongrl
    agent = pongrl.load_agent("pretrained")      # an agent to play with (pongrl.agent)
    pongrl.train(pongrl.Config(algo="ppo"), "runs/mine")   # train one (pongrl.train)

The names below are imported when first used, so that `import pongrl` (and the
`pongrl` command's start, where Ctrl-C must already be handled) stays quick.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from . import wrappers
    from .agent import Agent, load_agent
    from .config import Config
    from .errors import UserError
    from .evaluate import evaluate
    from .train import train

WHERE = {
    "Agent": "agent",
    "load_agent": "agent",
    "Config": "config",
    "UserError": "errors",
    "evaluate": "evaluate",
    "train": "train",
    "wrappers": None,
}  # name -> its module (None: a module)
__all__ = ["Agent", "Config", "UserError", "__version__", "evaluate", "load_agent", "train", "wrappers"]


def __getattr__(name: str) -> Any:
    if name not in WHERE:
        raise AttributeError(f"module 'pongrl' has no attribute {name!r}")
    module = importlib.import_module(f".{WHERE[name] or name}", __name__)
    value = module if WHERE[name] is None else getattr(module, name)
    globals()[name] = value
    return value


class Package(types.ModuleType):
    """pongrl's module type: `pongrl.train` and `pongrl.evaluate` stay the functions of
    those names when Python binds their modules (pongrl.train, pongrl.evaluate) here."""

    def __setattr__(self, name: str, value: Any) -> None:
        if WHERE.get(name) == name and isinstance(value, types.ModuleType):
            return  # the module is in sys.modules; the package's name is the function's
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = Package
