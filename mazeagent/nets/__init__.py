"""The IMPALA-CNN policy, its named activations (capture/replace), action grouping and torch checkpoint I/O."""
from mazeagent.nets.actions import ACTION_GROUPS, ACTION_TO_GROUP, GROUP_DELTAS, GROUP_NAMES, group_probs
from mazeagent.nets.hooks import (DEFAULT_LAYER, HOOK_NAMES, check_names, from_nchw, hook_shapes, nchw_hook,
                                  run_with_cache, run_with_hooks, to_nchw)
from mazeagent.nets.impala import ImpalaCNN, num_params

__all__ = [
    "ACTION_GROUPS", "ACTION_TO_GROUP", "DEFAULT_LAYER", "GROUP_DELTAS", "GROUP_NAMES", "HOOK_NAMES", "ImpalaCNN",
    "check_names", "from_nchw", "group_probs", "hook_shapes", "nchw_hook", "num_params", "run_with_cache",
    "run_with_hooks", "to_nchw",
]
