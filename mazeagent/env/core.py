"""The maze env as pure functions over a ``flax.struct`` state (gymnax style), bit-exact with procgen 0.10.7
(docs/maze-spec.md §4).

``reset(key, params) -> (obs, state)`` and ``step(key, state, action, params) -> (obs, state, reward, done, info)``
for ONE env. Episodes end on the cheese (reward 10) or at ``timeout``; ``step`` then auto-resets to the env's next
level seed, like gym3: the returned obs is the first frame of the new level and ``done`` plays gym3's ``first``.
This single-env step generates the next level inside a ``lax.cond``, which under ``vmap`` runs on every step; for
many envs use :func:`mazeagent.env.vec.make_vec_env`, which keeps level generation off the per-step path.

Squares follow :mod:`mazeagent.maze.level`: ``grid[row, col]`` with row = y pointing up; ``mouse`` is world
``(row, col)``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mazeagent.env import levelgen
from mazeagent.env import mt19937 as mt
from mazeagent.maze.level import CHEESE, NUM_ACTIONS, TIMEOUT, WALL, WORLD, Level, inner_to_world

CHEESE_REWARD = 10.0
MAX_SIZE_SCAN = 100_000  # a fixed level set up to this many seeds is checked to hold a small-enough maze


@struct.dataclass
class EnvParams:
    """Static env options (hashable; pass as a static arg). Validated on creation with a clear ``ValueError``.

    ``rand_region``: None = stock procgen ``maze`` cheese; r in 0..25 = procgenAISC ``maze_aisc`` (cheese in the
    top-right r x r block; 0 = exactly the top-right corner). ``num_levels=0`` = all int31 level seeds, else
    ``[start_level, start_level + num_levels)`` as in ``ProcgenGym3Env``. ``max_maze_size`` (not procgen; None =
    procgen): an odd n skips the level seeds whose maze would be larger, so envs play procgen's own levels, only
    the small ones -- a cheap curriculum for CPU training tests. With it set, the level sequence no longer
    replays ``ProcgenGym3Env``'s.
    """

    distribution_mode: str = struct.field(pytree_node=False, default="hard")
    rand_region: int | None = struct.field(pytree_node=False, default=None)
    num_levels: int = struct.field(pytree_node=False, default=0)
    start_level: int = struct.field(pytree_node=False, default=0)
    timeout: int = struct.field(pytree_node=False, default=TIMEOUT)
    use_backgrounds: bool = struct.field(pytree_node=False, default=True)
    max_maze_size: int | None = struct.field(pytree_node=False, default=None)

    def __post_init__(self) -> None:
        W = levelgen.world_dim(self.distribution_mode)
        levelgen.check_rand_region(self.rand_region)
        levelgen.seed_range(self.num_levels, self.start_level)
        levelgen.check_max_maze_size(self.max_maze_size, W)
        if self.max_maze_size is not None and 0 < self.num_levels <= MAX_SIZE_SCAN:
            seeds = np.arange(self.start_level, self.start_level + self.num_levels, dtype=np.int64)
            if not (levelgen.maze_sizes(seeds, W) <= self.max_maze_size).any():
                raise ValueError(f"none of the {self.num_levels} levels from start_level={self.start_level} has a "
                                 f"maze of size <= max_maze_size={self.max_maze_size}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, np.integer)) or self.timeout < 1:
            raise ValueError(f"timeout must be an int >= 1 (procgen's maze uses {TIMEOUT}), "
                             f"got {self.timeout!r}")
        if not isinstance(self.use_backgrounds, (bool, np.bool_)):
            raise ValueError(f"use_backgrounds must be a bool, got {self.use_backgrounds!r}")

    @property
    def world_dim(self) -> int:
        return levelgen.world_dim(self.distribution_mode)

    @property
    def seed_range(self) -> tuple[int, int]:
        return levelgen.seed_range(self.num_levels, self.start_level)


@struct.dataclass
class EnvState:
    """One env. ``seeds`` is the env's ``level_seed_rand_gen``: its next draw picks the next level."""

    grid: jax.Array  # (W, W) int32 procgen codes, [row, col] world
    mouse: jax.Array  # (2,) int32 world (row, col)
    reflected: jax.Array  # bool, True = facing right (after a RIGHT move)
    background: jax.Array  # int32 0..8
    maze_size: jax.Array  # int32 n
    level_seed: jax.Array  # int32 (-1 for a level not made from a seed)
    time: jax.Array  # int32 steps taken in this episode
    seeds: mt.MTStream


def render_tables(params: EnvParams):
    """The renderer's tables for ``params``, built concretely even when first asked for inside a trace (they are
    cached, so a traced first build would leak tracers into later calls)."""
    from mazeagent.env.render import load_tables
    with jax.ensure_compile_time_eval():
        return load_tables(params.distribution_mode)


def observe(state: EnvState, params: EnvParams) -> jax.Array:
    """The uint8 (64, 64, 3) frame procgen shows for this state."""
    from mazeagent.env.render import render
    return render(state.grid, state.mouse, state.reflected, state.background, render_tables(params),
                  use_backgrounds=params.use_backgrounds)


def next_level_seed(seeds: mt.MTStream, params: EnvParams) -> tuple[jax.Array, mt.MTStream]:
    """``RandGen::randint(low, high)`` on the env's level-seed generator; with ``max_maze_size``, the first such
    seed whose maze is small enough (a rejection loop: ~2-12 draws, only when a level is generated)."""
    low, high = params.seed_range

    def draw(s: mt.MTStream) -> tuple[jax.Array, mt.MTStream]:
        x, s = mt.draw(s)
        return (jnp.int32(low) + mt.randn(x, high - low)).astype(jnp.int32), s

    first = draw(seeds)
    if params.max_maze_size is None:
        return first
    too_big = lambda c: levelgen.maze_size_of_seed(c[0], params.world_dim) > params.max_maze_size  # noqa: E731
    return jax.lax.while_loop(too_big, lambda c: draw(c[1]), first)


def _fresh(level: levelgen.GeneratedLevels, seeds: mt.MTStream) -> EnvState:
    return EnvState(grid=level.grid, mouse=level.mouse, reflected=jnp.bool_(False), background=level.background,
                    maze_size=level.size, level_seed=level.seed, time=jnp.int32(0), seeds=seeds)


def reset_level(seeds: mt.MTStream, params: EnvParams) -> EnvState:
    """Start the next level of a level-seed stream."""
    seed, seeds = next_level_seed(seeds, params)
    return _fresh(levelgen.generate_level(seed, params.world_dim, params.rand_region), seeds)


def reset_from_word(word: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
    """Reset with the env's level-seed generator seeded by ``word`` (procgen env n uses ``mt19937(rand_seed)``'s
    n-th output; :func:`mazeagent.env.levelgen.env_seed_words`)."""
    state = reset_level(mt.stream(jnp.asarray(word, jnp.uint32)), params)
    return observe(state, params), state


def reset(key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
    """A fresh env: its level-seed generator is seeded from ``key`` (same key, same levels)."""
    return reset_from_word(jax.random.bits(key, dtype=jnp.uint32), params)


def move(code_at, mouse: jax.Array, reflected: jax.Array, action: jax.Array, world_dim: int):
    """procgen's grid step (docs/maze-spec.md §4.1-§4.2): returns the new ``(mouse, reflected)``.

    ``code_at(row, col)`` reads the grid (indices are clipped in range). Actions >= 9 are no-ops; diagonals keep
    only their horizontal part; a move into a wall or off the world leaves the mouse in place, but any horizontal
    action still turns it (RIGHT faces right).
    """
    action = jnp.asarray(action, jnp.int32)
    m = jnp.where((action >= 0) & (action < 9), action, 4)
    vx = m // 3 - 1
    vy = jnp.where(vx != 0, 0, m % 3 - 1)
    row, col = mouse[0] + vy, mouse[1] + vx
    inside = (row >= 0) & (row < world_dim) & (col >= 0) & (col < world_dim)
    code = code_at(jnp.clip(row, 0, world_dim - 1), jnp.clip(col, 0, world_dim - 1))
    ok = inside & (code != WALL)
    mouse = jnp.where(ok, jnp.stack([row, col]), mouse).astype(jnp.int32)
    reflected = jnp.where(vx > 0, True, jnp.where(vx < 0, False, reflected))
    return mouse, reflected


def info_dict(level_seed, prev_level_seed, complete) -> dict[str, jax.Array]:
    """gym3/procgen's info fields (``level_seed``/``prev_level_seed`` int32, ``prev_level_complete`` uint8)."""
    return {"level_seed": level_seed, "prev_level_seed": prev_level_seed,
            "prev_level_complete": jnp.asarray(complete).astype(jnp.uint8)}


def step(key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
    """One step with auto-reset. ``key`` is unused (maze dynamics are deterministic); kept for the gymnax API."""
    del key
    mouse, reflected = move(lambda r, c: state.grid[r, c], state.mouse, state.reflected, action, params.world_dim)
    cheese = state.grid[mouse[0], mouse[1]] == CHEESE
    time = state.time + 1
    done = cheese | (time >= params.timeout)
    reward = jnp.where(cheese, jnp.float32(CHEESE_REWARD), jnp.float32(0.0))
    played = state.replace(mouse=mouse, reflected=reflected, time=time)
    state = jax.lax.cond(done, lambda s: reset_level(s.seeds, params), lambda s: s, played)
    return observe(state, params), state, reward, done, info_dict(state.level_seed, played.level_seed, cheese)


# ---- level I/O: play an edited maze, read a level back out ----

def state_from_level(level: Level, params: EnvParams | None = None, background: int = 0,
                     seed_word: int = 0) -> EnvState:
    """An env state showing ``level`` (hard mode): the mouse on ``level.mouse``, facing left, time 0.

    When its episode ends the env continues with levels from a generator seeded by ``seed_word``. ``level_seed`` is
    ``level.seed``, or -1 when the level has none.
    """
    params = EnvParams() if params is None else params
    if params.world_dim != WORLD:
        raise ValueError(f"Level values live in the {WORLD}x{WORLD} hard-mode world; params are "
                         f"{params.distribution_mode!r}")
    if not isinstance(level, Level):
        raise ValueError(f"expected a Level, got {type(level).__name__}")
    if isinstance(background, bool) or not isinstance(background, (int, np.integer)) or not 0 <= background < 9:
        raise ValueError(f"background must be an int in 0..8, got {background!r}")
    return EnvState(grid=jnp.asarray(level.world_codes(), jnp.int32),
                    mouse=jnp.asarray(inner_to_world(level.mouse, level.size), jnp.int32),
                    reflected=jnp.bool_(False), background=jnp.int32(background), maze_size=jnp.int32(level.size),
                    level_seed=jnp.int32(-1 if level.seed is None else level.seed), time=jnp.int32(0),
                    seeds=mt.stream(jnp.uint32(int(seed_word) & 0xFFFFFFFF)))


def level_from_state(state: EnvState) -> Level:
    """The level an env state shows (hard mode, one env): walls, cheese (None once eaten) and the mouse's square."""
    grid = np.asarray(state.grid)
    if grid.shape != (WORLD, WORLD):
        raise ValueError(f"expected one hard-mode env state with a {WORLD}x{WORLD} grid, got grid shape {grid.shape}")
    mouse = tuple(int(v) for v in np.asarray(state.mouse))
    seed = int(state.level_seed)
    return Level.from_world(grid, int(state.maze_size), mouse, seed=None if seed < 0 else seed)
