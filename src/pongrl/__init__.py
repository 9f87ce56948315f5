"""pongrl: learn Atari Pong from pixels with policy gradients, in NumPy."""

__version__ = "0.1.0"
