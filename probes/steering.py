"""Steering vectors (research-notes §1.5, §3.2): activation differences between paired observations, added back
with a coefficient.

* **cheese vector** of a maze: activations with the cheese minus without it, mouse at the start; the published
  patch *subtracts* it (coefficient -1) at ``embedder.block2.res1.resadd_out``, at every square of the maze.
* **top-right vector**: activations of the maze with an L-shaped corridor carved from the inner top-right square to
  the world's absolute top-right corner (24, 24), minus the original (zero for 25x25 mazes, which have no padding);
  added with coefficient +1.

Effects are read at the decision square (:func:`decision_probs`, over
:func:`mazeagent.experiments.decision.probs_at_decision`), for one patch for all mazes or each maze its own vector (a
``per_maze`` :class:`mazeagent.probes.interventions.HookedPolicy`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mazeagent.experiments.policies import Policy
from mazeagent.env.mazes import observations
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import SPACE, WORLD
from mazeagent.probes.dataset import capture
from mazeagent.probes.interventions import AddVector, HookedPolicy


def corridor_to_corner(mazes: Mazes) -> Mazes:
    """The mazes with an L-shaped corridor from the inner top-right square up to the world's top row, then right
    to the absolute corner (24, 24); mazes of size 25 are unchanged."""
    grid = mazes.grid.copy()
    for i, n in enumerate(mazes.size):
        tr = (WORLD - int(n)) // 2 + int(n) - 1
        grid[i, tr:, tr] = SPACE
        grid[i, WORLD - 1, tr:] = SPACE
    return replace(mazes, grid=grid)


def pair_vectors(net: Any, params: Any, a: Mazes, b: Mazes, layer: str, idx: np.ndarray | None = None) -> np.ndarray:
    """(B, H, W, C) activations of ``a`` minus ``b`` at ``layer``, mouse at each maze's start."""
    idx = np.arange(len(a)) if idx is None else np.asarray(idx)
    acts_a = capture(net, params, observations(a, idx), [layer])[layer]
    acts_b = capture(net, params, observations(b, idx), [layer])[layer]
    return acts_a - acts_b


def cheese_vectors(net: Any, params: Any, mazes: Mazes, layer: str, idx: np.ndarray | None = None) -> np.ndarray:
    """Per-maze cheese vectors (with cheese − without), mouse at the start."""
    return pair_vectors(net, params, mazes, mazes.without_cheese(), layer, idx)


def top_right_vectors(net: Any, params: Any, mazes: Mazes, layer: str, idx: np.ndarray | None = None) -> np.ndarray:
    """Per-maze top-right vectors (corridor to the corner − original), mouse at the start."""
    return pair_vectors(net, params, corridor_to_corner(mazes), mazes, layer, idx)


def steer(layer: str, vector: np.ndarray, coeff: float) -> dict[str, AddVector]:
    """Hooks adding ``coeff * vector`` at ``layer``; a (B, H, W, C) vector gives one patch per evaluated row."""
    v = np.asarray(vector, np.float32)
    c = np.float32(coeff) if v.ndim < 4 else np.full((len(v), 1, 1, 1), coeff, np.float32)
    return {layer: AddVector(v, c)}


def decision_square_mazes(mazes: Mazes) -> np.ndarray:
    """Indices of mazes with a decision square and the cheese outside the top-right 5x5 region (the statistics
    filter of predictions.md, as ``mazeagent.experiments.behaviour.factor_subset`` applies it to rollout tables)."""
    f = mazes.geometry.factors()
    return np.nonzero((f["has_decision_square"] == 1) & (f["cheese_in_top_right_region"] == 0))[0]


def decision_probs(policy: Policy, mazes: Mazes, key: Any = None) -> dict[str, np.ndarray]:
    """:func:`mazeagent.experiments.decision.probs_at_decision` of ``policy`` for every maze (each needs a decision square),
    e.g. a :class:`mazeagent.probes.interventions.HookedPolicy` with one patch for all mazes or ``per_maze`` patches."""
    import jax

    from mazeagent.experiments.decision import probs_at_decision

    key = jax.random.PRNGKey(0) if key is None else key
    return probs_at_decision(policy, mazes, np.arange(len(mazes)), key)


def coefficient_sweep(net: Any, params: Any, mazes: Mazes, vectors: np.ndarray, layer: str,
                      coeffs: tuple[float, ...], key: Any = None) -> dict[float, dict[str, float]]:
    """Mean P(cheese) / P(top-right) / P(other) at the decision squares of ``mazes`` (all must have one) with each
    maze's own ``vectors[i]`` added ``× coeff``, for every coefficient."""
    out = {}
    for c in coeffs:
        d = decision_probs(HookedPolicy(net, params, steer(layer, vectors, c), per_maze=True), mazes, key)
        out[float(c)] = {k: float(np.mean(d[f"p_{k}"])) for k in ("cheese", "top_right", "other")}
    return out
