"""Distances and paths on maze batches: BFS step distances, the expert move (:func:`next_step_towards`), shortest
paths, Euclidean/taxicab distances, and the array helpers every geometry module shares (:func:`gather`,
:func:`squares_mask`). The home of the move order :data:`MOVES` and the "none" square ``(-1, -1)``.

Everything runs on fixed-shape world arrays (``(B, W, W)``, row 0 at the bottom, see level.py) with vectorised numpy,
so 10,000 levels take seconds. Squares are world ``(row, col)``; ``(-1, -1)`` means "none" (no cheese, no decision
square, unreachable). Step distance maps use -1 for walls/unreachable.

Shortest paths and ties. procgen mazes are spanning trees, so every shortest path is unique. Edited mazes may
have cycles; then ties are broken in :data:`MOVES` order (left, down, up, right):

* the shortest path *from* a square ``s`` is the branch of the BFS tree rooted at ``s``: walking back from the
  target, each square's predecessor is its first neighbour (in MOVES order) one step closer to ``s``. All paths
  from the mouse thus live in one tree: two of them share a prefix, split once and never rejoin, which is what
  makes the decision square (their branch point, :mod:`mazeagent.maze.geometry`) well defined;
* :func:`next_step_towards` gives at each square the first move (in MOVES order) that gets one step closer to the
  target -- the value-maximising move. With cycles, following it may trace a different, equally short path.
"""
from __future__ import annotations

import numpy as np

from mazeagent.maze.level import LevelBatch

# Move order = the first four of the network's 5 action groups (left, down, up, right, noop); (row, col) deltas, y up.
MOVES = ("left", "down", "up", "right")
DELTAS = np.array([(0, -1), (-1, 0), (1, 0), (0, 1)], dtype=np.int32)
NONE = -1


# ----------------------------------------------------------------------------------------------- array helpers

def _neighbour(x: np.ndarray, move: int, fill) -> np.ndarray:
    """``out[..., r, c] = x[..., r + dr, c + dc]`` (the value one move away), ``fill`` off the grid."""
    dr, dc = (int(v) for v in DELTAS[move])
    h, w = x.shape[-2:]
    out = np.full_like(x, fill)
    out[..., max(0, -dr):h - max(0, dr), max(0, -dc):w - max(0, dc)] = \
        x[..., max(0, dr):h - max(0, -dr), max(0, dc):w - max(0, -dc)]
    return out


def valid_squares(squares: np.ndarray) -> np.ndarray:
    """(B,) bool: which of the squares (B, 2) are present (not (-1, -1))."""
    return squares[:, 0] >= 0


def gather(maps: np.ndarray, squares: np.ndarray, fill=NONE) -> np.ndarray:
    """``maps[b, row_b, col_b]`` for each level b; ``fill`` where the square is (-1, -1)."""
    squares = np.asarray(squares)
    ok = valid_squares(squares)
    r, c = np.clip(squares[:, 0], 0, None), np.clip(squares[:, 1], 0, None)
    return np.where(ok, maps[np.arange(len(squares)), r, c], fill)


def squares_mask(squares: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(B, H, W) bool with one True per level at its square (none for (-1, -1))."""
    squares = np.asarray(squares)
    mask = np.zeros((len(squares), *shape), dtype=bool)
    ok = valid_squares(squares)
    mask[np.nonzero(ok)[0], squares[ok, 0], squares[ok, 1]] = True
    return mask


def grid_coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index grids of ``shape``, each (1, H, W) to broadcast against a batch."""
    rows, cols = np.indices(shape)
    return rows[None], cols[None]


# ------------------------------------------------------------------------------------- distances and paths

def step_distances(walls: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """BFS step distance (4-connected moves through open squares) from the nearest source; -1 where unreachable.

    ``walls``: (B, H, W) bool. ``sources``: (B, 2) squares or a (B, H, W) mask (multi-source, e.g. a region);
    sources on walls are ignored.
    """
    walls = np.asarray(walls, dtype=bool)
    sources = np.asarray(sources)
    if sources.shape != walls.shape:
        sources = squares_mask(sources, walls.shape[1:])
    h, w = walls.shape[1:]
    if w > 32:
        raise ValueError(f"grids wider than 32 squares are not supported, got {w}")
    # Bit-parallel BFS: each grid row is one uint32 (bit c = column c), so a BFS round is a few shifts and ands on
    # (B, H) words. Distances are kept as bit planes: square s reached in round d gets d's binary digits OR-ed in.
    open_ = _pack(~walls)
    seen = _pack(sources.astype(bool)) & open_
    n_planes = int(np.ceil(np.log2(h * w + 1)))
    planes = np.zeros((len(walls), n_planes, h), dtype=np.uint32)
    # work on the levels whose BFS still runs; write finished ones back and drop them
    live = np.arange(len(walls))
    f, op, sn, pl = seen.copy(), open_, seen.copy(), planes.copy()
    d = 0
    while len(live):
        d += 1
        grown = f | (f << 1) | (f >> 1)
        grown[:, 1:] |= f[:, :-1]
        grown[:, :-1] |= f[:, 1:]
        f = grown & op & ~sn
        sn |= f
        for k in range(n_planes):
            if (d >> k) & 1:
                pl[:, k] |= f
        active = f.any(axis=1)
        if not active.all():
            seen[live], planes[live] = sn, pl
            live, f, op, sn, pl = live[active], f[active], op[active], sn[active], pl[active]
    planes = planes.transpose(1, 0, 2)
    bits = _unpack(planes, w)  # (planes, B, H, W)
    dist = np.zeros(walls.shape, dtype=np.int32)
    for k in range(n_planes):
        dist |= bits[k].astype(np.int32) << k
    return np.where(_unpack(seen, w), dist, NONE)


def _pack(mask: np.ndarray) -> np.ndarray:
    """(B, H, W) bool -> (B, H) uint32 with bit c set where column c is True."""
    weights = np.uint32(1) << np.arange(mask.shape[-1], dtype=np.uint32)
    return np.bitwise_or.reduce(np.where(mask, weights, np.uint32(0)), axis=-1)


def _unpack(bits: np.ndarray, w: int) -> np.ndarray:
    """(..., H) uint32 -> (..., H, w) bool (inverse of :func:`_pack`)."""
    as_bytes = np.ascontiguousarray(bits, dtype="<u4").view(np.uint8).reshape(*bits.shape, 4)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :w].astype(bool)


def next_moves(dist: np.ndarray) -> np.ndarray:
    """From a distance map, the move index (into MOVES) at each square that goes one step closer to the source.

    The first such move in MOVES order wins; -1 at the source itself, on walls and where unreachable.
    """
    moves = np.full(dist.shape, NONE, dtype=np.int8)
    for m in reversed(range(4)):  # reversed so the first move in MOVES order is written last
        closer = (dist > 0) & (_neighbour(dist, m, NONE) == dist - 1)
        moves[closer] = m
    return moves


def next_step_towards(batch: LevelBatch, target: np.ndarray) -> np.ndarray:
    """(B, W, W) int8: at each open square, the first move (MOVES index) on a shortest path to ``target`` (B, 2).

    -1 at the target, on walls and where the target is unreachable. This is the "value-maximising move" for a
    goal at ``target``, and the ground truth for vector-field analyses.
    """
    return next_moves(step_distances(batch.walls, target))


def _walk(moves: np.ndarray, starts: np.ndarray, record: bool):
    """Follow ``moves`` from ``starts`` until a square with no move; returns the visited mask (and the route)."""
    b = len(starts)
    idx = np.arange(b)
    pos = np.asarray(starts, dtype=np.int32).copy()
    active = valid_squares(pos)
    mask = np.zeros(moves.shape, dtype=bool)
    route = []
    while active.any():
        mask[idx[active], pos[active, 0], pos[active, 1]] = True
        if record:
            route.append(np.where(active[:, None], pos, NONE))
        m = gather(moves, np.where(active[:, None], pos, NONE))
        active &= m >= 0
        pos = pos + np.where(active[:, None], DELTAS[np.clip(m, 0, 3)], 0)
    return mask, route


def path_mask(dist: np.ndarray, targets: np.ndarray, moves: np.ndarray | None = None) -> np.ndarray:
    """(B, H, W) bool: the squares of the shortest path source -> target (both ends included).

    ``dist`` is the source's :func:`step_distances` map (``moves`` its :func:`next_moves`, if already computed);
    an unreachable or missing (-1, -1) target gives an empty mask.
    """
    moves = next_moves(dist) if moves is None else moves
    targets = np.where((gather(dist, targets) >= 0)[:, None], targets, NONE)
    return _walk(moves, targets, record=False)[0]


def shortest_paths(walls: np.ndarray, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shortest paths source -> target per level: ``(paths (B, L, 2), lengths (B,))``.

    ``paths[b, :lengths[b] + 1]`` are the squares from source to target (world coordinates), padded with -1;
    ``lengths`` is the number of moves, -1 when the target is unreachable (or either square is missing).
    """
    dist = step_distances(walls, source)
    lengths = gather(dist, target)
    target = np.where((lengths >= 0)[:, None], target, NONE)
    _, route = _walk(next_moves(dist), target, record=True)
    if not route:
        return np.full((len(target), 1, 2), NONE, dtype=np.int32), lengths.astype(np.int32)
    back = np.stack(route, axis=1)  # target -> source, padded at the end
    paths = np.full_like(back, NONE)
    for i, n in enumerate(lengths):
        if n >= 0:
            paths[i, :n + 1] = back[i, n::-1]
    return paths, lengths.astype(np.int32)


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distance between squares (B, 2); NaN where either is missing."""
    d = np.hypot(*(np.asarray(a, float) - np.asarray(b, float)).T)
    return np.where(valid_squares(a) & valid_squares(b), d, np.nan)


def taxicab(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L1 distance between squares (B, 2); NaN where either is missing."""
    d = np.abs(np.asarray(a, float) - np.asarray(b, float)).sum(axis=1)
    return np.where(valid_squares(a) & valid_squares(b), d, np.nan)


def min_distance_to_mask(squares: np.ndarray, mask: np.ndarray, metric: str = "euclid") -> np.ndarray:
    """Minimal L2 (``"euclid"``) or L1 (``"taxi"``) distance from each square to any True square of ``mask``."""
    rows, cols = grid_coords(mask.shape[1:])
    sq = np.asarray(squares, dtype=np.int32)
    dr, dc = rows - sq[:, 0, None, None], cols - sq[:, 1, None, None]
    d = dr * dr + dc * dc if metric == "euclid" else np.abs(dr) + np.abs(dc)  # exact ints, root taken once
    d = np.where(mask, d, np.iinfo(np.int32).max).min(axis=(1, 2)).astype(float)
    d = np.sqrt(d) if metric == "euclid" else d
    return np.where(valid_squares(sq) & mask.any(axis=(1, 2)), d, np.nan)
