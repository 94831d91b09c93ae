"""procgen 0.10.7 ``maze`` level generation in JAX, bit-exact (docs/maze-spec.md §1.3-§3), plus the level-seed
streams of docs/maze-spec.md §1.2.

One level = one ``std::mt19937(level_seed)`` stream: draw 1 is ``bg_pct_x`` (no visible effect), draw 2 the
background, draw 3 the maze size, then one draw per Kruskal wall, then the cheese. Kruskal runs with fixed shapes:
a masked "k-th remaining wall" (``vector::erase`` keeps order), closed-form wall endpoints and room relabelling, so a
level is a ``fori_loop`` of static length that jits and vmaps.

Conventions are :mod:`mazeagent.maze.level`'s: grids are ``[row=y, col=x]`` world arrays, row 0 at the bottom.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mazeagent.env import mt19937 as mt
from mazeagent.maze.level import CHEESE, SPACE, WALL, Level, LevelBatch

WORLD_DIMS = {"hard": 25, "easy": 15}
N_BACKGROUNDS = 9
INT32_MAX = 2**31 - 1


def world_dim(distribution_mode: str) -> int:
    """procgen's ``world_dim`` for a distribution mode (hard 25, easy 15)."""
    if distribution_mode not in WORLD_DIMS:
        raise ValueError(f"distribution_mode must be one of {sorted(WORLD_DIMS)}, got {distribution_mode!r} "
                         "(memory/exploration modes are not modelled)")
    return WORLD_DIMS[distribution_mode]


def check_rand_region(rand_region: int | None) -> int | None:
    """None (stock cheese) or an int >= 0 (procgenAISC rule; values above the maze size act like the size)."""
    if rand_region is None:
        return None
    if isinstance(rand_region, bool) or not isinstance(rand_region, (int, np.integer)):
        raise ValueError(f"rand_region must be None or an int in [0, 25], got {rand_region!r}")
    if not 0 <= int(rand_region) <= 25:
        raise ValueError(f"rand_region must be in [0, 25] (0 = cheese in the top-right corner), got {rand_region}")
    return int(rand_region)


def _size_from_draw(x: jax.Array, W: int) -> jax.Array:
    """procgen's maze size from its draw: an odd n in [3, W]."""
    return mt.randn(x, (W - 1) // 2) * 2 + 3


def maze_size_of_seed(seed: jax.Array, W: int) -> jax.Array:
    """The maze size ``n`` a level seed generates, without generating the level: procgen draws it third from the
    level's generator (after two other draws), so one twist of the seeded state tells (jittable, vmappable)."""
    return _size_from_draw(mt.temper(mt.twist(mt.seed_state(jnp.asarray(seed)))[:3])[2], W)


@functools.lru_cache(maxsize=None)
def _sizes_fn(W: int):
    return jax.jit(jax.vmap(lambda s: maze_size_of_seed(s, W)))


def maze_sizes(seeds, W: int, chunk: int = 4096) -> np.ndarray:
    """Maze sizes of many level seeds on the host (cheap: no level is generated)."""
    parts = _in_chunks(_sizes_fn(W), as_seed_array(seeds), chunk)
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def check_max_maze_size(max_maze_size: int | None, W: int) -> int | None:
    """None (procgen's sizes) or an odd int in [3, W]: levels whose maze is larger are skipped (not procgen)."""
    if max_maze_size is None:
        return None
    if (isinstance(max_maze_size, bool) or not isinstance(max_maze_size, (int, np.integer))
            or not 3 <= int(max_maze_size) <= W or int(max_maze_size) % 2 == 0):
        raise ValueError(f"max_maze_size must be None or an odd int in [3, {W}] (procgen maze sizes are 3, 5, ..., "
                         f"{W} in this mode), got {max_maze_size!r}")
    return int(max_maze_size)


@struct.dataclass
class GeneratedLevels:
    """Levels as arrays (one level, or a batch along a leading axis). JAX arrays inside jit, numpy from
    :func:`generate_batch`. Squares are world ``(row, col)``; ``cheese`` is ``(-1, -1)`` when a level has none."""

    grid: jax.Array  # (..., W, W) int32 procgen codes
    size: jax.Array  # (...,) int32 maze_dim
    background: jax.Array  # (...,) int32 background_index
    mouse: jax.Array  # (..., 2) int32
    cheese: jax.Array  # (..., 2) int32
    seed: jax.Array  # (...,) int32 level seed

    def __len__(self) -> int:
        return int(np.shape(self.size)[0])

    def levels(self) -> list[Level]:
        """The batch as :class:`Level` values (hard mode only: ``Level`` lives in the 25x25 world)."""
        if np.shape(self.grid)[-1] != 25:
            raise ValueError("Level values are hard-mode (25x25 world); these levels are easy-mode (15x15)")
        grid, size, mouse, seed = (np.asarray(a) for a in (self.grid, self.size, self.mouse, self.seed))
        return [Level.from_world(grid[i], int(size[i]), (int(mouse[i, 0]), int(mouse[i, 1])), seed=int(seed[i]))
                for i in range(len(self))]

    def batch(self) -> LevelBatch:
        if np.shape(self.grid)[-1] != 25:
            raise ValueError("LevelBatch is hard-mode (25x25 world); these levels are easy-mode (15x15)")
        return LevelBatch(walls=np.asarray(self.grid) == WALL, size=np.asarray(self.size, np.int32),
                          mouse=np.asarray(self.mouse, np.int32), cheese=np.asarray(self.cheese, np.int32))


def _kth_set_bit(words: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Position of the k-th (0-based) set bit of a bitset of uint32 words: ``(bit index, word, bit in word)``.
    A popcount prefix over the words, then a 5-step binary search inside the word: O(words) instead of the
    O(walls) cumsum/shift of a plain remaining-wall list."""
    u32 = jnp.uint32
    count = jax.lax.population_count(words).astype(jnp.int32)
    w = jnp.sum(jnp.cumsum(count) <= k).astype(jnp.int32)
    lane = jnp.arange(words.shape[0])
    k = k - jnp.sum(jnp.where(lane < w, count, 0))
    word = jnp.sum(jnp.where(lane == w, words, u32(0)), dtype=u32)
    pos = jnp.int32(0)
    for width in (16, 8, 4, 2, 1):
        low = jax.lax.population_count(word & u32((1 << width) - 1)).astype(jnp.int32)
        up = k >= low
        k, word, pos = jnp.where(up, k - low, k), jnp.where(up, word >> u32(width), word), pos + width * up
    return w * 32 + pos, w, pos


@functools.lru_cache(maxsize=None)
def _wall_rooms(W: int) -> tuple[np.ndarray, np.ndarray]:
    """Rooms ``(a, b)`` joined by wall ``idx`` for each maze of ``c = 2..C`` rooms a side (rows ``c - 2``), room id
    ``(x//2)*C + y//2``; a lookup instead of integer divisions in the Kruskal loop. Padding walls map to room 0."""
    C = (W + 1) // 2
    max_walls = 2 * C * (C - 1)
    a = np.zeros((C - 1, max_walls), np.int32)
    b = np.zeros((C - 1, max_walls), np.int32)
    for c in range(2, C + 1):
        h = (c - 1) * c
        idx = np.arange(2 * c * (c - 1))
        v = idx - h
        ra = np.where(idx < h, (idx // c) * C + idx % c, (v // max(c - 1, 1)) * C + v % max(c - 1, 1))
        a[c - 2, :len(idx)] = ra
        b[c - 2, :len(idx)] = ra + np.where(idx < h, C, 1)
    return a, b


def _kruskal(outputs: jax.Array, n: jax.Array, W: int):
    """procgen's ``MazeGen::generate_maze`` on an n x n maze.

    Returns ``(free, n_free, n_walls)``: the free cells (local ids ``y*W + x``, -1 padded) in the order procgen
    appends them to ``free_cells``, their count, and the number of walls (= Kruskal draws). The loop carries only
    the remaining walls (a bitset: ``vector::erase`` keeps order, so "k-th remaining" is the k-th set bit) and the
    room labels (uint8; relabelling is the only per-room pass), and emits (wall, merged?) per step. The free list
    is rebuilt afterwards: a merge at step t appends room ``a`` (if freed for the first time), the midpoint, then
    room ``b`` (likewise). Wall ``idx``'s rooms come from a per-size table (the closed form of docs/maze-spec.md
    §2.3: the first ``(c-1)c`` walls are horizontal links, the rest vertical). On CPU, XLA runs these per-level
    scalar ops unvectorised, so every op in the loop counts; a sort-based rebuild of the free list cost more than the
    whole loop.
    """
    C = (W + 1) // 2
    max_walls = 2 * C * (C - 1)
    n_words = -(-max_walls // 32)
    c = (n + 1) // 2
    n_walls = 2 * c * (c - 1)
    rooms = jnp.arange(C * C, dtype=jnp.uint8)  # C*C <= 169 rooms fit uint8 labels
    lane = jnp.arange(n_words)
    bit = jnp.arange(n_words * 32).reshape(n_words, 32)
    remaining = jnp.sum(jnp.where(bit < n_walls, jnp.uint32(1) << (bit % 32).astype(jnp.uint32), 0),
                        axis=1, dtype=jnp.uint32)

    room_a, room_b = (jnp.asarray(t)[c - 2] for t in _wall_rooms(W))

    def rooms_of(idx):
        return room_a[idx], room_b[idx]

    def body(carry, tk):
        remaining, label = carry
        t, k = tk
        idx, w, pos = _kth_set_bit(remaining, k)
        active = t < n_walls
        remaining = jnp.where((lane == w) & active, remaining ^ (jnp.uint32(1) << pos.astype(jnp.uint32)), remaining)
        ra, rb = rooms_of(idx)
        la, lb = label[ra], label[rb]
        merge = active & (la != lb)
        label = jnp.where(merge & (label == la), lb, label)
        return (remaining, label), (idx, merge)

    ts = jnp.arange(max_walls)
    ks = mt.randn(jax.lax.dynamic_slice(outputs, (3,), (max_walls,)), jnp.maximum(n_walls - ts, 1))
    _, (idx, merge) = jax.lax.scan(body, (remaining, rooms), (ts, ks))
    ra, rb = rooms_of(idx)
    first = jnp.full(C * C, max_walls).at[ra].min(jnp.where(merge, ts, max_walls))
    first = first.at[rb].min(jnp.where(merge, ts, max_walls))  # step at which each room was first freed
    cell = lambda r: 2 * (r % C) * W + 2 * (r // C)  # noqa: E731  (room id -> local id y*W + x)
    ca, cb = cell(ra), cell(rb)
    # what step t appends to free_cells, in order: a (if new), the midpoint, b (if new); -1 = nothing
    appended = jnp.stack([jnp.where(merge & (first[ra] == ts), ca, -1), jnp.where(merge, (ca + cb) // 2, -1),
                          jnp.where(merge & (first[rb] == ts), cb, -1)], axis=1).reshape(-1)
    ok = appended >= 0
    slot = jnp.where(ok, jnp.cumsum(ok) - 1, 2 * C * C)
    free = jnp.full(2 * C * C, -1, jnp.int32).at[slot].set(appended, mode="drop")
    return free, jnp.sum(ok, dtype=jnp.int32), n_walls


def _place_stock(s: mt.MTStream, free: jax.Array, n_free: jax.Array) -> jax.Array:
    """``place_objects(GOAL, 1)``: uniform over the free list, rejecting the start cell (local id 0)."""
    def draw_cell(s):
        x, s = mt.draw(s)
        return free[mt.randn(x, n_free)], s

    cell, s = draw_cell(s)
    cell, _ = jax.lax.while_loop(lambda c: c[0] <= 0, lambda c: draw_cell(c[1]), (cell, s))
    return cell


def _place_aisc(s: mt.MTStream, free, n_free, n, W: int, rand_region: int) -> jax.Array:
    """procgenAISC ``deterministic_place``: one discarded draw, then up to n*100 tries for a free cell in the
    top-right ``rr x rr`` block (rr = min(rand_region, n)); -1 when every try fails (level without cheese)."""
    if rand_region == 0:
        return (n - 1) * W + (n - 1)
    rr = jnp.minimum(rand_region, n)
    _, s = mt.draw(s)

    def body(carry):
        tries, _, s = carry
        x, s = mt.draw(s)
        cand = free[mt.randn(x, n_free)]
        ok = (cand > 0) & (cand % W >= n - rr) & (cand // W >= n - rr)
        return tries + 1, jnp.where(ok, cand, -1), s

    def cond(carry):
        tries, cell, _ = carry
        return (cell < 0) & (tries < n * 100)

    _, cell, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.int32(-1), s))
    return cell


def generate_level(seed: jax.Array, W: int = 25, rand_region: int | None = None) -> GeneratedLevels:
    """One level from its seed (jittable; vmap over ``seed``). ``W`` and ``rand_region`` are static."""
    seed = jnp.asarray(seed)
    state = mt.twist(mt.seed_state(seed))
    outputs = mt.temper(state)
    background = mt.randn(outputs[1], N_BACKGROUNDS)
    n = _size_from_draw(outputs[2], W)
    free, n_free, n_walls = _kruskal(outputs, n, W)
    s = mt.MTStream(mt=state, idx=3 + n_walls)
    if rand_region is None:
        cell = _place_stock(s, free, n_free)
    else:
        cell = _place_aisc(s, free, n_free, n, W, rand_region)
    margin = (W - n) // 2
    rows, cols = jnp.mgrid[0:W, 0:W]
    ly, lx = rows - margin, cols - margin
    inside = (ly >= 0) & (ly < n) & (lx >= 0) & (lx < n)
    local = jnp.where(inside, ly * W + lx, 0)
    is_free = jnp.zeros(W * W, bool).at[jnp.where(free >= 0, free, W * W)].set(True, mode="drop")
    grid = jnp.where(inside & is_free[local], SPACE, WALL)
    grid = jnp.where(inside & (local == cell), CHEESE, grid).astype(jnp.int32)
    cheese = jnp.where(cell >= 0, jnp.stack([cell // W + margin, cell % W + margin]), -1)
    return GeneratedLevels(grid=grid, size=n, background=background, mouse=jnp.stack([margin, margin]),
                           cheese=cheese.astype(jnp.int32), seed=seed.astype(jnp.int32))


@functools.lru_cache(maxsize=None)
def _batched(W: int, rand_region: int | None):
    return jax.jit(jax.vmap(functools.partial(generate_level, W=W, rand_region=rand_region)))


def as_seed_array(seeds) -> np.ndarray:
    """Level seeds as int32 (procgen's level seeds are ints; ``seed(int)`` reinterprets them as uint32)."""
    arr = np.asarray(seeds)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seeds must be a 1-D array of ints, got dtype {arr.dtype} and shape {arr.shape}")
    if arr.size and (arr.min() < -(2**31) or arr.max() > INT32_MAX):
        raise ValueError("level seeds must fit in int32 (procgen stores them as int)")
    return arr.astype(np.int32)


def generate_batch(seeds: np.ndarray, rand_region: int | None = None, distribution_mode: str = "hard",
                   chunk: int = 256, progress: bool | None = None) -> GeneratedLevels:
    """Levels for many seeds on the host (numpy fields). Seeds go through the jitted generator in fixed-size
    padded chunks, so any batch size reuses one compiled program per (mode, rand_region). A progress bar shows
    for more than 8 chunks unless ``progress`` says otherwise."""
    W = world_dim(distribution_mode)
    rand_region = check_rand_region(rand_region)
    seeds = as_seed_array(seeds)
    n_chunks = -(-len(seeds) // chunk)
    parts = _in_chunks(_batched(W, rand_region), seeds, chunk, n_chunks > 8 if progress is None else progress)
    if not parts:
        return GeneratedLevels(grid=np.zeros((0, W, W), np.int32), size=np.zeros(0, np.int32),
                               background=np.zeros(0, np.int32), mouse=np.zeros((0, 2), np.int32),
                               cheese=np.zeros((0, 2), np.int32), seed=np.zeros(0, np.int32))
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def _in_chunks(fn, seeds: np.ndarray, chunk: int, progress: bool = False) -> list:
    """``fn`` (jitted, over a seed array) on fixed-size zero-padded chunks of ``seeds``, so any count reuses one
    compiled program; each chunk's outputs (a pytree) come back as numpy, cut to its real seeds."""
    from tqdm import tqdm

    parts = []
    for start in tqdm(range(0, len(seeds), chunk), desc="levels", unit="chunk", leave=False, disable=not progress):
        part = seeds[start:start + chunk]
        out = fn(jnp.asarray(np.pad(part, (0, chunk - len(part)))))
        parts.append(jax.tree.map(lambda a, k=len(part): np.asarray(a)[:k], out))
    return parts


# ---- which level seed each env plays (docs/maze-spec.md §1.2) ----

def seed_range(num_levels: int = 0, start_level: int = 0) -> tuple[int, int]:
    """procgen's ``[level_seed_low, level_seed_high)``: all int31 seeds when ``num_levels == 0``."""
    for name, v in (("num_levels", num_levels), ("start_level", start_level)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    if num_levels == 0:
        return 0, INT32_MAX
    if start_level + num_levels > INT32_MAX:
        raise ValueError(f"start_level + num_levels must be <= {INT32_MAX}, got {start_level + num_levels}")
    return int(start_level), int(start_level + num_levels)


def check_rand_seed(rand_seed: int) -> int:
    if isinstance(rand_seed, bool) or not isinstance(rand_seed, (int, np.integer)) or not 0 <= rand_seed <= INT32_MAX:
        raise ValueError(f"rand_seed must be an int in [0, {INT32_MAX}] (as ProcgenGym3Env takes it), "
                         f"got {rand_seed!r}")
    return int(rand_seed)


def env_seed_words(rand_seed: int, num_envs: int) -> np.ndarray:
    """The uint32 seed of each env's ``level_seed_rand_gen``: the first outputs of ``mt19937(rand_seed)``."""
    return mt.np_outputs(check_rand_seed(rand_seed), num_envs)


def procgen_level_seeds(rand_seed: int, num_envs: int, num_resets: int, num_levels: int = 0,
                        start_level: int = 0) -> np.ndarray:
    """(num_envs, num_resets) int32: the level seed env n of ``ProcgenGym3Env(num=num_envs, rand_seed=...)``
    plays on its k-th level (k = 0 at construction)."""
    low, high = seed_range(num_levels, start_level)
    if num_envs < 0 or num_resets < 0:
        raise ValueError(f"num_envs and num_resets must be >= 0, got {num_envs}, {num_resets}")
    words = env_seed_words(rand_seed, num_envs)
    out = np.empty((num_envs, num_resets), np.int64)
    for i, w in enumerate(words):
        out[i] = low + mt.np_outputs(int(w), num_resets) % np.uint32(high - low)
    return out.astype(np.int32)
