"""The maze batch: many levels as world arrays plus what rendering needs, the one type that rollouts, studies and
probes pass around. Its operations return new batches (a batch is a value, like :class:`Level`)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from mazeagent.maze.geometry import MazeGeometry, analyse
from mazeagent.maze.level import CHEESE, SPACE, WALL, Level, LevelBatch

MAZE_FIELDS = ("grid", "size", "background", "seed", "mouse", "cheese")  # the per-maze arrays of a batch


@dataclass(frozen=True)
class Mazes:
    """A batch of levels as world arrays (:mod:`mazeagent.maze.level` conventions) plus what rendering needs."""

    grid: np.ndarray  # (B, W, W) procgen codes, cheese included
    size: np.ndarray  # (B,)
    background: np.ndarray  # (B,)
    seed: np.ndarray  # (B,) level seeds (-1 for hand-built levels)
    mouse: np.ndarray  # (B, 2) world
    cheese: np.ndarray  # (B, 2) world, (-1, -1) if none

    def __len__(self) -> int:
        return int(self.size.shape[0])

    @functools.cached_property
    def batch(self) -> LevelBatch:
        return LevelBatch(walls=self.grid == WALL, size=self.size.astype(np.int32),
                          mouse=self.mouse.astype(np.int32), cheese=self.cheese.astype(np.int32))

    @functools.cached_property
    def geometry(self) -> MazeGeometry:
        return analyse(self.batch)

    def level(self, i: int) -> Level:
        return self.batch.level(i)

    @classmethod
    def from_levels(cls, levels: list[Level], background: int | np.ndarray = 0) -> Mazes:
        """Hand-built or edited levels (e.g. from :mod:`mazeagent.maze.edit`) as a playable batch; ``background``
        is one index for all or one per level."""
        if not levels:
            raise ValueError("need at least one level")
        b = LevelBatch.stack(levels)
        grid = np.stack([lv.world_codes() for lv in levels]).astype(np.int32)
        return cls(grid=grid, size=b.size, background=np.full(len(levels), background, np.int32),
                   seed=np.array([-1 if lv.seed is None else lv.seed for lv in levels], np.int32),
                   mouse=b.mouse, cheese=b.cheese)

    def take(self, idx: np.ndarray) -> Mazes:
        """The mazes ``idx`` (repeats allowed), as a new batch."""
        idx = np.asarray(idx, np.int64)
        return replace(self, **{k: getattr(self, k)[idx] for k in MAZE_FIELDS})

    @staticmethod
    def concat(parts: list[Mazes]) -> Mazes:
        """Several batches as one, in order."""
        return replace(parts[0], **{k: np.concatenate([getattr(p, k) for p in parts]) for k in MAZE_FIELDS})

    def without_cheese(self) -> Mazes:
        """The same mazes with the cheese removed (grid and ``cheese`` field)."""
        grid = np.where(self.grid == CHEESE, SPACE, self.grid)
        return replace(self, grid=grid, cheese=np.full_like(self.cheese, -1))

    def with_cheese_at(self, i: int, squares: np.ndarray) -> Mazes:
        """Copies of maze ``i``, one per world square in ``squares`` (K, 2), with the cheese moved there."""
        base = np.where(self.grid[i] == CHEESE, SPACE, self.grid[i])
        k = len(squares)
        grid = np.repeat(base[None], k, 0)
        grid[np.arange(k), squares[:, 0], squares[:, 1]] = CHEESE
        rep = lambda a: np.repeat(a[i:i + 1], k, 0)  # noqa: E731
        return replace(self, grid=grid, size=rep(self.size), background=rep(self.background), seed=rep(self.seed),
                       mouse=rep(self.mouse), cheese=np.asarray(squares, self.cheese.dtype))
