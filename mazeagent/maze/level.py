"""Maze levels as plain data, and the one coordinate convention the whole suite uses.

Coordinate convention (documented once, used everywhere):

* A **square** is a ``(row, col)`` pair of ints. ``row`` is y and points **up** (row 0 is the bottom row), ``col``
  is x and points right. This is procgen's own storage order (``grid[y * W + x]``) and procgen-tools' numpy order,
  so ``grid[row, col]`` indexes a grid directly.
* **Inner** coordinates index the ``n x n`` maze (n odd, 3..25). The mouse starts at inner ``(0, 0)`` (bottom-left);
  the top-right free square is inner ``(n-1, n-1)``.
* **World** coordinates index the ``25 x 25`` hard-mode world: inner ``(r, c)`` is world ``(r + m, c + m)`` with
  margin ``m = (25 - n) // 2``; everything outside the maze is wall.
* **Pixels** index the 64x64 observation with row 0 at the **top** (image order), so world row ``y`` maps to the
  pixel rows of world row ``24 - y`` counted from the top.
* **Activation cells** index an ``s x s`` spatial map (s = 32, 16, 8 for the three IMPALA blocks), image order
  (row 0 at top), as the observation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WORLD = 25  # hard-mode world_dim
OBS = 64  # observation side in pixels
MIN_SIZE, MAX_SIZE = 3, 25
NUM_ACTIONS = 15  # procgen's discrete action space (maze uses it unchanged)
TIMEOUT = 500  # procgen maze's episode timeout in steps

# procgen grid codes (object-ids.h / maze.cpp)
WALL = 51
SPACE = 100
CHEESE = 2

Square = tuple[int, int]


def margin(n: int) -> int:
    """Wall padding on each side of an n x n maze inside the 25 x 25 world."""
    return (WORLD - n) // 2


def inner_to_world(sq: Square, n: int) -> Square:
    m = margin(n)
    return (sq[0] + m, sq[1] + m)


def world_to_inner(sq: Square, n: int) -> Square:
    m = margin(n)
    return (sq[0] - m, sq[1] - m)


def _cell_edges() -> np.ndarray:
    """Pixel edges of the 25 world cells along one axis, left->right, as procgen's float32 geometry rounds them.

    Cell k covers pixels ``[edges[k], edges[k+1])``. Computed as qRound(k * unit) with unit = float32(64/25).
    """
    unit = np.float32(OBS) / np.float32(WORLD)
    lefts = (np.arange(WORLD + 1, dtype=np.float32) * unit).astype(np.float64)
    return np.floor(lefts + 0.5).astype(np.int64)


CELL_EDGES = _cell_edges()


def world_to_pixel_box(sq: Square) -> tuple[int, int, int, int]:
    """Pixel box ``(top, bottom, left, right)`` (half-open) of a world square's own (un-grown) cell rect."""
    row, col = sq
    img_row = WORLD - 1 - row
    return (int(CELL_EDGES[img_row]), int(CELL_EDGES[img_row + 1]), int(CELL_EDGES[col]), int(CELL_EDGES[col + 1]))


def pixel_to_world(px_row: int, px_col: int) -> Square:
    """The world square whose own cell rect contains pixel (px_row from top, px_col from left)."""
    img_row = int(np.searchsorted(CELL_EDGES, px_row, side="right") - 1)
    col = int(np.searchsorted(CELL_EDGES, px_col, side="right") - 1)
    return (WORLD - 1 - img_row, col)


def world_to_activation(sq: Square | np.ndarray, size: int) -> Square | np.ndarray:
    """Activation cell (image order) of an ``size x size`` map that a world square's centre falls in.

    One square gives a ``(row, col)`` tuple; an ``(N, 2)`` array of squares gives an ``(N, 2)`` int32 array, so
    datasets label many squares at once. An absent coordinate (-1, as a missing cheese) stays -1.
    """
    a = np.asarray(sq)
    img_row = WORLD - 1 - a[..., 0]
    cells = np.stack([np.floor((img_row + 0.5) * size / WORLD), np.floor((a[..., 1] + 0.5) * size / WORLD)], -1)
    cells = np.where(a >= 0, cells, -1).astype(np.int32)
    return (int(cells[0]), int(cells[1])) if a.ndim == 1 else cells


@dataclass(frozen=True)
class Level:
    """One maze: the inner wall grid, the mouse square and the cheese square (inner coordinates, see module doc).

    ``walls[row, col]`` is True where the square is blocked; row 0 is the bottom. ``cheese`` may be None.
    Levels are immutable values; :mod:`mazeagent.maze.edit` returns edited copies.
    """

    walls: np.ndarray
    mouse: Square = (0, 0)
    cheese: Square | None = None
    seed: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        walls = np.asarray(self.walls, dtype=bool)
        if walls.ndim != 2 or walls.shape[0] != walls.shape[1]:
            raise ValueError(f"walls must be a square 2-D grid, got shape {walls.shape}")
        n = walls.shape[0]
        if n % 2 == 0 or not MIN_SIZE <= n <= MAX_SIZE:
            raise ValueError(f"maze size must be odd and in [{MIN_SIZE}, {MAX_SIZE}], got {n}")
        walls = walls.copy()
        walls.setflags(write=False)
        object.__setattr__(self, "walls", walls)
        object.__setattr__(self, "mouse", _check_square("mouse", self.mouse, walls))
        if self.cheese is not None:
            object.__setattr__(self, "cheese", _check_square("cheese", self.cheese, walls))

    @property
    def size(self) -> int:
        return self.walls.shape[0]

    @property
    def top_right(self) -> Square:
        """The top-right free square, inner (n-1, n-1)."""
        return (self.size - 1, self.size - 1)

    def world_codes(self, with_cheese: bool = True) -> np.ndarray:
        """The 25 x 25 world grid in procgen codes, ``[row, col]`` with row 0 at the bottom."""
        n, m = self.size, margin(self.size)
        world = np.full((WORLD, WORLD), WALL, dtype=np.int32)
        world[m:m + n, m:m + n] = np.where(self.walls, WALL, SPACE)
        if with_cheese and self.cheese is not None:
            world[self.cheese[0] + m, self.cheese[1] + m] = CHEESE
        return world

    @classmethod
    def from_world(cls, world: np.ndarray, n: int, mouse_world: Square, seed: int | None = None) -> "Level":
        """Build a level from a 25 x 25 procgen-code world grid (``[row, col]``, row 0 bottom) and a maze size."""
        world = np.asarray(world)
        if world.shape != (WORLD, WORLD):
            raise ValueError(f"world grid must be {WORLD}x{WORLD}, got {world.shape}")
        m = margin(n)
        inner = world[m:m + n, m:m + n]
        cheese = np.argwhere(inner == CHEESE)
        if len(cheese) > 1:
            raise ValueError(f"a level holds at most one cheese, found {len(cheese)}")
        return cls(
            walls=inner == WALL,
            mouse=world_to_inner(mouse_world, n),
            cheese=tuple(int(v) for v in cheese[0]) if len(cheese) else None,
            seed=seed,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return (np.array_equal(self.walls, other.walls) and self.mouse == other.mouse
                and self.cheese == other.cheese)

    def __hash__(self) -> int:
        return hash((self.walls.tobytes(), self.size, self.mouse, self.cheese))


def _check_square(name: str, sq: Square, walls: np.ndarray) -> Square:
    try:
        vals = [v for v in sq]
    except TypeError:
        vals = []
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                                 for v in vals):
        raise ValueError(f"{name} must be a (row, col) pair of ints, got {sq!r}")
    row, col = (int(v) for v in vals)
    n = walls.shape[0]
    if not (0 <= row < n and 0 <= col < n):
        raise ValueError(f"{name} square {(row, col)} is outside the {n}x{n} maze")
    if walls[row, col]:
        raise ValueError(f"{name} square {(row, col)} is on a wall")
    return (row, col)


@dataclass(frozen=True)
class LevelBatch:
    """Many levels as fixed-shape world arrays, for batched geometry and the JAX env (one row per level).

    ``walls``: (B, 25, 25) bool world walls (padding included); ``size``: (B,) maze sizes; ``mouse``/``cheese``:
    (B, 2) world squares (cheese = (-1, -1) when absent). All in world coordinates so no per-level shapes differ.
    """

    walls: np.ndarray
    size: np.ndarray
    mouse: np.ndarray
    cheese: np.ndarray

    @classmethod
    def stack(cls, levels: list[Level]) -> "LevelBatch":
        walls = np.stack([lv.world_codes(with_cheese=False) == WALL for lv in levels])
        size = np.array([lv.size for lv in levels], dtype=np.int32)
        mouse = np.array([inner_to_world(lv.mouse, lv.size) for lv in levels], dtype=np.int32)
        cheese = np.array([inner_to_world(lv.cheese, lv.size) if lv.cheese is not None else (-1, -1)
                           for lv in levels], dtype=np.int32)
        return cls(walls=walls, size=size, mouse=mouse, cheese=cheese)

    def __len__(self) -> int:
        return int(self.size.shape[0])

    def level(self, i: int) -> Level:
        n = int(self.size[i])
        m = margin(n)
        cheese = None if self.cheese[i, 0] < 0 else (int(self.cheese[i, 0]) - m, int(self.cheese[i, 1]) - m)
        return Level(walls=self.walls[i, m:m + n, m:m + n],
                     mouse=(int(self.mouse[i, 0]) - m, int(self.mouse[i, 1]) - m), cheese=cheese)
