"""Maze geometry of a batch, computed once (:class:`MazeGeometry`, :func:`analyse`): the decision square
(canonical + procgen-tools variants) and every level factor the preregistered predictions name (predictions.md
F1-F10 and B2).

It builds on :mod:`mazeagent.maze.paths` (BFS distances, shortest paths, tie-breaking) and
:mod:`mazeagent.maze.landmarks` (the top-right square, region and quadrant). Squares are world ``(row, col)``;
``(-1, -1)`` means "none" (no cheese, no decision square, unreachable).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mazeagent.maze.landmarks import (margins, quadrant, top_right_quadrant, top_right_region, top_right_square,
                                      up_right_reachable)
from mazeagent.maze.level import LevelBatch
from mazeagent.maze.paths import (DELTAS, NONE, euclidean, gather, min_distance_to_mask, next_moves,
                                  next_step_towards, path_mask, step_distances, taxicab, valid_squares)

DECISION_VARIANTS = ("canonical", "graph", "at_mouse")

# The preregistered factors (predictions.md), each "the closer/shorter ..., the more cheese".
PREDICTION_FACTORS = {
    "F1": "euclid_cheese_decision_square",
    "F2": "steps_cheese_decision_square",
    "F3": "euclid_cheese_top_right",
    "F4": "steps_cheese_top_right",
    "F5": "euclid_decision_square_top_right",
    "F6": "steps_decision_square_top_right",
    "F7": "steps_cheese_top_right_region",
    "F8": "euclid_cheese_top_right_region",
    "F9": "steps_decision_square_top_right_region",
    "F10": "euclid_decision_square_top_right_region",
}
# B2's level attributes (predictions.md): smaller maze, mouse nearer the left wall, cheese nearer (L2) the top-right
# quadrant, cheese reachable by only up/right moves.
B2_FACTORS = ("maze_size", "mouse_dist_left_wall", "euclid_cheese_top_right_quadrant", "cheese_up_right_reachable")


# ------------------------------------------------------------------------------------------------ analysis

@dataclass(frozen=True)
class MazeGeometry:
    """Everything the factors need, computed once per batch (world coordinates; see the module doc)."""

    batch: LevelBatch
    region_size: int
    top_right: np.ndarray         # (B, 2), (-1, -1) if closed
    region: np.ndarray            # (B, W, W) bool, open squares of the top-right region
    dist_mouse: np.ndarray        # (B, W, W) step distance from the mouse
    to_mouse: np.ndarray          # next_moves(dist_mouse): predecessor moves of the mouse's BFS tree
    dist_top_right: np.ndarray
    dist_region: np.ndarray       # steps to the nearest open region square
    cheese_path: np.ndarray       # (B, W, W) bool, path mouse -> cheese
    top_right_path: np.ndarray    # (B, W, W) bool, path mouse -> top-right square
    decision_square: np.ndarray   # (B, 2), canonical

    @property
    def cheese(self) -> np.ndarray:
        """Cheese squares, (-1, -1) when absent."""
        return np.asarray(self.batch.cheese)

    def decision(self, variant: str = "canonical") -> np.ndarray:
        """The decision square under one of DECISION_VARIANTS (docs/research.md §1.3):

        * ``canonical`` (procgen-tools ``metrics.decision_square``): the last square shared by the paths
          mouse -> cheese and mouse -> top-right; none when either target lies on the path to the other.
        * ``graph`` (procgen-tools ``get_decision_square_from_grid_graph``): as canonical, but when the top-right
          square lies on the way to the cheese, the cheese-path square right after it.
        * ``at_mouse`` (procgen-tools ``get_random_obs_opts(must_be_dec_square)``): the mouse's own square when the
          first steps towards cheese and top-right differ there, else none.
        """
        ds = self.decision_square
        if variant == "canonical":
            return ds
        if variant == "at_mouse":
            return np.where(np.all(ds == np.asarray(self.batch.mouse), axis=1)[:, None], ds, NONE)
        if variant == "graph":
            branch = _raw_branch_point(self)
            tr_first = np.all(branch == self.top_right, axis=1) & ~np.all(self.cheese == self.top_right, axis=1)
            tr_first &= valid_squares(self.top_right) & valid_squares(branch)
            depth = gather(self.dist_mouse, self.top_right) + 1
            after = (self.cheese_path & (self.dist_mouse == depth[:, None, None])).reshape(len(ds), -1)
            w = self.dist_mouse.shape[-1]
            flat = after.argmax(axis=1)
            after_sq = np.stack([flat // w, flat % w], axis=1).astype(np.int32)
            return np.where((tr_first & after.any(axis=1))[:, None], after_sq, ds)
        raise ValueError(f"unknown decision-square variant {variant!r}; choose one of {DECISION_VARIANTS}")

    def path_divergence_map(self) -> np.ndarray:
        """(B, W, W): for each reachable square s, how many squares of the path mouse -> s are not on the path
        mouse -> top-right ("distance from the top-right path" of the retargeting analyses); NaN elsewhere."""
        b, h, w = self.dist_mouse.shape
        flat = np.arange(h * w).reshape(1, h, w)
        m = np.clip(self.to_mouse, 0, 3)
        step = np.where(self.to_mouse >= 0, DELTAS[m, 0] * w + DELTAS[m, 1], 0)
        anc = (flat + step).reshape(b, h * w)
        reach = self.dist_mouse >= 0
        val = (reach & ~self.top_right_path).reshape(b, h * w).astype(np.int32)
        rows = np.arange(b)[:, None]
        for _ in range(int(np.ceil(np.log2(h * w))) + 1):  # pointer doubling: sums over 2^k ancestors
            val = val + val[rows, anc]  # the mouse is its own ancestor and adds 0 (it is on the top-right path)
            anc = anc[rows, anc]
        tr_reached = gather(self.dist_mouse, self.top_right) >= 0  # also False when the top-right is closed
        return np.where(reach & tr_reached[:, None, None], val.reshape(b, h, w), np.nan)

    def factors(self) -> dict[str, np.ndarray]:
        return _factors(self)


def _raw_branch_point(g: MazeGeometry) -> np.ndarray:
    """Deepest square shared by the two paths from the mouse (before the "either target on the other's path"
    exclusion); (-1, -1) if a path is missing."""
    shared = g.cheese_path & g.top_right_path
    depth = np.where(shared, g.dist_mouse, NONE).reshape(len(shared), -1)
    flat = depth.argmax(axis=1)
    w = shared.shape[-1]
    sq = np.stack([flat // w, flat % w], axis=1).astype(np.int32)
    return np.where((depth.max(axis=1) >= 0)[:, None], sq, NONE)


def analyse(batch: LevelBatch, region_size: int = 5) -> MazeGeometry:
    """Compute the shared geometry of a batch once: three BFS (mouse, top-right square, region) and two paths."""
    walls = np.asarray(batch.walls, dtype=bool)
    mouse, cheese = np.asarray(batch.mouse), np.asarray(batch.cheese)
    tr = top_right_square(batch)
    region = top_right_region(batch, region_size) & ~walls
    dist_mouse = step_distances(walls, mouse)
    to_mouse = next_moves(dist_mouse)
    cheese_path = path_mask(dist_mouse, cheese, to_mouse)
    tr_path = path_mask(dist_mouse, tr, to_mouse)
    partial = MazeGeometry(batch, region_size, tr, region, dist_mouse, to_mouse, step_distances(walls, tr),
                           step_distances(walls, region), cheese_path, tr_path, np.full_like(mouse, NONE))
    branch = _raw_branch_point(partial)
    prefix = np.all(branch == cheese, axis=1) | np.all(branch == tr, axis=1)
    ds = np.where((~prefix & valid_squares(branch))[:, None], branch, NONE).astype(np.int32)
    return replace(partial, decision_square=ds)


def decision_square(batch: LevelBatch, variant: str = "canonical") -> np.ndarray:
    """(B, 2) world decision squares, (-1, -1) where there is none; see :meth:`MazeGeometry.decision`."""
    return analyse(batch).decision(variant)


def decision_point_map(batch: LevelBatch) -> np.ndarray:
    """(B, W, W) bool: squares where the first step towards the cheese differs from the first step towards the
    top-right square (a per-square "decision point", e.g. to pick probe observations)."""
    to_cheese = next_step_towards(batch, batch.cheese)
    to_tr = next_step_towards(batch, top_right_square(batch))
    return (to_cheese >= 0) & (to_tr >= 0) & (to_cheese != to_tr)


def _steps_between(dist: np.ndarray, squares: np.ndarray) -> np.ndarray:
    d = gather(dist, squares).astype(float)
    return np.where(d >= 0, d, np.nan)


def _factors(g: MazeGeometry) -> dict[str, np.ndarray]:
    batch = g.batch
    m = margins(batch)
    mouse, cheese, tr, ds = np.asarray(batch.mouse), g.cheese, g.top_right, g.decision_square

    def inner(sq: np.ndarray, k: int) -> np.ndarray:  # world -> inner coordinate k, NaN when missing
        return np.where(valid_squares(sq), sq[:, k] - m, np.nan)
    d_mouse_cheese = _steps_between(g.dist_mouse, cheese)
    d_mouse_ds = _steps_between(g.dist_mouse, ds)
    d_mouse_tr = _steps_between(g.dist_mouse, tr)
    has_cheese = valid_squares(cheese)
    quadrant_mask = top_right_quadrant(batch)
    up_right = up_right_reachable(batch.walls, mouse)
    region_all = top_right_region(batch, g.region_size)
    out = {
        "maze_size": np.asarray(batch.size, float),
        "has_cheese": has_cheese.astype(float),
        "mouse_row": inner(mouse, 0), "mouse_col": inner(mouse, 1),
        "cheese_row": inner(cheese, 0), "cheese_col": inner(cheese, 1),
        "has_decision_square": valid_squares(ds).astype(float),
        "decision_square_row": inner(ds, 0), "decision_square_col": inner(ds, 1),
        # F1-F10
        "euclid_cheese_decision_square": euclidean(cheese, ds),
        "steps_cheese_decision_square": d_mouse_cheese - d_mouse_ds,  # ds lies on the shortest path to the cheese
        "euclid_cheese_top_right": euclidean(cheese, tr),
        "steps_cheese_top_right": _steps_between(g.dist_top_right, cheese),
        "euclid_decision_square_top_right": euclidean(ds, tr),
        "steps_decision_square_top_right": d_mouse_tr - d_mouse_ds,
        "steps_cheese_top_right_region": _steps_between(g.dist_region, cheese),
        "euclid_cheese_top_right_region": min_distance_to_mask(cheese, g.region),
        "steps_decision_square_top_right_region": _steps_between(g.dist_region, ds),
        "euclid_decision_square_top_right_region": min_distance_to_mask(ds, g.region),
        # procgen-tools' taxicab variants and the cheese coordinate norm (outer-grid coordinates, as there)
        "taxi_cheese_decision_square": taxicab(cheese, ds),
        "taxi_cheese_top_right": taxicab(cheese, tr),
        "taxi_decision_square_top_right": taxicab(ds, tr),
        "taxi_cheese_top_right_region": min_distance_to_mask(cheese, g.region, "taxi"),
        "taxi_decision_square_top_right_region": min_distance_to_mask(ds, g.region, "taxi"),
        "cheese_coord_norm": np.where(has_cheese, np.hypot(*cheese.T.astype(float)), np.nan),
        # paths from the mouse
        "steps_mouse_cheese": d_mouse_cheese,
        "steps_mouse_top_right": d_mouse_tr,
        "euclid_mouse_cheese": euclidean(mouse, cheese),
        "cheese_path_divergence": np.where(
            np.isfinite(d_mouse_cheese) & np.isfinite(d_mouse_tr),
            (g.cheese_path & ~g.top_right_path).sum(axis=(1, 2)), np.nan),
        "cheese_in_top_right_region": np.where(has_cheese, gather(region_all, cheese, False), np.nan),
        # B2
        "mouse_dist_left_wall": inner(mouse, 1),
        "euclid_cheese_top_right_quadrant": min_distance_to_mask(cheese, quadrant_mask),
        "cheese_up_right_reachable": np.where(has_cheese, gather(up_right, cheese, False), np.nan),
        "cheese_quadrant": quadrant(batch, cheese),
    }
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def factors(batch: LevelBatch, region_size: int = 5) -> dict[str, np.ndarray]:
    """Every geometry factor per level, as float arrays (B,) with NaN where undefined (e.g. no decision square).

    Keys: see :data:`PREDICTION_FACTORS` (F1-F10) and :data:`B2_FACTORS`; coordinates are inner (row, col);
    ``cheese_quadrant`` indexes :data:`QUADRANTS`; booleans are 0/1. Step distances run from the mouse's BFS tree.
    """
    return analyse(batch, region_size).factors()
