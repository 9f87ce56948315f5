"""pongrl: learn Atari Pong from pixels with policy gradients, in NumPy.

    import pongrl
    agent = pongrl.load_agent("pretrained")      # an agent to play with (pongrl.agent)
    pongrl.train(pongrl.Config(algo="ppo"), "runs/mine")   # train one (pongrl.train)
"""

from . import wrappers
from .agent import Agent, load_agent
from .config import Config
from .errors import UserError
from .evaluate import evaluate
from .train import train

__version__ = "0.6.0"
__all__ = ["Agent", "Config", "UserError", "evaluate", "load_agent", "train", "wrappers"]
