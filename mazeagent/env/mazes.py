"""Maze batches from the env: stock procgen mazes at level seeds (:mod:`mazeagent.env.levelgen`) and their frames
(:mod:`mazeagent.env.render`), for rollouts, studies and probes.

Frames are rendered in two steps: a maze's frame without the mouse once, then the mouse composited per queried
(square, facing), which is what makes evaluating a policy at many states of one maze cheap.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mazeagent.batching import pad_to_bucket
from mazeagent.env.levelgen import INT32_MAX, GeneratedLevels, check_max_maze_size, generate_batch, maze_sizes
from mazeagent.env.render import composite_mouse, load_tables, render_static
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import WORLD


def generate_mazes(n: int, seed: int = 0, rand_region: int | None = None, max_size: int | None = None,
                   min_size: int | None = None) -> Mazes:
    """``n`` stock mazes (cheese anywhere) at distinct level seeds drawn from ``seed``; ``max_size`` / ``min_size``
    keep only mazes in that size range (the sizes an agent was trained on, or those it never saw)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of mazes must be a positive int, got {n!r}")
    return from_generated(generate_batch(level_seeds(int(n), seed, min_size, max_size), rand_region=rand_region))


def level_seeds(n: int, seed: int = 0, min_size: int | None = None, max_size: int | None = None) -> np.ndarray:
    """``n`` distinct level seeds drawn from ``seed`` whose maze size lies in [min_size, max_size]; without a range,
    the same seeds as ever (so existing studies keep their mazes)."""
    rng = np.random.default_rng(seed)
    if min_size is None and max_size is None:
        return rng.choice(INT32_MAX, size=n, replace=False).astype(np.int32)
    lo, hi = (3 if min_size is None else check_max_maze_size(min_size, WORLD),
              WORLD if max_size is None else check_max_maze_size(max_size, WORLD))
    if lo > hi:
        raise ValueError(f"empty maze-size range [{lo}, {hi}]")
    out = np.zeros(0, np.int32)
    while len(out) < n:  # sizes are near-uniform over 3, 5, ..., 25, so a few rounds suffice
        cand = rng.choice(INT32_MAX, size=4 * n + 64, replace=False).astype(np.int32)
        size = maze_sizes(cand, WORLD)
        cand = cand[(size >= lo) & (size <= hi) & ~np.isin(cand, out)]
        out = np.concatenate([out, cand])
    return out[:n]


def from_generated(g: GeneratedLevels) -> Mazes:
    """Generated levels (device or host arrays) as a host maze batch."""
    return Mazes(grid=np.asarray(g.grid), size=np.asarray(g.size), background=np.asarray(g.background),
                 seed=np.asarray(g.seed), mouse=np.asarray(g.mouse), cheese=np.asarray(g.cheese))


@functools.lru_cache(maxsize=None)
def renderers() -> tuple[Callable, Callable]:
    """The jitted, batched hard-mode renderers ``(static(grid, background), compose(frame, mouse, reflected))``:
    a maze's frame without the mouse is rendered once and the mouse composited per queried state."""
    tables = load_tables("hard")
    static = jax.jit(jax.vmap(lambda g, b: render_static(g, b, tables)))
    compose = jax.jit(jax.vmap(lambda f, m, r: composite_mouse(f, m, r, tables)))
    return static, compose


def static_frames(mazes: Mazes, idx: np.ndarray) -> jax.Array:
    """Frames of the given mazes without the mouse (rendered once, the mouse is composited per query)."""
    static, _ = renderers()
    return static(jnp.asarray(mazes.grid[idx]), jnp.asarray(mazes.background[idx]))


def observations(mazes: Mazes, idx: np.ndarray, squares: np.ndarray | None = None,
                 reflected: np.ndarray | None = None) -> jax.Array:
    """uint8 frames (B, 64, 64, 3) of mazes ``idx`` with the mouse at world ``squares`` (default: each maze's
    start) facing ``reflected`` (default: left, as at the start of an episode)."""
    idx = np.asarray(idx, np.int64)
    squares = mazes.mouse[idx] if squares is None else np.asarray(squares)
    reflected = np.zeros(len(idx), bool) if reflected is None else np.asarray(reflected, bool)
    uniq, inv = np.unique(idx, return_inverse=True)
    # padded (repeating a valid first row) to powers of two: few compilations of the renderers
    frames = static_frames(mazes, pad_to_bucket(uniq, 8, fill="first"))
    _, compose = renderers()
    b = len(idx)
    pad = lambda a: pad_to_bucket(np.asarray(a), 16, fill="first")  # noqa: E731
    out = compose(frames[jnp.asarray(pad(inv))], jnp.asarray(pad(squares), jnp.int32), jnp.asarray(pad(reflected)))
    return out[:b]
