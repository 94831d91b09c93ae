"""procgen's 15 discrete actions grouped into the 5 moves the maze analysis uses (research-notes §4.2).

In maze, ``move = action % 9`` with ``vx = move // 3 - 1``, ``vy = move % 3 - 1``, and ``vy`` is dropped whenever
``vx != 0``; actions 9..14 stand still. So the diagonals act as pure left/right moves, and groups are exhaustive.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

GROUP_NAMES: tuple[str, ...] = ("left", "down", "up", "right", "noop")
ACTION_GROUPS: dict[str, tuple[int, ...]] = {
    "left": (0, 1, 2),
    "down": (3,),
    "up": (5,),
    "right": (6, 7, 8),
    "noop": (4, 9, 10, 11, 12, 13, 14),
}
# (d_row, d_col) of each group in the suite's square convention (row = y pointing up).
GROUP_DELTAS: dict[str, tuple[int, int]] = {"left": (0, -1), "down": (-1, 0), "up": (1, 0), "right": (0, 1),
                                            "noop": (0, 0)}


def _group_matrix() -> np.ndarray:
    m = np.zeros((15, len(GROUP_NAMES)), np.float32)
    for g, name in enumerate(GROUP_NAMES):
        m[list(ACTION_GROUPS[name]), g] = 1.0
    return m


GROUP_MATRIX = _group_matrix()  # (15, 5) one-hot: action -> group
ACTION_TO_GROUP = GROUP_MATRIX.argmax(axis=1).astype(np.int32)  # (15,) group index of each action


def group_probs(logits: jax.Array) -> jax.Array:
    """Probability of each of the 5 groups (left, down, up, right, noop): softmax over 15, summed per group.

    Works on any leading shape ``(..., 15) -> (..., 5)``; the full 15-way distribution is what rollouts sample."""
    logits = jnp.asarray(logits)
    if logits.shape[-1:] != (15,):
        raise ValueError(f"logits must have a last axis of 15 procgen actions, got shape {logits.shape}")
    return jax.nn.softmax(logits, axis=-1) @ GROUP_MATRIX
