"""mazeagent: a JAX experiment suite for interpretability research on procgen maze agents.

``import mazeagent as ma`` gives the notebook API (:mod:`mazeagent.api`): ``ma.load_agent``, ``ma.Maze``,
``ma.Agent``, ``ma.cheese_vector``, ``ma.clamp_channel``, ``ma.plot_channel``, ``ma.video``. They load on first
use, so importing the package stays cheap and imports no JAX.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
_API = ("Agent", "Maze", "Rollout", "cheese_vector", "clamp_channel", "load_agent", "load_saved_states",
        "plot_channel", "video")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from mazeagent import api

        return getattr(api, name)
    raise AttributeError(f"module 'mazeagent' has no attribute {name!r}")
