"""mazeagent: a JAX experiment suite for interpretability research on procgen maze agents."""
__version__ = "0.1.0"
