"""The real procgen ``maze`` env, driven through its state bytes: read each env's level, write edited levels back,
and play procgenAISC's ``rand_region`` training distribution on stock procgen.

Why this exists: real procgen is the ground truth for our JAX env and the place to run the published agents on
edited mazes. Its ``set_state`` kills the Python process on malformed bytes (docs/maze-spec.md §7), so every write
here is parsed and validated first (:mod:`mazeagent.procgen.state`) and a bad edit raises ``ValueError`` instead.

``rand_region=r`` edits each new level (docs/maze-spec.md §6.3): ``maze_aisc(seed)`` is ``maze(seed)`` with the
cheese moved, so after every auto-reset the new level's cheese is moved to the square procgenAISC would have chosen
(computed by :func:`mazeagent.env.levelgen.generate_batch`), before the agent sees the level.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from mazeagent.maze.edit import check_connectivity
from mazeagent.maze.level import CHEESE, NUM_ACTIONS, SPACE, WALL, Level, Square
from mazeagent.procgen.state import (DISTRIBUTION_MODES, N_BACKGROUNDS, WORLD_DIMS, MazeState,
                                     parse_state, serialize_state)

GAME_NAME = "maze"
MAX_STATE_SIZE = 2 ** 20  # procgen env.py: the buffer get_state writes into


@dataclass(frozen=True)
class ProcgenLevel:
    """What one procgen env is playing: the :class:`Level` plus the state that is not maze layout."""

    level: Level  # inner walls, mouse, cheese; level.seed = level_seed
    background: int  # 0..8, index into procgen's maze backgrounds
    level_seed: int
    reflected: bool  # True = the mouse faces right
    time: int  # steps taken in this episode (timeout at 500)
    distribution_mode: str = "hard"

    @property
    def maze_size(self) -> int:
        return self.level.size


def level_from_grid(grid: np.ndarray, maze_size: int, mouse_world: Square, seed: int | None = None) -> Level:
    """A :class:`Level` from a ``W x W`` world grid (any mode: the maze sits centred, margin ``(W - n) // 2``).

    Raises ValueError rather than dropping anything the Level cannot hold (a cheese outside the maze, two cheeses).
    """
    W = grid.shape[0]
    m = (W - maze_size) // 2
    inner = grid[m:m + maze_size, m:m + maze_size]
    n_cheese, n_inner = int((grid == CHEESE).sum()), int((inner == CHEESE).sum())
    if n_cheese != n_inner:
        raise ValueError(f"{n_cheese - n_inner} cheese square(s) lie outside the {maze_size}x{maze_size} maze")
    cheese = np.argwhere(inner == CHEESE)
    if len(cheese) > 1:
        raise ValueError(f"a Level holds at most one cheese, this grid has {len(cheese)}")
    return Level(walls=inner == WALL, mouse=(mouse_world[0] - m, mouse_world[1] - m),
                 cheese=tuple(int(v) for v in cheese[0]) if len(cheese) else None, seed=seed)


def grid_from_level(level: Level, world_dim: int) -> np.ndarray:
    """The ``W x W`` procgen-code world grid of a level (walls outside the maze), ``[row, col]``, row 0 bottom."""
    n = level.size
    if n > world_dim:
        raise ValueError(f"a {n}x{n} maze does not fit a {world_dim}x{world_dim} world (easy mode allows n <= 15)")
    m = (world_dim - n) // 2
    world = np.full((world_dim, world_dim), WALL, np.int32)
    world[m:m + n, m:m + n] = np.where(level.walls, WALL, SPACE)
    if level.cheese is not None:
        world[level.cheese[0] + m, level.cheese[1] + m] = CHEESE
    return world


class _RegionCheese:
    """procgenAISC ``maze_aisc`` cheese squares by level seed, from our JAX generator; bounded LRU cache.

    Why the care: one generator call costs ~10 ms whatever its size (8 levels per compiled chunk), more than a whole
    procgen step. So levels are generated ahead: each call is filled up with the seeds the envs will play next
    (procgen's seed streams are predictable, docs/maze-spec.md §1.2), and most new episodes are cache hits. The
    packed wall mask of each level is kept to check that generator and procgen agree on the maze before any cheese
    is moved.
    """

    CHUNK = 8

    def __init__(self, rand_region: int, distribution_mode: str, max_size: int = 1 << 16):
        from mazeagent.env.levelgen import check_rand_region

        self.rand_region = check_rand_region(rand_region)
        self.distribution_mode = distribution_mode
        self.max_size = max_size
        self.generated = 0  # levels generated so far (tests and benchmarks read it)
        self._cache: OrderedDict[int, tuple[Square | None, bytes]] = OrderedDict()

    def lookup(self, seeds: list[int], ahead: list[int] = ()) -> list[tuple[Square | None, bytes]]:
        """Cheese and packed walls for ``seeds``; ``ahead`` are seeds worth generating in the same call."""
        from mazeagent.env.levelgen import generate_batch

        need = list(dict.fromkeys(s for s in seeds if s not in self._cache))
        more = [s for s in dict.fromkeys(ahead) if s not in self._cache and s not in need]
        c = self.CHUNK
        take = max(-(-len(need) // c) * c, (len(need) + len(more)) // c * c)  # whole chunks, every needed seed
        todo = (need + more)[:take]
        if todo:
            gen = generate_batch(np.asarray(todo, np.int64), rand_region=self.rand_region,
                                 distribution_mode=self.distribution_mode, chunk=c)
            for k, seed in enumerate(todo):
                cheese = None if gen.cheese[k, 0] < 0 else (int(gen.cheese[k, 0]), int(gen.cheese[k, 1]))
                self._cache[seed] = (cheese, np.packbits(gen.grid[k] == WALL).tobytes())
            self.generated += len(todo)
        out = []
        for s in seeds:
            self._cache.move_to_end(s)
            out.append(self._cache[s])
        while len(self._cache) > self.max_size:
            self._cache.popitem(last=False)
        return out


class ProcgenMaze:
    """``num_envs`` real procgen maze envs (``ProcgenGym3Env(env_name="maze")``) with level read/write.

    gym3-style: :meth:`act` then :meth:`observe` (procgen auto-resets inside ``act``); :meth:`step` does both.
    ``seed`` is procgen's ``rand_seed``: it fixes every env's level-seed sequence (docs/maze-spec.md §1.2), so same
    seed, same levels. ``self.env`` is the raw ``ProcgenGym3Env``; step through this class, or ``rand_region`` edits
    are missed. ``num_threads=0`` (inline stepping) is the default: worker threads only pay off with cores to spare
    (docs/maze-spec.md §7).
    """

    def __init__(self, num_envs: int, seed: int, *, distribution_mode: str = "hard", rand_region: int | None = None,
                 num_levels: int = 0, start_level: int = 0, use_backgrounds: bool = True, num_threads: int = 0):
        from procgen import ProcgenGym3Env

        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if distribution_mode not in DISTRIBUTION_MODES:
            raise ValueError(f"distribution_mode must be 'hard' or 'easy' for the procgen backend, "
                             f"got {distribution_mode!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 31:
            raise ValueError(f"seed (procgen's rand_seed) must be an int in [0, 2**31), got {seed!r}")
        for name, v in (("num_levels", num_levels), ("start_level", start_level), ("num_threads", num_threads)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        self.num_envs, self.seed, self.distribution_mode = int(num_envs), int(seed), distribution_mode
        self.world_dim = WORLD_DIMS[DISTRIBUTION_MODES[distribution_mode]]
        self._region = None if rand_region is None else _RegionCheese(rand_region, distribution_mode)
        self.rand_region = None if self._region is None else self._region.rand_region  # validated
        self.env = ProcgenGym3Env(num=self.num_envs, env_name=GAME_NAME, distribution_mode=distribution_mode,
                                  rand_seed=self.seed, num_levels=num_levels, start_level=start_level,
                                  use_backgrounds=use_backgrounds, num_threads=num_threads)
        self._buf = self.env._ffi.new(f"char[{MAX_STATE_SIZE}]")
        self._seed_stream = dict(rand_seed=self.seed, num_envs=self.num_envs, num_levels=int(num_levels),
                                 start_level=int(start_level))
        self._levels_started = np.zeros(self.num_envs, np.int64)  # k of each env's current level (for look-ahead)
        self._upcoming = np.zeros((self.num_envs, 0), np.int64)
        if self._region is not None:
            self._apply_rand_region(np.arange(self.num_envs), initial=True)

    # ------------------------------------------------------------------ stepping
    def act(self, actions: np.ndarray) -> None:
        """Step every env (0..14; -1 forces a reset, as procgen). New levels get the rand_region cheese first."""
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} ints, got dtype {a.dtype} shape {a.shape}")
        if ((a < -1) | (a >= NUM_ACTIONS)).any():
            raise ValueError(f"actions must be in [0, {NUM_ACTIONS}) (or -1 to force a reset), got {a}")
        self.env.act(a.astype(np.int32))
        if self._region is not None:
            first = self.env.observe()[2]
            if first.any():
                self._apply_rand_region(np.flatnonzero(first))

    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(reward (N,) f32, obs (N,64,64,3) u8, first (N,) bool)`` as gym3; ``first`` marks a new level."""
        rew, ob, first = self.env.observe()
        return rew, ob["rgb"], first.astype(bool)

    def get_info(self) -> dict[str, np.ndarray]:
        """procgen's per-env info as arrays: ``level_seed``, ``prev_level_seed``, ``prev_level_complete``."""
        infos = self.env.get_info()
        return {k: np.array([int(d[k]) for d in infos]) for k in ("level_seed", "prev_level_seed",
                                                                   "prev_level_complete")}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``act`` + ``observe``: ``(obs, reward, done, info)``. ``obs`` is already the next level's first frame
        where ``done`` (procgen auto-resets), as in the JAX env."""
        self.act(actions)
        rew, obs, first = self.observe()
        return obs, rew, first, self.get_info()

    # ------------------------------------------------------------------ state I/O
    def _check_index(self, i: int) -> int:
        # procgen's games.at(i) throws through C on a bad index, which aborts the process
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.num_envs:
            raise ValueError(f"env index must be an int in [0, {self.num_envs}), got {i!r}")
        return int(i)

    def get_state_bytes(self, i: int) -> bytes:
        n = self.env.call_c_func("get_state", self._check_index(i), self._buf, MAX_STATE_SIZE)
        return bytes(self.env._ffi.buffer(self._buf, n))

    def get_state(self, i: int) -> MazeState:
        return parse_state(self.get_state_bytes(i), layout="stock")

    def set_state(self, i: int, state: MazeState | bytes) -> None:
        """Load a state into env ``i``, validated first (raises :class:`InvalidStateError`; procgen untouched).

        The new obs/reward/first/info are visible through :meth:`observe` at once (procgen re-observes).
        """
        i = self._check_index(i)
        if not isinstance(state, MazeState):
            state = parse_state(state, layout="auto")
        data = serialize_state(state, game_name=GAME_NAME, distribution_mode=self.distribution_mode)
        self.env.call_c_func("set_state", i, data, len(data))

    def read_level(self, i: int) -> ProcgenLevel:
        """Env ``i``'s current level (as the agent sees it now: after any cheese it ate or edits)."""
        return self._level_of(self.get_state(i))

    def read_levels(self) -> list[ProcgenLevel]:
        return [self.read_level(i) for i in range(self.num_envs)]

    def _level_of(self, st: MazeState) -> ProcgenLevel:
        level = level_from_grid(st.grid, st.maze_size, st.mouse, seed=st.level_seed)
        return ProcgenLevel(level=level, background=st.background, level_seed=st.level_seed,
                            reflected=st.reflected, time=st.time, distribution_mode=st.distribution_mode)

    def write_level(self, i: int, level: Level, *, background: int | None = None, reflected: bool | None = None,
                    time: int | None = None, require_connected: bool = False,
                    require_simply_connected: bool = False) -> None:
        """Make env ``i`` play ``level`` from now on (walls, mouse, cheese; optionally background, facing, clock).

        Everything else (level seed, rng streams, episode flags) is kept, so the env's next level is unchanged.
        ``require_connected``/``require_simply_connected`` reject mazes with unreachable squares / loops
        (:func:`mazeagent.maze.edit.check_connectivity`). Build edited levels with :mod:`mazeagent.maze.edit`.
        """
        i = self._check_index(i)
        if not isinstance(level, Level):
            raise ValueError(f"level must be a mazeagent Level, got {type(level).__name__}")
        check_connectivity(level, require_connected=require_connected,
                           require_simply_connected=require_simply_connected)
        st = self.get_state(i)
        st.grid = grid_from_level(level, self.world_dim)
        st.fields["maze_dim"] = level.size
        m = (self.world_dim - level.size) // 2
        st.set_mouse((level.mouse[0] + m, level.mouse[1] + m))
        if background is not None:
            if isinstance(background, bool) or not isinstance(background, (int, np.integer)) \
                    or not 0 <= background < N_BACKGROUNDS:
                raise ValueError(f"background must be an int in [0, {N_BACKGROUNDS}), got {background!r}")
            st.fields["background_index"] = int(background)
        if reflected is not None:
            st.entities[st.agent_index]["is_reflected"] = int(bool(reflected))
        if time is not None:
            if isinstance(time, bool) or not isinstance(time, (int, np.integer)) or not 0 <= time < 2 ** 31:
                raise ValueError(f"time must be an int >= 0, got {time!r}")
            st.fields["cur_time"] = int(time)
        self.set_state(i, st)

    # ------------------------------------------------------------------ rand_region
    def _apply_rand_region(self, envs: np.ndarray, initial: bool = False) -> None:
        """Move the cheese of the levels just started in ``envs`` to procgenAISC's square (docs/maze-spec.md §6.3)."""
        if not initial:
            self._levels_started[envs] += 1
        states = [self.get_state(int(i)) for i in envs]
        found = self._region.lookup([st.level_seed for st in states], ahead=self._next_seeds())
        for i, st, (cheese, walls) in zip(envs, states, found):
            if np.packbits(st.grid == WALL).tobytes() != walls:
                raise RuntimeError(f"level generator disagrees with procgen on the maze of level seed "
                                   f"{st.level_seed} (env {i}); refusing to move its cheese")
            st.grid[st.grid == CHEESE] = SPACE
            if cheese is not None:
                st.grid[cheese] = CHEESE
            self.set_state(int(i), st)

    def _next_seeds(self) -> list[int]:
        """The level seed each env will play next, if nothing reloads an old state (a guess only used to prefetch)."""
        from mazeagent.env.levelgen import procgen_level_seeds

        k = self._levels_started + 1
        if k.max() >= self._upcoming.shape[1]:
            self._upcoming = procgen_level_seeds(**self._seed_stream, num_resets=max(16, 2 * int(k.max())))
        return self._upcoming[np.arange(self.num_envs), k].tolist()

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> "ProcgenMaze":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def benchmark_state_io(num_envs: int = 64, reps: int = 5, seed: int = 0) -> dict[str, float]:
    """Microseconds per env for procgen's get_state/set_state and our parse/validate+serialize and level I/O."""
    from tqdm import tqdm

    env = ProcgenMaze(num_envs, seed)
    t = dict.fromkeys(("get_state", "parse", "serialize_validated", "set_state", "read_level", "write_level"), 0.0)
    for _ in tqdm(range(reps), desc="state I/O", leave=False):
        c = time.perf_counter()
        raw = [env.get_state_bytes(i) for i in range(num_envs)]
        t["get_state"] += time.perf_counter() - c
        c = time.perf_counter()
        states = [parse_state(b, layout="stock") for b in raw]
        t["parse"] += time.perf_counter() - c
        c = time.perf_counter()
        data = [serialize_state(s) for s in states]
        t["serialize_validated"] += time.perf_counter() - c
        c = time.perf_counter()
        for i, b in enumerate(data):
            env.env.call_c_func("set_state", i, b, len(b))
        t["set_state"] += time.perf_counter() - c
        c = time.perf_counter()
        levels = env.read_levels()
        t["read_level"] += time.perf_counter() - c
        c = time.perf_counter()
        for i, lv in enumerate(levels):
            env.write_level(i, lv.level)
        t["write_level"] += time.perf_counter() - c
    env.close()
    return {k: v / (reps * num_envs) * 1e6 for k, v in t.items()}
