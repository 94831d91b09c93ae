"""The 64x64 procgen maze observation, bit-exact, as integer table lookups (docs/maze-spec.md §5.6).

``render_static`` draws a level without its mouse: the background, then every wall/cheese cell's grown rect in
procgen's draw order (x outer, y inner), each blended with Qt's integer SourceOver. ``composite_mouse`` blends the
mouse into such a frame. Within an episode only the mouse moves, so an env draws the static frame once per level and
composites the mouse every step: the mouse touches at most a 3x3 (hard) / 5x5 (easy) pixel window, which
``composite_mouse`` updates with a dynamic slice.

Why lookups: a pixel is covered by 1, 2 or 4 cell rects (docs/maze-spec.md §5.3), and its colour depends only on
the background and on what each covering cell draws (nothing, a wall or a cheese). So at load time we run the SourceOver
draw sequence for every (background, pixel, combination) -- 14k combinations per background -- and at run time a
frame is one gather. Everything is integer arithmetic, so it is exact on any XLA backend, jits and vmaps.
Coordinates follow :mod:`mazeagent.maze.level`: ``grid[row, col]`` with row 0 at the bottom, mouse ``(row, col)``.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mazeagent.env.tables import OBS, check_mode, load_table_arrays
from mazeagent.maze.level import CHEESE, WALL

SPRITE_CODES = (WALL, CHEESE)  # texels[0] is the wall sprite, texels[1] the cheese; draw kind = 1 + index
N_KINDS = 3  # what a covering cell draws: 0 nothing, 1 wall, 2 cheese
BLACK = 9  # canvas index of the black canvas (use_backgrounds=False)


@struct.dataclass
class RenderTables:
    """One mode's render tables as jnp arrays, derived at load time from the committed tables
    (docs/maze-spec.md §5.6).

    A pixel's covering cells are ``{first_col, second_col} x {first_row, second_row}`` of its pixel column / row
    (the second only on the bleed lines), in x-major draw order; a covering cell's draw kind (0/1/2) is digit
    ``k`` (its draw slot) of a base-3 combination number. ``draw_table[canvas * size + offset[p] + combination]``
    is the pixel's final colour, ``weights`` are the digit weights of the (first, second), (second, first) and
    (second, second) cells (0 where that cell does not cover the pixel).

    ``mouse_patch`` (2, W, W, P, P, 4) holds, for each reflection and world cell, the premultiplied mouse texels in the
    P x P window whose top-left pixel is ``(patch_top[row], patch_left[col])``; texels outside the cell have alpha 0
    and colour 0, which SourceOver leaves unchanged, so blending the whole window is exact.
    """

    draw_table: jax.Array  # (10 * size, 3) uint8
    offset: jax.Array  # (64, 64) int32
    weights: jax.Array  # (3, 64, 64) int32
    first_row: jax.Array  # (64,) int32 world row of the first covering cell of each pixel row
    second_row: jax.Array  # (64,) int32 (== first_row where only one cell covers)
    first_col: jax.Array  # (64,) int32
    second_col: jax.Array  # (64,) int32
    mouse_patch: jax.Array
    patch_top: jax.Array  # (W,) int32
    patch_left: jax.Array  # (W,) int32
    own_row: jax.Array  # (64,) int32: world row of each pixel row's exact (un-grown) cell rect
    own_col: jax.Array  # (64,) int32
    size: int = struct.field(pytree_node=False, default=0)
    world: int = struct.field(pytree_node=False, default=25)
    patch: int = struct.field(pytree_node=False, default=3)


def _source_over(dst, rgba, xp=jnp):
    """Qt SourceOver of premultiplied ``rgba`` onto opaque ``dst`` (int32): dst' = S + BYTE_MUL(dst, 255 - A)."""
    t = dst * (255 - rgba[..., 3:4].astype(xp.int32))
    return rgba[..., :3].astype(xp.int32) + ((t + (t >> 8) + 0x80) >> 8)


def _separable_cover(cover: np.ndarray, world: int):
    """Per pixel row/col the first and second covering world row/col; checks cover == their product, x-major."""
    rows = [sorted({int(k) // world for k in cover[r].ravel() if k >= 0}) for r in range(OBS)]
    cols = [sorted({int(k) % world for k in cover[:, c].ravel() if k >= 0}) for c in range(OBS)]
    for r in range(OBS):
        for c in range(OBS):
            expect = [y * world + x for x in cols[c] for y in rows[r]]
            if list(cover[r, c, :len(expect)]) != expect or (cover[r, c, len(expect):] >= 0).any():
                raise AssertionError("cell rects must cover pixels as a product of rows and cols")  # invariant
    first_row, first_col = (np.array([v[0] for v in vs], np.int32) for vs in (rows, cols))
    second_row, second_col = (np.array([v[-1] for v in vs], np.int32) for vs in (rows, cols))
    ny, nx = np.meshgrid([len(v) for v in rows], [len(v) for v in cols], indexing="ij")  # covering rows/cols
    # the slot of covering cell (x_i, y_j) is i * ny + j, so its base-3 digit weight is 3 ** (i * ny + j)
    weights = np.stack([np.where(ny == 2, N_KINDS, 0),
                        np.where(nx == 2, N_KINDS ** ny, 0),
                        np.where((nx == 2) & (ny == 2), N_KINDS ** (ny + 1), 0)]).astype(np.int32)
    return first_row, second_row, first_col, second_col, weights


def _draw_table(background: np.ndarray, cover: np.ndarray, texels: np.ndarray):
    """Final colour of every (canvas, pixel, combination of covering-cell kinds), drawn in order with SourceOver."""
    canvases = np.concatenate([background, np.zeros_like(background[:1])]).astype(np.int32).reshape(-1, OBS * OBS, 3)
    count = (cover >= 0).sum(-1).ravel()
    sizes = N_KINDS ** count
    offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    size = int(sizes.sum())
    table = np.zeros((len(canvases), size, 3), np.uint8)
    tex = texels.reshape(len(SPRITE_CODES), OBS * OBS, cover.shape[-1], 4)
    for n in np.unique(count):
        pix = np.nonzero(count == n)[0]
        combos = np.arange(N_KINDS ** n)
        digits = (combos[:, None] // N_KINDS ** np.arange(n)) % N_KINDS  # (C, n): kind drawn by slot k
        dst = np.broadcast_to(canvases[:, None, pix], (len(canvases), len(combos), len(pix), 3))
        for k in range(n):
            for s in range(len(SPRITE_CODES)):
                drawn = (digits[:, k] == s + 1)[None, :, None, None]
                dst = np.where(drawn, _source_over(dst, tex[s, pix, k][None, None], np), dst)
        table[:, offset[pix][None, :] + combos[:, None]] = dst
    return table.reshape(-1, 3), offset.reshape(OBS, OBS), size


def _mouse_patches(mouse: np.ndarray, own_row: np.ndarray, own_col: np.ndarray, world: int):
    """Cut the full-frame mouse texels into one P x P window per cell (P = widest cell), clamped inside the frame."""
    starts_r = np.array([np.nonzero(own_row == k)[0][0] for k in range(world)])
    starts_c = np.array([np.nonzero(own_col == k)[0][0] for k in range(world)])
    patch = int(max(np.bincount(own_row).max(), np.bincount(own_col).max()))
    top = np.minimum(starts_r, OBS - patch).astype(np.int32)
    left = np.minimum(starts_c, OBS - patch).astype(np.int32)
    out = np.zeros((2, world, world, patch, patch, 4), np.uint8)
    for row in range(world):
        for col in range(world):
            rs, cs = slice(top[row], top[row] + patch), slice(left[col], left[col] + patch)
            inside = (own_row[rs][:, None] == row) & (own_col[cs][None, :] == col)
            out[:, row, col] = np.where(inside[None, :, :, None], mouse[:, rs, cs], 0)
    return out, top, left, patch


@lru_cache(maxsize=None)
def load_tables(distribution_mode: str = "hard") -> RenderTables:
    """The committed tables for ``"hard"`` (25x25 world) or ``"easy"`` (15x15), as a pytree of jnp arrays."""
    world = check_mode(distribution_mode)
    t = load_table_arrays(distribution_mode)
    first_row, second_row, first_col, second_col, weights = _separable_cover(t["cover"], world)
    table, offset, size = _draw_table(t["background"], t["cover"], t["texels"])
    mouse_patch, top, left, patch = _mouse_patches(t["mouse"], t["own_row"], t["own_col"], world)
    arrays = dict(draw_table=table, offset=offset, weights=weights, first_row=first_row, second_row=second_row,
                  first_col=first_col, second_col=second_col, mouse_patch=mouse_patch, patch_top=top,
                  patch_left=left, own_row=t["own_row"], own_col=t["own_col"])
    return RenderTables(**{k: jnp.asarray(v) for k, v in arrays.items()}, size=size, world=world, patch=patch)


def render_static(grid: jax.Array, background: jax.Array, tables: RenderTables,
                  use_backgrounds: bool = True) -> jax.Array:
    """The level's frame without the mouse: uint8 (64, 64, 3).

    ``grid`` is the (W, W) procgen-code world grid ``[row, col]`` (row 0 = bottom); ``background`` the index 0..8.
    ``use_backgrounds=False`` draws on black as ``ProcgenGym3Env(use_backgrounds=False)`` does (a Python bool:
    it is static under jit). Cells are drawn in procgen's order (x outer, y inner), each blended with Qt's integer
    SourceOver (docs/maze-spec.md §5.4), through the precomputed draw table.
    """
    grid = jnp.asarray(grid)
    if grid.shape != (tables.world, tables.world):
        raise ValueError(f"grid must be ({tables.world}, {tables.world}) for these tables, got {grid.shape}")
    if not isinstance(use_backgrounds, (bool, np.bool_)):
        raise ValueError(f"use_backgrounds must be a Python bool (static under jit), got {use_backgrounds!r}")
    kind = jnp.where(grid == SPRITE_CODES[0], 1, jnp.where(grid == SPRITE_CODES[1], 2, 0))
    r1, r2, c1, c2 = tables.first_row, tables.second_row, tables.first_col, tables.second_col
    rows1, rows2 = kind[r1], kind[r2]
    combination = (rows1[:, c1] + tables.weights[0] * rows2[:, c1] + tables.weights[1] * rows1[:, c2]
                   + tables.weights[2] * rows2[:, c2])
    canvas = jnp.asarray(background, jnp.int32) if use_backgrounds else BLACK
    return tables.draw_table[canvas * tables.size + tables.offset + combination]


def composite_mouse(frame: jax.Array, mouse: jax.Array, reflected: jax.Array, tables: RenderTables) -> jax.Array:
    """Blend the mouse at world ``(row, col)`` into a static frame; ``reflected``: facing right (after RIGHT)."""
    row, col = mouse[0], mouse[1]
    top, left = tables.patch_top[row], tables.patch_left[col]
    size = (tables.patch, tables.patch, 3)
    window = jax.lax.dynamic_slice(frame, (top, left, 0), size).astype(jnp.int32)
    texels = tables.mouse_patch[jnp.asarray(reflected).astype(jnp.int32), row, col]
    blended = _source_over(window, texels).astype(jnp.uint8)
    return jax.lax.dynamic_update_slice(frame, blended, (top, left, 0))


def render(grid: jax.Array, mouse: jax.Array, reflected: jax.Array, background: jax.Array,
           tables: RenderTables, use_backgrounds: bool = True) -> jax.Array:
    """The full observation procgen shows: uint8 (64, 64, 3), row 0 at the top, RGB."""
    return composite_mouse(render_static(grid, background, tables, use_backgrounds), mouse, reflected, tables)


def human_view(obs, scale: int = 8):
    """Integer nearest-neighbour upscale of one or more observations (..., 64, 64, 3) for pictures and videos.

    Pixel-exact (each observation pixel becomes a ``scale x scale`` block), unlike procgen's antialiased 512x512
    ``rgb`` render; numpy in gives numpy out.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    xp = np if isinstance(obs, np.ndarray) else jnp
    obs = xp.asarray(obs)
    if obs.ndim < 3 or obs.shape[-3:] != (OBS, OBS, 3):
        raise ValueError(f"expected observations of shape (..., {OBS}, {OBS}, 3), got {obs.shape}")
    return xp.repeat(xp.repeat(obs, scale, axis=-3), scale, axis=-2)


__all__ = ["RenderTables", "load_tables", "render_static", "composite_mouse", "render", "human_view"]
