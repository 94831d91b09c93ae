"""The 64x64 procgen maze observation, bit-exact, as int32 gathers and selects (spec §3.8).

``render_static`` draws a level without its mouse (background, then every wall/cheese cell in procgen's draw order,
blended with Qt's integer SourceOver); ``composite_mouse`` blends the mouse into such a frame. Within an episode only
the mouse moves, so an env renders the static frame once per level and composites the mouse every step: the mouse
touches at most a 3x3 (hard) / 5x5 (easy) pixel window, which ``composite_mouse`` updates with a dynamic slice.

Everything is pure JAX on integer arrays, so it is exact on any XLA backend and can be jitted and vmapped.
Coordinates follow :mod:`mazeagent.maze.level`: ``grid[row, col]`` with row 0 at the bottom, mouse ``(row, col)``.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mazeagent.env.tables import OBS, WORLD_DIM, check_mode, load_table_arrays
from mazeagent.maze.level import CHEESE, WALL

SPRITE_CODES = (WALL, CHEESE)  # texels[0] is the wall sprite, texels[1] the cheese


@struct.dataclass
class RenderTables:
    """One mode's render tables as jnp arrays, derived at load time from the committed spec-form tables.

    The drawing is split to keep the per-frame work small:

    * ``layer0`` (10, 3, 64, 64, 3) uint8: for each background (index 9 = black, i.e. ``use_backgrounds=False``) the
      canvas after the *first* covering cell of every pixel drew nothing / a wall / a cheese. Every pixel's first
      covering cell is ``(first_row[r], first_col[c])`` (draw order is separable), so drawing it is a select.
    * The grown rects of a few cells bleed one pixel line into a neighbour (hard: pixel rows/cols 20 and 43; spec
      §3.3). A pixel column is covered by at most two cell columns (first, second) and likewise for rows, and the
      draw order (x outer, y inner) makes the covering cells of a pixel (first, first), (second row), (second col),
      (both second). So after layer 0 we blend the bleed rows, then the bleed columns, then their crossings, with
      the premultiplied (wall, cheese) texels of those cells, at run time.
    * ``mouse_patch`` (2, W, W, P, P, 4) holds, for each reflection and world cell, the mouse texels inside the P x P
      window whose top-left pixel is ``(patch_top[row], patch_left[col])``; texels outside the cell have alpha 0 and
      colour 0, which SourceOver leaves unchanged, so pasting the whole window is exact.
    """

    layer0: jax.Array
    first_row: jax.Array  # (64,) int32
    first_col: jax.Array  # (64,) int32
    second_row: jax.Array  # (len(bleed_rows),) int32: the second covering world row of each bleed pixel row
    second_col: jax.Array  # (len(bleed_cols),) int32
    row_texels: jax.Array  # (2, len(bleed_rows), 64, 4) uint8: cell (second_row, first_col) on the bleed rows
    col_texels: jax.Array  # (2, 64, len(bleed_cols), 4) uint8: cell (first_row, second_col) on the bleed cols
    cross_texels: jax.Array  # (2, len(bleed_rows), len(bleed_cols), 4) uint8: cell (second_row, second_col)
    mouse_patch: jax.Array
    patch_top: jax.Array  # (W,) int32
    patch_left: jax.Array  # (W,) int32
    own_row: jax.Array  # (64,) int32: world row of each pixel row's exact cell rect
    own_col: jax.Array  # (64,) int32
    bleed_rows: tuple[int, ...] = struct.field(pytree_node=False, default=())
    bleed_cols: tuple[int, ...] = struct.field(pytree_node=False, default=())
    world: int = struct.field(pytree_node=False, default=25)
    patch: int = struct.field(pytree_node=False, default=3)


BLACK = 9  # layer0 index of the black canvas (use_backgrounds=False)


def _source_over(dst, rgba, xp=jnp):
    """Qt SourceOver of premultiplied ``rgba`` onto opaque ``dst`` (int32): dst' = S + BYTE_MUL(dst, 255 - A)."""
    t = dst * (255 - rgba[..., 3:4].astype(xp.int32))
    return rgba[..., :3].astype(xp.int32) + ((t + (t >> 8) + 0x80) >> 8)


def _layer0(background: np.ndarray, cover: np.ndarray, texels: np.ndarray) -> np.ndarray:
    canvases = np.concatenate([background, np.zeros_like(background[:1])]).astype(np.int32)  # (10, 64, 64, 3)
    out = [canvases] + [_source_over(canvases, texels[s, :, :, 0][None], np) for s in range(len(SPRITE_CODES))]
    if (cover[:, :, 0] < 0).any():
        raise AssertionError("every pixel must be covered by some cell rect")  # geometry invariant
    return np.stack(out, axis=1).astype(np.uint8)


def _bleed_lines(cover: np.ndarray, texels: np.ndarray, world: int):
    """Split the later cover slots into bleed rows, bleed columns and their crossings (checks the structure)."""
    count = (cover >= 0).sum(-1)
    rows = np.nonzero((count > 1).all(axis=1))[0]
    cols = np.nonzero((count > 1).all(axis=0))[0]
    expect = np.ones_like(count)
    expect[rows] += 1
    expect[:, cols] += 1
    expect[np.ix_(rows, cols)] = 4
    if not np.array_equal(count, expect):
        raise AssertionError("cover slots beyond the first must form whole pixel lines")  # geometry invariant
    plain_row, plain_col = np.setdiff1d(np.arange(OBS), rows)[0], np.setdiff1d(np.arange(OBS), cols)[0]
    second_row = cover[rows, plain_col, 1] // world
    second_col = cover[plain_row, cols, 1] % world
    row_tex = texels[:, rows][:, :, :, 1]  # slot 1 everywhere on a bleed row (crossings too: (first col, second row))
    col_tex = texels[:, :, cols, 1].copy()  # slot 1 off the crossings, slot 2 on them
    col_tex[:, rows] = texels[:, rows][:, :, cols, 2]
    cross_tex = texels[:, rows][:, :, cols, 3]
    return (rows, cols, second_row.astype(np.int32), second_col.astype(np.int32),
            row_tex.astype(np.uint8), col_tex.astype(np.uint8), cross_tex.astype(np.uint8))


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
    cover = t["cover"]
    rows, cols, second_row, second_col, row_tex, col_tex, cross_tex = _bleed_lines(cover, t["texels"], world)
    mouse_patch, top, left, patch = _mouse_patches(t["mouse"], t["own_row"], t["own_col"], world)
    return RenderTables(
        layer0=jnp.asarray(_layer0(t["background"], cover, t["texels"])),
        first_row=jnp.asarray(cover[:, 0, 0] // world), first_col=jnp.asarray(cover[0, :, 0] % world),
        second_row=jnp.asarray(second_row), second_col=jnp.asarray(second_col), row_texels=jnp.asarray(row_tex),
        col_texels=jnp.asarray(col_tex), cross_texels=jnp.asarray(cross_tex),
        bleed_rows=tuple(int(r) for r in rows), bleed_cols=tuple(int(c) for c in cols),
        mouse_patch=jnp.asarray(mouse_patch), patch_top=jnp.asarray(top), patch_left=jnp.asarray(left),
        own_row=jnp.asarray(t["own_row"]), own_col=jnp.asarray(t["own_col"]), world=world, patch=patch)


def render_static(grid: jax.Array, background: jax.Array, tables: RenderTables,
                  use_backgrounds: bool = True) -> jax.Array:
    """The level's frame without the mouse: uint8 (64, 64, 3).

    ``grid`` is the (W, W) procgen-code world grid ``[row, col]`` (row 0 = bottom); ``background`` the index 0..8.
    ``use_backgrounds=False`` draws on black as ``ProcgenGym3Env(use_backgrounds=False)`` does.
    Cells are drawn in procgen's order (x outer, y inner), each blended with Qt's integer SourceOver (spec §3.8).
    """
    grid = jnp.asarray(grid)
    if grid.shape != (tables.world, tables.world):
        raise ValueError(f"grid must be ({tables.world}, {tables.world}) for these tables, got {grid.shape}")
    canvas = tables.layer0[background if use_backgrounds else BLACK]  # (3, 64, 64, 3)
    code = grid[tables.first_row][:, tables.first_col][..., None]
    dst = jnp.where(code == SPRITE_CODES[0], canvas[1], jnp.where(code == SPRITE_CODES[1], canvas[2], canvas[0]))
    rows, cols = tables.bleed_rows, tables.bleed_cols
    grid_rows = grid[tables.second_row]  # (n_rows, W)
    drawn = _draw(jnp.stack([dst[r] for r in rows]), grid_rows[:, tables.first_col], tables.row_texels)
    for i, r in enumerate(rows):
        dst = dst.at[r].set(drawn[i])
    drawn = _draw(jnp.stack([dst[:, c] for c in cols], axis=1), grid[tables.first_row][:, tables.second_col],
                  tables.col_texels)
    for j, c in enumerate(cols):
        dst = dst.at[:, c].set(drawn[:, j])
    under = jnp.stack([jnp.stack([dst[r, c] for c in cols]) for r in rows])
    drawn = _draw(under, grid_rows[:, tables.second_col], tables.cross_texels)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            dst = dst.at[r, c].set(drawn[i, j])
    return dst


def _draw(under: jax.Array, code: jax.Array, texels: jax.Array) -> jax.Array:
    """Draw the cells with procgen codes ``code`` over ``under`` (uint8) with per-pixel (wall, cheese) texels."""
    code = code[..., None]
    rgba = jnp.where(code == SPRITE_CODES[0], texels[0], texels[1])
    drawn = (code == SPRITE_CODES[0]) | (code == SPRITE_CODES[1])
    return jnp.where(drawn, _source_over(under.astype(jnp.int32), rgba), under).astype(jnp.uint8)


def composite_mouse(frame: jax.Array, mouse: jax.Array, reflected: jax.Array, tables: RenderTables) -> jax.Array:
    """Blend the mouse at world ``(row, col)`` into a static frame; ``reflected`` = facing right (after a RIGHT move)."""
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


__all__ = ["RenderTables", "load_tables", "render_static", "composite_mouse", "render", "human_view", "WORLD_DIM"]
