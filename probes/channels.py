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

from typing import Any, Sequence

import numpy as np

from mazeagent.env.mazes import observations
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import world_to_activation
from mazeagent.probes.dataset import capture
from mazeagent.probes.vfield import open_squares

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


def cheese_tracking_by_maze(net: Any, params: Any, mazes: Mazes, layers: Sequence[str], placements: int = 16,
                            seed: int = 0, tol: int = TOL, progress: bool = True
                            ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer, ``(hits (M, C), placements (M,))``: tracking hits of every channel for the cheese over up to
    ``placements`` cheese squares per maze (random open squares other than the start; small mazes have fewer).
    Kept per maze so that intervals can resample mazes."""
    from tqdm.auto import tqdm

    layers = list(layers)
    rng = np.random.default_rng(seed)
    hits: dict[str, list] = {nm: [] for nm in layers}
    counts = []
    for i in tqdm(range(len(mazes)), desc="cheese tracking", disable=not progress):
        free = open_squares(mazes, i)
        free = free[~(free == mazes.mouse[i]).all(1)]
        k = min(placements, len(free)) if len(free) >= 2 else 0
        sq = free[rng.choice(len(free), size=k, replace=False)] if k else np.zeros((0, 2), np.int32)
        counts.append(k)
        if not k:
            for nm in layers:
                hits[nm].append(None)
            continue
        padded = np.concatenate([sq, np.repeat(sq[:1], placements - k, 0)])  # fixed batch shape; padding unscored
        acts = capture(net, params, observations(mazes.with_cheese_at(i, padded), np.arange(placements)), layers)
        for nm in layers:
            hits[nm].append(tracking_hits(acts[nm][:k], world_to_activation(sq, acts[nm].shape[1]), tol).sum(0))
    n = np.asarray(counts, np.int64)
    if not n.sum():
        raise ValueError("no maze has room to move the cheese")
    out = {}
    for nm in layers:
        c = next(h for h in hits[nm] if h is not None).shape[0]
        out[nm] = (np.stack([np.zeros(c, np.int64) if h is None else h for h in hits[nm]]), n)
    return out


def cheese_tracking(net: Any, params: Any, mazes: Mazes, layer: str, placements: int = 16, seed: int = 0,
                    tol: int = TOL, progress: bool = True) -> np.ndarray:
    """(C,) tracking score of every channel of ``layer`` for the cheese: its hit rate over all placements."""
    hits, n = cheese_tracking_by_maze(net, params, mazes, [layer], placements, seed, tol, progress)[layer]
    return hits.sum(0) / n.sum()


def top_right_tracking_by_maze(net: Any, params: Any, mazes: Mazes, layers: Sequence[str], tol: int = TOL
                               ) -> dict[str, np.ndarray]:
    """Per layer, (M, C) bool: does each channel's most salient cell sit at the maze's top-right free square (its
    cell moves with the maze size)?"""
    layers = list(layers)
    tr = mazes.geometry.top_right
    acts = capture(net, params, observations(mazes, np.arange(len(mazes))), layers)
    return {nm: tracking_hits(acts[nm], world_to_activation(tr, acts[nm].shape[1]), tol) for nm in layers}


def top_right_tracking(net: Any, params: Any, mazes: Mazes, layer: str, tol: int = TOL) -> np.ndarray:
    """(C,) tracking score for the top-right free square across mazes."""
    return top_right_tracking_by_maze(net, params, mazes, [layer], tol)[layer].mean(0)


def count_interval(cheese_hits: np.ndarray, placements: np.ndarray, top_right_hits: np.ndarray,
                   threshold: float = O2_THRESHOLD, n_boot: int = 500, seed: int = 0) -> dict:
    """How many channels meet the criterion for the cheese, for the top-right, and for either, each with a 95%
    percentile interval from resampling the discovery mazes (the count is a statistic of a small maze sample)."""
    m = len(placements)

    def counts(idx: np.ndarray) -> np.ndarray:
        cheese = cheese_hits[idx].sum(0) / max(placements[idx].sum(), 1) >= threshold
        tr = top_right_hits[idx].mean(0) >= threshold
        return np.array([cheese.sum(), tr.sum(), (cheese | tr).sum()])

    point = counts(np.arange(m))
    rng = np.random.default_rng(seed)
    boot = np.stack([counts(rng.integers(0, m, m)) for _ in range(n_boot)])
    lo, hi = (np.quantile(boot, q, axis=0, method="inverted_cdf") for q in (0.025, 0.975))  # counts stay whole
    return {k: {"count": int(point[j]), "ci": (int(lo[j]), int(hi[j]))}
            for j, k in enumerate(("cheese", "top_right", "either"))}


def chance_rate(size: int, tol: int = TOL) -> float:
    """Hit rate of a channel whose peak is a uniformly random cell (ignoring edges)."""
    return min(1.0, (2 * tol + 1) ** 2 / size ** 2)


def ranking(scores: np.ndarray) -> np.ndarray:
    """Channels, best tracker first."""
    return np.argsort(-np.asarray(scores), kind="stable")


def o2_count(scores: np.ndarray, threshold: float = O2_THRESHOLD) -> int:
    """How many channels meet the trivially-interpretable criterion."""
    return int((np.asarray(scores) >= threshold).sum())
