"""The IMPALA-CNN policy, its named activations (capture/replace, the hooked model ``HookedImpala``), action
grouping and torch checkpoint I/O.

Names load on first use (jax/flax are heavy), so ``mazeagent --help`` and ``mazeagent.nets.cli`` stay fast.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "mazeagent.nets.actions": ("ACTION_GROUPS", "ACTION_TO_GROUP", "GROUP_DELTAS", "GROUP_NAMES", "group_probs"),
    "mazeagent.nets.hooked": ("HookedImpala",),
    "mazeagent.nets.hooks": ("DEFAULT_LAYER", "HOOK_NAMES", "check_names", "from_nchw", "hook_shapes", "nchw_hook",
                             "run_with_cache", "run_with_hooks", "select_names", "to_nchw"),
    "mazeagent.nets.impala": ("HookPoint", "ImpalaCNN", "num_params"),
    "mazeagent.nets.torch_io": ("CheckpointError", "load_torch_checkpoint", "save_torch_checkpoint"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mazeagent.nets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
