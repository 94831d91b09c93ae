"""The notebook API: one import for the everyday loop of load an agent, edit a maze, look, patch, look again.

```python
import mazeagent as ma
agent = ma.load_agent()                          # the bundled agent; or a run dir, checkpoint dir or .pth file
maze = ma.Maze.from_seed(0).with_cheese(3, 4)    # validated edits, inner (row, col) squares, row 0 at the bottom
agent.act_probs(maze)                            # {'left': .., 'down': .., 'up': .., 'right': .., 'noop': ..}
agent.vector_field(maze).plot()                  # a matplotlib Figure
```

Squares are always *inner* coordinates of the maze (docs/architecture.md, "coordinates"); the world arrays that
rollouts and probes use stay behind :attr:`Maze.mazes`. This module is glue on top of every layer: nothing below
imports it.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mazeagent.maze import edit
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import TIMEOUT, Level, inner_to_world, world_to_activation
from mazeagent.nets.actions import GROUP_NAMES

MAZE_FORMAT = "mazeagent-maze-v1"
VIDEO_GAP = 4  # white pixel columns between the original and the patched episode


@dataclass(frozen=True)
class Maze:
    """One maze as an immutable value: a :class:`~mazeagent.maze.level.Level` plus its background picture.

    Every ``with_*``/``without_*`` edit is validated (:mod:`mazeagent.maze.edit`) and returns a new maze."""

    level: Level
    background: int = 0

    # ---- making one
    @classmethod
    def from_seed(cls, seed: int, rand_region: int | None = None) -> Maze:
        """The level procgen makes for ``seed`` (hard mode); ``rand_region`` places the cheese as the training
        distribution of the rand-region agents does (docs/rand-region.md)."""
        from mazeagent.env.mazes import from_generated
        from mazeagent.env.levelgen import generate_batch

        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 31:
            raise ValueError(f"seed must be an int in [0, 2**31), got {seed!r}")
        m = from_generated(generate_batch(np.array([seed], np.int32), rand_region=rand_region, progress=False))
        lv = m.level(0)
        return cls(Level(lv.walls, lv.mouse, lv.cheese, seed=int(seed)), int(m.background[0]))

    @classmethod
    def from_ascii(cls, rows: Sequence[str], background: int = 0) -> Maze:
        """A hand-drawn maze, top row first: ``#`` wall, ``.`` open, ``M`` mouse, ``C`` cheese."""
        rows = [r.strip() for r in rows if r.strip()]
        n = len(rows)
        if any(len(r) != n for r in rows):
            raise ValueError(f"a maze picture must be square; got rows of lengths {sorted({len(r) for r in rows})}")
        bad = sorted({ch for r in rows for ch in r} - set("#.MC"))
        if bad:
            raise ValueError(f"unknown maze characters {bad}; use # (wall), . (open), M (mouse), C (cheese)")
        grid = np.array([list(r) for r in rows[::-1]])  # row 0 is the bottom
        find = lambda ch: [tuple(int(v) for v in sq) for sq in np.argwhere(grid == ch)]  # noqa: E731
        mice, cheese = find("M"), find("C")
        if len(mice) != 1 or len(cheese) > 1:
            raise ValueError(f"a maze picture needs exactly one M and at most one C; got {len(mice)} and {len(cheese)}")
        return cls(Level(walls=grid == "#", mouse=mice[0], cheese=cheese[0] if cheese else None), background)

    @classmethod
    def from_state_bytes(cls, data: bytes) -> Maze:
        """The maze in procgen's serialized state (``get_state`` bytes, stock or procgenAISC layout; what
        procgen-tools saves), parsed by our own reader (docs/maze-spec.md §6)."""
        from mazeagent.procgen.backend import level_from_grid
        from mazeagent.procgen.state import parse_state

        st = parse_state(bytes(data))
        return cls(level_from_grid(st.grid, st.maze_size, st.mouse, seed=st.level_seed), st.background)

    # ---- edits
    def with_cheese(self, row: int, col: int, **requirements: bool) -> Maze:
        return self._with(edit.move_cheese(self.level, (row, col), **requirements))

    def without_cheese(self) -> Maze:
        return self._with(edit.remove_cheese(self.level))

    def with_mouse(self, row: int, col: int, **requirements: bool) -> Maze:
        return self._with(edit.move_mouse(self.level, (row, col), **requirements))

    def with_wall(self, row: int, col: int, **requirements: bool) -> Maze:
        return self._with(edit.close_walls(self.level, (row, col), **requirements))

    def without_wall(self, row: int, col: int, **requirements: bool) -> Maze:
        return self._with(edit.open_walls(self.level, (row, col), **requirements))

    def _with(self, level: Level) -> Maze:
        return Maze(level, self.background)

    # ---- looking at it
    @property
    def size(self) -> int:
        return self.level.size

    @property
    def mouse(self) -> tuple[int, int]:
        return self.level.mouse

    @property
    def cheese(self) -> tuple[int, int] | None:
        return self.level.cheese

    @property
    def mazes(self) -> Mazes:
        """This maze as a batch of one, for everything in experiments/ and probes/."""
        return Mazes.from_levels([self.level], self.background)

    def ascii(self) -> str:
        """The picture :meth:`from_ascii` reads, top row first."""
        n = self.size
        rows = []
        for r in range(n - 1, -1, -1):
            line = ["#" if self.level.walls[r, c] else "." for c in range(n)]
            if self.mouse[0] == r:
                line[self.mouse[1]] = "M"
            if self.cheese is not None and self.cheese[0] == r:
                line[self.cheese[1]] = "C"
            rows.append("".join(line))
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"Maze(size={self.size}, mouse={self.mouse}, cheese={self.cheese}, seed={self.level.seed})"

    # ---- files
    def to_json(self) -> str:
        return json.dumps({"format": MAZE_FORMAT, "rows_top_first": self.ascii().splitlines(),
                           "background": self.background, "seed": self.level.seed})

    @classmethod
    def from_json(cls, text: str) -> Maze:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a maze file (invalid JSON: {e})") from None
        if not isinstance(d, dict) or d.get("format") != MAZE_FORMAT:
            raise ValueError(f"not a maze file: expected format {MAZE_FORMAT!r}")
        from mazeagent.procgen.state import N_BACKGROUNDS  # imports no procgen

        rows, background, seed = d.get("rows_top_first"), d.get("background", 0), d.get("seed")
        if not isinstance(rows, list) or not rows or not all(isinstance(r, str) for r in rows):
            raise ValueError("not a maze file: rows_top_first must be a non-empty list of strings, top row first")
        if isinstance(background, bool) or not isinstance(background, int) or not 0 <= background < N_BACKGROUNDS:
            raise ValueError(f"not a maze file: background must be an int in [0, {N_BACKGROUNDS}), got {background!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 31):
            raise ValueError(f"not a maze file: seed must be null or an int in [0, 2**31), got {seed!r}")
        m = cls.from_ascii(rows, background)
        return m if seed is None else cls(Level(m.level.walls, m.mouse, m.cheese, seed=int(seed)), m.background)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Maze:
        return cls.from_json(Path(path).read_text())


class _BytesOnly(pickle.Unpickler):
    """An unpickler that refuses every class or function lookup: only plain data (bytes, str, numbers, lists,
    tuples, dicts) can come out of it, so loading a file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise ValueError(f"refusing to load {module}.{name}: a saved maze file may only hold state bytes")


def load_saved_states(path: str | os.PathLike) -> list[Maze]:
    """Mazes from a pickle of procgen state bytes (one, or a list/tuple/dict of them, as procgen-tools saves
    them), read without executing any pickled code."""
    with open(path, "rb") as f:
        data = _BytesOnly(f).load()
    items = list(data.values()) if isinstance(data, dict) else data if isinstance(data, (list, tuple)) else [data]
    bad = [type(x).__name__ for x in items if not isinstance(x, (bytes, bytearray))]
    if bad or not items:
        raise ValueError(f"{path}: expected procgen state bytes, found {bad or 'nothing'}")
    return [Maze.from_state_bytes(x) for x in items]


@dataclass(frozen=True)
class Rollout:
    """One episode from a maze's mouse square: ``squares`` (T + 1, 2) inner squares (start included), ``facing``
    (T + 1,) True where the mouse faces right, ``actions`` one move group per step (``L D U R N``), ``cheese``
    whether it ended on the cheese."""

    squares: np.ndarray
    facing: np.ndarray
    actions: str
    cheese: bool

    @property
    def steps(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class _StateTable:
    """A policy (mazeagent.experiments.policies.Policy) that looks its logits up in a (world, world, facing, 15) table."""

    logits: np.ndarray

    def __call__(self, states: Any, key: Any) -> np.ndarray:
        sq = np.asarray(states.squares)
        return self.logits[sq[:, 0], sq[:, 1], np.asarray(states.reflected).astype(np.int64)]


@dataclass
class Agent:
    """A policy network with its params; methods answer questions about one :class:`Maze` at a time.

    Interventions (a hooks dict, see probes/interventions.py) apply inside ``with agent.patched(hooks):``."""

    net: Any
    params: Any
    config: Any
    source: str = ""
    hooks: Mapping[str, Any] | None = field(default=None, repr=False)

    def act_probs(self, maze: Maze, square: tuple[int, int] | None = None) -> dict[str, float]:
        """The five grouped action probabilities with the mouse at ``square`` (default: the maze's mouse)."""
        from mazeagent.probes.vfield import field_probs

        sq = maze.mouse if square is None else maze.with_mouse(*square).mouse  # validated like any edit
        world = np.array([inner_to_world(sq, maze.size)], np.int32)
        p = field_probs(self.net, self.params, maze.mazes, np.zeros(1, np.int64), world, self.hooks)[0]
        return {name: float(v) for name, v in zip(GROUP_NAMES, p, strict=True)}

    def vector_field(self, maze: Maze):
        """The policy's field over every open square (probes/vfield.py), under the current patch if any."""
        from mazeagent.probes.vfield import vector_field

        return vector_field(self.net, self.params, maze.mazes, 0, self.hooks)

    def run_with_cache(self, maze: Maze, names: Sequence[str] | None = None
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(logits (15,), {name: activation})`` for the observation with the mouse where it stands."""
        from mazeagent.env.mazes import observations
        from mazeagent.nets.hooked import HookedImpala

        obs = observations(maze.mazes, np.zeros(1, np.int64))  # jitted once per names and patch structure:
        (logits, _), cache = HookedImpala(self.net, self.params, pad=False).run_with_cache(  # 250 -> 5 ms
            obs, names, hooks=dict(self.hooks or {}))
        return np.asarray(logits)[0], {k: np.asarray(v)[0] for k, v in cache.items()}  # host, then slice: cheap

    def play(self, maze: Maze, steps: int = TIMEOUT, seed: int = 0, greedy: bool = False) -> Rollout:
        """Play one episode from the maze's mouse square (facing left) for at most ``steps`` steps, ending on the
        cheese; actions are sampled with ``seed`` (or the argmax with ``greedy``) by the rollout engine of
        experiments/rollouts.py, under the current patch if any. Same seed, same episode."""
        from mazeagent.experiments.rollouts import RolloutConfig, replay_moves, rollout

        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 31:
            raise ValueError(f"seed must be an int in [0, 2**31), got {seed!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= TIMEOUT:
            raise ValueError(f"steps must be an int in [1, {TIMEOUT}], got {steps!r}")
        # always the full horizon (one compilation), cut to `steps`: step t's key depends on t only, so the first
        # `steps` moves are those of a `steps`-step rollout
        mazes = maze.mazes
        played = rollout(self._state_table(mazes), mazes, RolloutConfig(greedy=bool(greedy), seed=int(seed)),
                         progress=False)
        row = played.episodes.iloc[0]
        actions = str(row["actions"])[:steps]
        world, facing = replay_moves(mazes, [0], [actions])
        inner = world[0] - (int(mazes.grid.shape[-1]) - maze.size) // 2
        return Rollout(inner, facing[0], actions, bool(0 <= row["t_cheese"] <= steps))

    def _state_table(self, mazes: Mazes) -> _StateTable:
        """The net's logits at every (open square, facing) of a one-maze batch, in one padded batch: the rollout
        engine asks for a few states at a time, and one batch of all of them (2 x open squares) is far cheaper."""
        from mazeagent.env.mazes import observations
        from mazeagent.nets.hooked import HookedImpala
        from mazeagent.probes.vfield import open_squares

        sq = open_squares(mazes, 0)
        squares, facing = np.concatenate([sq, sq]), np.repeat([False, True], len(sq))
        logits, _ = HookedImpala(self.net, self.params).run_with_hooks(
            observations(mazes, np.zeros(len(squares), np.int64), squares, facing), dict(self.hooks or {}))
        w = mazes.grid.shape[-1]
        table = np.zeros((w, w, 2, np.shape(logits)[-1]), np.float32)
        table[squares[:, 0], squares[:, 1], facing.astype(np.int64)] = np.asarray(logits)
        return _StateTable(table)

    @contextlib.contextmanager
    def patched(self, hooks: Mapping[str, Any]) -> Iterator[Agent]:
        """Apply ``hooks`` to every call inside the block (patches compose with an enclosing one)."""
        from mazeagent.probes.interventions import compose_hooks

        before = self.hooks
        self.hooks = dict(hooks) if before is None else compose_hooks(before, hooks)
        try:
            yield self
        finally:
            self.hooks = before


def cheese_vector(agent: Agent, maze: Maze, coeff: float = -1.0, layer: str | None = None) -> dict[str, Any]:
    """Hooks that add ``coeff`` x this maze's cheese vector (activations with the cheese minus without, mouse at
    its square) at ``layer`` (default ``embedder.block2.res1.resadd_out``); -1 is the published subtraction
    (docs/research.md §4.1). Use with ``agent.patched(...)``."""
    from mazeagent.nets.hooks import DEFAULT_LAYER
    from mazeagent.probes.steering import cheese_vectors, steer

    if maze.cheese is None:
        raise ValueError("the maze has no cheese, so it has no cheese vector")
    layer = layer or DEFAULT_LAYER
    return steer(layer, cheese_vectors(agent.net, agent.params, maze.mazes, layer)[0], coeff)


def clamp_channel(agent: Agent, maze: Maze, square: tuple[int, int], channel: int, value: float | None = None,
                  layer: str | None = None) -> dict[str, Any]:
    """Hooks that set ``channel`` of ``layer`` (default ``embedder.block2.res1.resadd_out``) to ``value`` (default
    the retarget value of probes/, the published channel-55 clamp 5.5) at the activation cell over the inner
    ``square``: the retargeting edit of probes/exp_retarget.py (docs/research.md §4.3). Use with
    ``agent.patched(...)``."""
    from mazeagent.maze.edit import check_square
    from mazeagent.nets.hooks import DEFAULT_LAYER
    from mazeagent.probes.common import ProbeStudyConfig
    from mazeagent.probes.interventions import clamp, layer_shape

    layer = layer or DEFAULT_LAYER
    value = ProbeStudyConfig.retarget_value if value is None else value
    shape = layer_shape(agent.net, layer)
    if len(shape) != 3:
        raise ValueError(f"layer {layer!r} has shape {shape}; a clamp at a square needs a spatial (H, W, C) layer")
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise ValueError(f"channel must be an int in [0, {shape[-1]}), got {channel!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
        raise ValueError(f"clamp value must be a finite number, got {value!r}")
    sq = check_square("clamp square", square, maze.size)
    cell = world_to_activation(np.array(inner_to_world(sq, maze.size)), shape[0])
    return {layer: clamp([int(channel)], tuple(int(v) for v in cell), float(value), shape)}


def video(agent: Agent, maze: Maze, patched: Mapping[str, Any] | None = None, side_by_side: bool = True,
          steps: int = 100, seed: int = 0, greedy: bool = False, path: str | os.PathLike | None = None
          ) -> np.ndarray | Path:
    """An episode of ``agent`` from ``maze`` as frames the agent sees, one per square visited (start and end
    included); with ``patched`` hooks, also the patched agent's episode from the same maze and seed, placed beside
    it (``side_by_side``; the shorter one holds its last frame) or after it. With ``path`` (``.gif``) writes an
    animated GIF (:func:`mazeagent.media.save_gif`) and returns the path, else returns the uint8 frames
    (T, 64, W, 3)."""
    from mazeagent.env.mazes import observations
    from mazeagent.media import save_gif

    runs = [agent.play(maze, steps, seed, greedy)]
    if patched is not None:
        with agent.patched(patched):
            runs.append(agent.play(maze, steps, seed, greedy))
    mazes, m = maze.mazes, (int(maze.mazes.grid.shape[-1]) - maze.size) // 2
    clips = [np.asarray(observations(mazes, np.zeros(len(r.squares), np.int64), r.squares + m, r.facing))
             for r in runs]
    if len(clips) == 1:
        frames = clips[0]
    elif side_by_side:
        t = max(len(c) for c in clips)
        a, b = (np.concatenate([c, np.repeat(c[-1:], t - len(c), axis=0)]) for c in clips)
        frames = np.concatenate([a, np.full((t, a.shape[1], VIDEO_GAP, 3), 255, np.uint8), b], axis=2)
    else:
        frames = np.concatenate(clips)
    return frames if path is None else save_gif(frames, path)


def plot_channel(maze: Maze, cache: Mapping[str, np.ndarray], layer: str, channel: int, ax: Any = None):
    """Heatmap of one channel of a cached activation (``Agent.run_with_cache``) over the observation it came
    from: the activation grid covers the whole 64x64 frame, so each cell is drawn over the pixels it sees.
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    from mazeagent.env.mazes import observations

    if layer not in cache:
        raise ValueError(f"layer {layer!r} is not in the cache (it holds {sorted(cache)}); pass it in names=")
    acts = np.asarray(cache[layer])
    if acts.ndim != 3:
        raise ValueError(f"layer {layer!r} has shape {acts.shape}; a heatmap needs a spatial (H, W, C) activation")
    if not 0 <= channel < acts.shape[-1]:
        raise ValueError(f"channel must be in [0, {acts.shape[-1]}), got {channel}")
    frame = np.asarray(observations(maze.mazes, np.zeros(1, np.int64)))[0]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.5, 4))
    ax.imshow(frame, extent=(0, 64, 64, 0))
    im = ax.imshow(acts[..., channel], extent=(0, 64, 64, 0), cmap="RdBu_r", alpha=0.6,
                   vmin=-np.abs(acts[..., channel]).max(), vmax=np.abs(acts[..., channel]).max())
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"{layer} [{channel}]", fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])
    return fig


def load_agent(path: str | os.PathLike | None = None) -> Agent:
    """An agent from a run directory, a checkpoint directory, a published ``.pth`` file (converted in memory with the
    safe reader, nothing executed) or, with no argument, the bundled agent."""
    from mazeagent.ppo.checkpoint import BUNDLED_AGENT, load_policy

    path = BUNDLED_AGENT if path is None else Path(path)
    net, params, config = load_policy(path)
    return Agent(net, params, config, source=str(path))
