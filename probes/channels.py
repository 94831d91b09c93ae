"""Channel discovery: which channels of a layer track the cheese (or the top-right square) *equivariantly* —
move the target and the channel's activity moves with it.

Criterion (stated once, used for O2): take a maze, put the cheese on several squares (mouse at the start); for each
placement and channel, the **most salient cell** of the channel's map is the one furthest from the map's own median
(largest |a - median|). The placement is a **tracking hit** when that cell lies within ``tol`` cells (Chebyshev) of
the cheese's activation cell: the cheese is what stands out in that channel, as channel 55's +0.6 against -0.2 does
(research-notes §3.2). A channel's tracking score is its hit rate over all placements of all mazes. (Deviations from
the channel's mean over placements would be too lenient: any conv channel near the cheese pixels changes there.) Chance is about the share of cells within ``tol``
of a random target ((2 tol + 1)^2 / H W, ~3.5% on a 16x16 map). A channel is **trivially interpretable** (O2) when
its score is at least :data:`O2_THRESHOLD`. For the top-right square the placements are different mazes (the square
moves with maze size).

The published 11 cheese channels of ``block2.res1.resadd_out`` were found by eye; this finds the analogue for any
checkpoint.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mazeagent.maze.level import CHEESE, SPACE
from probes.dataset import activation_cell, capture, observations
from probes.vfield import open_squares

O2_THRESHOLD = 0.8
TOL = 1


def tracking_hits(acts: np.ndarray, cells: np.ndarray, tol: int = TOL) -> np.ndarray:
    """(K, C) bool: per placement and channel, is the map's most salient cell (largest |a - median of the map|)
    within ``tol`` cells of the target cell? ``acts`` (K, H, W, C), ``cells`` (K, 2) image-order."""
    acts = np.asarray(acts, np.float32)
    k, h, w, c = acts.shape
    flat = acts.reshape(k, h * w, c)
    dev = np.abs(flat - np.median(flat, axis=1, keepdims=True))
    arg = dev.argmax(1)  # (K, C)
    r, q = arg // w, arg % w
    near = np.maximum(abs(r - cells[:, :1]), abs(q - cells[:, 1:])) <= tol
    return near & (dev.max(1) > 0)


def with_cheese_at(mazes: Any, i: int, squares: np.ndarray) -> Any:
    """Copies of maze ``i``, one per world square in ``squares``, with the cheese moved there."""
    base = np.where(mazes.grid[i] == CHEESE, SPACE, mazes.grid[i])
    k = len(squares)
    grid = np.repeat(base[None], k, 0)
    grid[np.arange(k), squares[:, 0], squares[:, 1]] = CHEESE
    rep = lambda a: np.repeat(a[i:i + 1], k, 0)  # noqa: E731
    return replace(mazes, grid=grid, size=rep(mazes.size), background=rep(mazes.background), seed=rep(mazes.seed),
                   mouse=rep(mazes.mouse), cheese=np.asarray(squares, mazes.cheese.dtype))


def cheese_tracking(net: Any, params: Any, mazes: Any, layer: str, placements: int = 16, seed: int = 0,
                    tol: int = TOL, progress: bool = True) -> np.ndarray:
    """(C,) tracking score of every channel of ``layer`` for the cheese, over ``placements`` cheese squares per
    maze (random open squares other than the start)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    hits, total = None, 0
    for i in tqdm(range(len(mazes)), desc="cheese tracking", disable=not progress):
        free = open_squares(mazes, i)
        free = free[~(free == mazes.mouse[i]).all(1)]
        if len(free) < 2:
            continue
        sq = free[rng.choice(len(free), size=min(placements, len(free)), replace=False)]
        sq = np.concatenate([sq, np.repeat(sq[:1], placements - len(sq), 0)])  # fixed batch shape
        moved = with_cheese_at(mazes, i, sq)
        acts = capture(net, params, observations(moved, np.arange(len(sq))), [layer])[layer]
        h = tracking_hits(acts, activation_cell(sq, acts.shape[1]), tol)
        hits = h.sum(0) if hits is None else hits + h.sum(0)
        total += len(sq)
    if not total:
        raise ValueError("no maze has room to move the cheese")
    return hits / total


def top_right_tracking(net: Any, params: Any, mazes: Any, layer: str, tol: int = TOL) -> np.ndarray:
    """(C,) tracking score for the top-right free square across mazes (its cell moves with the maze size)."""
    tr = mazes.geometry.top_right
    acts = capture(net, params, observations(mazes, np.arange(len(mazes))), [layer])[layer]
    return tracking_hits(acts, activation_cell(tr, acts.shape[1]), tol).mean(0)


def chance_rate(size: int, tol: int = TOL) -> float:
    """Hit rate of a channel whose peak is a uniformly random cell (ignoring edges)."""
    return min(1.0, (2 * tol + 1) ** 2 / size ** 2)


def ranking(scores: np.ndarray) -> np.ndarray:
    """Channels, best tracker first."""
    return np.argsort(-np.asarray(scores), kind="stable")


def o2_count(scores: np.ndarray, threshold: float = O2_THRESHOLD) -> int:
    """How many channels meet the trivially-interpretable criterion."""
    return int((np.asarray(scores) >= threshold).sum())
