"""Many maze envs in one jitted step, with auto-reset kept off the per-step hot path.

Design (why): generating a level is ~300 sequential Kruskal steps, far more than a step, and under ``vmap`` a
``lax.cond`` would run it every step. So each env owns a small ring *bank* of levels: the current one and up to
``depth`` upcoming ones, each with its grid and its pre-rendered static frame. A finished env just advances its
slot (no copies). Missing upcoming levels are generated in fixed-size passes for the ``chunk`` envs with the
fewest queued, only when ``chunk`` levels are missing or a finished env would find none queued; with ``depth=2``
that forced case is rare, so almost every pass is full. Per step the obs is the static frame with the mouse
composited in. Level seeds follow procgen's per-env ``level_seed_rand_gen`` exactly, so
``reset_procgen(rand_seed)`` replays ``ProcgenGym3Env(num=N, rand_seed=rand_seed)``'s level sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mazeagent.env import levelgen
from mazeagent.env import mt19937 as mt
from mazeagent.env.core import (CHEESE_REWARD, EnvParams, EnvState, info_dict, move, next_level_seed,
                                render_tables)
from mazeagent.maze.level import CHEESE


@struct.dataclass
class Bank:
    """A ring of level slots per env, leading axes (N, K) with K = depth + 1."""

    grid: jax.Array  # uint8 (N, K, W, W) procgen codes
    frame: jax.Array  # uint8 (N, K, 64, 64, 3) static frame (no mouse)
    background: jax.Array  # int32 (N, K)
    maze_size: jax.Array  # int32 (N, K)
    start: jax.Array  # int32 (N, K, 2) mouse start square
    level_seed: jax.Array  # int32 (N, K)


@struct.dataclass
class VecState:
    """The batched env: the level bank, which slot each env plays, and the per-episode mouse state."""

    bank: Bank
    slot: jax.Array  # int32 (N,) slot of the current level
    queued: jax.Array  # int32 (N,) upcoming levels in the slots after ``slot`` (0..depth)
    mouse: jax.Array  # int32 (N, 2) world (row, col)
    reflected: jax.Array  # bool (N,)
    time: jax.Array  # int32 (N,)
    seeds: mt.MTStream  # (N, 624) / (N,) level-seed generators
    refills: jax.Array  # int32 count of refill passes (for measuring the amortisation)

    def _current(self, a: jax.Array) -> jax.Array:
        return jnp.take_along_axis(a, self.slot.reshape((-1, 1) + (1,) * (a.ndim - 2)), axis=1)[:, 0]

    @property
    def level_seed(self) -> jax.Array:
        return self._current(self.bank.level_seed)

    @property
    def grid(self) -> jax.Array:
        return self._current(self.bank.grid).astype(jnp.int32)

    @property
    def background(self) -> jax.Array:
        return self._current(self.bank.background)

    @property
    def maze_size(self) -> jax.Array:
        return self._current(self.bank.maze_size)

    def env_states(self) -> EnvState:
        """The current levels as a batched :class:`EnvState` (e.g. for :func:`mazeagent.env.level_from_state`)."""
        return EnvState(grid=self.grid, mouse=self.mouse, reflected=self.reflected, background=self.background,
                        maze_size=self.maze_size, level_seed=self.level_seed, time=self.time, seeds=self.seeds)


def default_chunk(num_envs: int) -> int:
    """Levels generated per refill pass: big enough to amortise the generator's sequential latency."""
    return int(min(num_envs, max(16, -(-num_envs // 8))))


@dataclass(frozen=True)
class VecEnv:
    """``reset``/``step`` are pure and jittable; ``reset_procgen`` is host-side (it derives procgen's seeds)."""

    params: EnvParams
    num_envs: int
    chunk: int
    depth: int = 2

    @property
    def slots(self) -> int:
        return self.depth + 1

    # -- building blocks --

    def _tables(self):
        return render_tables(self.params)

    def _render_static(self, grid, background):
        from mazeagent.env.render import render_static
        return render_static(grid, background, self._tables(), use_backgrounds=self.params.use_backgrounds)

    def _generate(self, seeds: mt.MTStream):
        """Next level of each given stream: (level fields, static frame, advanced streams)."""
        p = self.params

        def one(s):
            seed, s = next_level_seed(s, p)
            lv = levelgen.generate_level(seed, p.world_dim, p.rand_region)
            return lv, self._render_static(lv.grid, lv.background), s

        return jax.vmap(one)(seeds)

    def _refill_pass(self, s: VecState) -> VecState:
        """Queue one more level for the ``chunk`` envs with the fewest queued (those with none first)."""
        n, c = self.num_envs, self.chunk
        order = jnp.argsort(s.queued, stable=True)[:c]
        idx = jnp.where(s.queued[order] < self.depth, order, n)  # n = nothing to do, dropped below
        safe = jnp.minimum(idx, n - 1)
        lv, frame, streams = self._generate(jax.tree.map(lambda a: a[safe], s.seeds))
        other = (s.slot[safe] + s.queued[safe] + 1) % self.slots
        put = lambda a, v: a.at[idx, other].set(v.astype(a.dtype), mode="drop")  # noqa: E731
        b = s.bank
        bank = Bank(grid=put(b.grid, lv.grid), frame=put(b.frame, frame),
                    background=put(b.background, lv.background), maze_size=put(b.maze_size, lv.size),
                    start=put(b.start, lv.mouse),
                    level_seed=put(b.level_seed, lv.seed))
        seeds = jax.tree.map(lambda a, v: a.at[idx].set(v, mode="drop"), s.seeds, streams)
        return s.replace(bank=bank, seeds=seeds, queued=s.queued.at[idx].add(1, mode="drop"),
                         refills=s.refills + 1)

    def _refill(self, state: VecState) -> VecState:
        """Fill every queue (at reset)."""
        return jax.lax.while_loop(lambda s: jnp.any(s.queued < self.depth), self._refill_pass, state)

    def _observe(self, state: VecState) -> jax.Array:
        from mazeagent.env.render import composite_mouse
        tables = self._tables()
        return jax.vmap(lambda f, s, m, r: composite_mouse(f[s], m, r, tables))(
            state.bank.frame, state.slot, state.mouse, state.reflected)

    # -- API --

    def reset_from_words(self, words: jax.Array) -> tuple[jax.Array, VecState]:
        """Reset with env n's level-seed generator seeded by ``words[n]`` (uint32)."""
        words = jnp.asarray(words, jnp.uint32)
        if words.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} seed words, got shape {words.shape}")
        lv, frame, seeds = self._generate(jax.vmap(mt.stream)(words))
        w, n = self.params.world_dim, self.num_envs
        ring = lambda v, dt: jnp.stack([v.astype(dt)] + [jnp.zeros_like(v, dt)] * self.depth, axis=1)  # noqa: E731
        bank = Bank(grid=ring(lv.grid, jnp.uint8), frame=ring(frame, jnp.uint8),
                    background=ring(lv.background, jnp.int32), maze_size=ring(lv.size, jnp.int32),
                    start=ring(lv.mouse, jnp.int32), level_seed=ring(lv.seed, jnp.int32))
        assert bank.grid.shape == (n, self.slots, w, w)
        state = VecState(bank=bank, slot=jnp.zeros(n, jnp.int32), queued=jnp.zeros(n, jnp.int32), mouse=lv.mouse,
                         reflected=jnp.zeros(n, bool), time=jnp.zeros(n, jnp.int32), seeds=seeds,
                         refills=jnp.int32(0))
        state = self._refill(state)
        return self._observe(state), state

    def reset(self, key: jax.Array) -> tuple[jax.Array, VecState]:
        """Fresh envs whose level-seed generators are seeded from ``key``."""
        return self.reset_from_words(jax.random.bits(key, (self.num_envs,), jnp.uint32))

    def reset_procgen(self, rand_seed: int) -> tuple[jax.Array, VecState]:
        """Replay ``ProcgenGym3Env(num=num_envs, rand_seed=rand_seed, num_levels, start_level)``'s levels."""
        words = levelgen.env_seed_words(rand_seed, self.num_envs)
        return _jit_reset(self, jnp.asarray(words))

    def step(self, key: jax.Array, state: VecState, actions: jax.Array):
        """All envs one step: ``(obs (N,64,64,3) uint8, state, reward (N,) f32, done (N,) bool, info)``.

        ``done[i]`` is gym3's ``first``: env i finished and ``obs[i]`` is already its next level's first frame.
        """
        del key
        w = self.params.world_dim
        grids = state.bank.grid

        def dyn(grid2, slot, mouse, reflected, a):
            code_at = lambda r, c: grid2[slot, r, c]  # noqa: E731
            mouse, reflected = move(code_at, mouse, reflected, a, w)
            return mouse, reflected, code_at(mouse[0], mouse[1]) == CHEESE

        mouse, reflected, cheese = jax.vmap(dyn)(grids, state.slot, state.mouse, state.reflected,
                                                 jnp.asarray(actions, jnp.int32))
        time = state.time + 1
        done = cheese | (time >= self.params.timeout)
        reward = jnp.where(cheese, jnp.float32(CHEESE_REWARD), jnp.float32(0.0))
        prev_seed = state.level_seed
        # one full pass once `chunk` levels are missing; more only if a finished env has nothing queued (rare)
        state = jax.lax.cond(jnp.sum(self.depth - state.queued) >= self.chunk, self._refill_pass, lambda s: s, state)
        state = jax.lax.while_loop(lambda s: jnp.any(done & (s.queued == 0)), self._refill_pass, state)
        slot = jnp.where(done, (state.slot + 1) % self.slots, state.slot)
        start = jnp.take_along_axis(state.bank.start, slot[:, None, None], axis=1)[:, 0]
        state = state.replace(slot=slot, queued=state.queued - done,
                              mouse=jnp.where(done[:, None], start, mouse),
                              reflected=reflected & ~done, time=jnp.where(done, 0, time))
        return self._observe(state), state, reward, done, info_dict(state.level_seed, prev_seed, cheese)


@partial(jax.jit, static_argnums=0)
def _jit_reset(env: VecEnv, words: jax.Array):
    return env.reset_from_words(words)


def make_vec_env(params: EnvParams, num_envs: int, chunk: int | None = None, depth: int = 2) -> VecEnv:
    """A batched env of ``num_envs`` envs; ``chunk`` = levels generated per refill pass (default by size),
    ``depth`` = upcoming levels kept per env (memory: ``depth + 1`` frames of 12 KB per env)."""
    if not isinstance(params, EnvParams):
        raise ValueError(f"params must be an EnvParams, got {type(params).__name__}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    render_tables(params)  # build the cached tables now, outside any trace
    chunk = default_chunk(int(num_envs)) if chunk is None else chunk
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or not 1 <= chunk <= num_envs:
        raise ValueError(f"chunk must be an int in [1, num_envs={num_envs}], got {chunk!r}")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    return VecEnv(params=params, num_envs=int(num_envs), chunk=int(chunk), depth=int(depth))
