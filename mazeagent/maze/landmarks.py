"""Maze landmarks on batches: the inner maze's area and margins, the top-right square, region and quadrant, the
quadrant of a square, and the squares reachable by up/right moves only (the B2 attribute).

World ``(row, col)`` squares and ``(-1, -1)`` for "none", as in :mod:`mazeagent.maze.paths`.
"""
from __future__ import annotations

import numpy as np

from mazeagent.maze.level import LevelBatch
from mazeagent.maze.paths import NONE, gather, grid_coords, squares_mask, valid_squares

QUADRANTS = ("bottom_left", "bottom_right", "top_left", "top_right")  # code = 2 * top + right


def margins(batch: LevelBatch) -> np.ndarray:
    return (batch.walls.shape[-1] - np.asarray(batch.size)) // 2


def maze_area(batch: LevelBatch) -> np.ndarray:
    """(B, W, W) bool: the n x n inner maze inside the world."""
    rows, cols = grid_coords(batch.walls.shape[1:])
    m, n = margins(batch)[:, None, None], np.asarray(batch.size)[:, None, None]
    return (rows >= m) & (rows < m + n) & (cols >= m) & (cols < m + n)


def top_right_square(batch: LevelBatch) -> np.ndarray:
    """World square of the top-right free square, inner (n-1, n-1); (-1, -1) if an edit closed it."""
    corner = margins(batch) + np.asarray(batch.size) - 1
    sq = np.stack([corner, corner], axis=1).astype(np.int32)
    return np.where(gather(batch.walls, sq, True)[:, None], NONE, sq)


def top_right_region(batch: LevelBatch, size: int = 5) -> np.ndarray:
    """(B, W, W) bool: the top-right ``size`` x ``size`` block of the maze (inner rows/cols >= n - size), walls
    included; clipped to the maze when n < size (procgen-tools wrapped around there instead)."""
    if size < 1:
        raise ValueError(f"region size must be >= 1, got {size}")
    rows, cols = grid_coords(batch.walls.shape[1:])
    lo = (margins(batch) + np.maximum(np.asarray(batch.size) - size, 0))[:, None, None]
    return maze_area(batch) & (rows >= lo) & (cols >= lo)


def top_right_quadrant(batch: LevelBatch) -> np.ndarray:
    """(B, W, W) bool: maze squares strictly above and right of the centre row/column."""
    rows, cols = grid_coords(batch.walls.shape[1:])
    centre = (margins(batch) + (np.asarray(batch.size) - 1) // 2)[:, None, None]
    return maze_area(batch) & (rows > centre) & (cols > centre)


def quadrant(batch: LevelBatch, squares: np.ndarray) -> np.ndarray:
    """Quadrant code of each square (index into QUADRANTS); NaN on the centre row/column or for a missing square."""
    centre = margins(batch) + (np.asarray(batch.size) - 1) // 2
    sq = np.asarray(squares)
    code = 2 * (sq[:, 0] > centre) + (sq[:, 1] > centre)
    on_line = (sq[:, 0] == centre) | (sq[:, 1] == centre)
    return np.where(valid_squares(sq) & ~on_line, code, np.nan)


def up_right_reachable(walls: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(B, H, W) bool: squares reachable from ``start`` using only up and right moves through open squares."""
    open_ = ~np.asarray(walls, dtype=bool)
    reach = squares_mask(start, open_.shape[1:]) & open_
    for r in range(open_.shape[1]):
        if r > 0:
            reach[:, r] |= reach[:, r - 1] & open_[:, r]
        for c in range(1, open_.shape[2]):
            reach[:, r, c] |= reach[:, r, c - 1] & open_[:, r, c]
    return reach
