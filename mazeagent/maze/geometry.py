"""Maze geometry on batches: BFS step distances, shortest paths, the decision square, the top-right square and
region, and every level factor the preregistered predictions name (predictions.md F1-F10 and B2).

Everything runs on a :class:`LevelBatch`'s fixed-shape world arrays (``(B, W, W)``, row 0 at the bottom, see
level.py) with vectorised numpy, so 10,000 levels take seconds. Squares are world ``(row, col)``; ``(-1, -1)``
means "none" (no cheese, no decision square, unreachable). Step distance maps use -1 for walls/unreachable.

Shortest paths and ties. procgen mazes are spanning trees, so every shortest path is unique. Edited mazes may
have cycles; then ties are broken in :data:`MOVES` order (left, down, up, right):

* the shortest path *from* a square ``s`` is the branch of the BFS tree rooted at ``s``: walking back from the
  target, each square's predecessor is its first neighbour (in MOVES order) one step closer to ``s``. All paths
  from the mouse thus live in one tree: two of them share a prefix, split once and never rejoin, which is what
  makes the decision square (their branch point) well defined;
* :func:`next_step_towards` gives at each square the first move (in MOVES order) that gets one step closer to the
  target -- the value-maximising move. With cycles, following it may trace a different, equally short path.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mazeagent.maze.level import LevelBatch

# Move order = the first four of the network's 5 action groups (left, down, up, right, noop); (row, col) deltas, y up.
MOVES = ("left", "down", "up", "right")
DELTAS = np.array([(0, -1), (-1, 0), (1, 0), (0, 1)], dtype=np.int32)
NONE = -1
DECISION_VARIANTS = ("canonical", "graph", "at_mouse")
QUADRANTS = ("bottom_left", "bottom_right", "top_left", "top_right")  # code = 2 * top + right

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


# ----------------------------------------------------------------------------------------------- array helpers

def _neighbour(x: np.ndarray, move: int, fill) -> np.ndarray:
    """``out[..., r, c] = x[..., r + dr, c + dc]`` (the value one move away), ``fill`` off the grid."""
    dr, dc = (int(v) for v in DELTAS[move])
    h, w = x.shape[-2:]
    out = np.full_like(x, fill)
    out[..., max(0, -dr):h - max(0, dr), max(0, -dc):w - max(0, dc)] = \
        x[..., max(0, dr):h - max(0, -dr), max(0, dc):w - max(0, -dc)]
    return out


def _valid(squares: np.ndarray) -> np.ndarray:
    return squares[:, 0] >= 0


def gather(maps: np.ndarray, squares: np.ndarray, fill=NONE) -> np.ndarray:
    """``maps[b, row_b, col_b]`` for each level b; ``fill`` where the square is (-1, -1)."""
    squares = np.asarray(squares)
    ok = _valid(squares)
    r, c = np.clip(squares[:, 0], 0, None), np.clip(squares[:, 1], 0, None)
    return np.where(ok, maps[np.arange(len(squares)), r, c], fill)


def squares_mask(squares: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(B, H, W) bool with one True per level at its square (none for (-1, -1))."""
    squares = np.asarray(squares)
    mask = np.zeros((len(squares), *shape), dtype=bool)
    ok = _valid(squares)
    mask[np.nonzero(ok)[0], squares[ok, 0], squares[ok, 1]] = True
    return mask


def _coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
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
    active = _valid(pos)
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
    return np.where(_valid(a) & _valid(b), d, np.nan)


def taxicab(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L1 distance between squares (B, 2); NaN where either is missing."""
    d = np.abs(np.asarray(a, float) - np.asarray(b, float)).sum(axis=1)
    return np.where(_valid(a) & _valid(b), d, np.nan)


def min_distance_to_mask(squares: np.ndarray, mask: np.ndarray, metric: str = "euclid") -> np.ndarray:
    """Minimal L2 (``"euclid"``) or L1 (``"taxi"``) distance from each square to any True square of ``mask``."""
    rows, cols = _coords(mask.shape[1:])
    sq = np.asarray(squares, dtype=np.int32)
    dr, dc = rows - sq[:, 0, None, None], cols - sq[:, 1, None, None]
    d = dr * dr + dc * dc if metric == "euclid" else np.abs(dr) + np.abs(dc)  # exact ints, root taken once
    d = np.where(mask, d, np.iinfo(np.int32).max).min(axis=(1, 2)).astype(float)
    d = np.sqrt(d) if metric == "euclid" else d
    return np.where(_valid(sq) & mask.any(axis=(1, 2)), d, np.nan)


# ------------------------------------------------------------------------------------------- maze landmarks

def margins(batch: LevelBatch) -> np.ndarray:
    return (batch.walls.shape[-1] - np.asarray(batch.size)) // 2


def maze_area(batch: LevelBatch) -> np.ndarray:
    """(B, W, W) bool: the n x n inner maze inside the world."""
    rows, cols = _coords(batch.walls.shape[1:])
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
    rows, cols = _coords(batch.walls.shape[1:])
    lo = (margins(batch) + np.maximum(np.asarray(batch.size) - size, 0))[:, None, None]
    return maze_area(batch) & (rows >= lo) & (cols >= lo)


def top_right_quadrant(batch: LevelBatch) -> np.ndarray:
    """(B, W, W) bool: maze squares strictly above and right of the centre row/column."""
    rows, cols = _coords(batch.walls.shape[1:])
    centre = (margins(batch) + (np.asarray(batch.size) - 1) // 2)[:, None, None]
    return maze_area(batch) & (rows > centre) & (cols > centre)


def quadrant(batch: LevelBatch, squares: np.ndarray) -> np.ndarray:
    """Quadrant code of each square (index into QUADRANTS); NaN on the centre row/column or for a missing square."""
    centre = margins(batch) + (np.asarray(batch.size) - 1) // 2
    sq = np.asarray(squares)
    code = 2 * (sq[:, 0] > centre) + (sq[:, 1] > centre)
    on_line = (sq[:, 0] == centre) | (sq[:, 1] == centre)
    return np.where(_valid(sq) & ~on_line, code, np.nan)


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
            tr_first &= _valid(self.top_right) & _valid(branch)
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
    ds = np.where((~prefix & _valid(branch))[:, None], branch, NONE).astype(np.int32)
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
        return np.where(_valid(sq), sq[:, k] - m, np.nan)
    d_mouse_cheese = _steps_between(g.dist_mouse, cheese)
    d_mouse_ds = _steps_between(g.dist_mouse, ds)
    d_mouse_tr = _steps_between(g.dist_mouse, tr)
    has_cheese = _valid(cheese)
    quadrant_mask = top_right_quadrant(batch)
    up_right = up_right_reachable(batch.walls, mouse)
    region_all = top_right_region(batch, g.region_size)
    out = {
        "maze_size": np.asarray(batch.size, float),
        "has_cheese": has_cheese.astype(float),
        "mouse_row": inner(mouse, 0), "mouse_col": inner(mouse, 1),
        "cheese_row": inner(cheese, 0), "cheese_col": inner(cheese, 1),
        "has_decision_square": _valid(ds).astype(float),
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
