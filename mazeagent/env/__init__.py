"""The pure-JAX procgen maze env: level generation, dynamics and the reset/step API (bit-exact with procgen 0.10.7).

Heavy pieces are imported lazily so ``import mazeagent.env`` stays cheap for the CLI.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "EnvParams": "core", "EnvState": "core", "reset": "core", "step": "core", "observe": "core",
    "state_from_level": "core", "level_from_state": "core", "NUM_ACTIONS": "core",
    "make_vec_env": "vec", "VecEnv": "vec", "VecState": "vec",
    "generate_batch": "levelgen", "procgen_level_seeds": "levelgen", "GeneratedLevels": "levelgen",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mazeagent.env.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mazeagent.env' has no attribute {name!r}")
