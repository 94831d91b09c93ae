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
from mazeagent.maze.level import Level, inner_to_world
from mazeagent.nets.actions import GROUP_NAMES

MAZE_FORMAT = "mazeagent-maze-v1"
BUNDLED_AGENT = Path(__file__).parent / "assets" / "agent"


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
        m = cls.from_ascii(d["rows_top_first"], int(d.get("background", 0)))
        seed = d.get("seed")
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
        from probes.vfield import field_probs

        sq = maze.mouse if square is None else maze.with_mouse(*square).mouse  # validated like any edit
        world = np.array([inner_to_world(sq, maze.size)], np.int32)
        p = field_probs(self.net, self.params, maze.mazes, np.zeros(1, np.int64), world, self.hooks)[0]
        return {name: float(v) for name, v in zip(GROUP_NAMES, p, strict=True)}

    def vector_field(self, maze: Maze):
        """The policy's field over every open square (probes/vfield.py), under the current patch if any."""
        from probes.vfield import vector_field

        return vector_field(self.net, self.params, maze.mazes, 0, self.hooks)

    def run_with_cache(self, maze: Maze, names: Sequence[str] | None = None
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(logits (15,), {name: activation})`` for the observation with the mouse where it stands."""
        from mazeagent.env.mazes import observations
        from mazeagent.nets.hooks import run_with_cache

        obs = observations(maze.mazes, np.zeros(1, np.int64))
        (logits, _), cache = run_with_cache(self.net, self.params, obs, names, hooks=self.hooks)
        return np.asarray(logits[0]), {k: np.asarray(v[0]) for k, v in cache.items()}

    @contextlib.contextmanager
    def patched(self, hooks: Mapping[str, Any]) -> Iterator[Agent]:
        """Apply ``hooks`` to every call inside the block (patches compose with an enclosing one)."""
        from probes.interventions import compose_hooks

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
    from probes.steering import cheese_vectors, steer

    if maze.cheese is None:
        raise ValueError("the maze has no cheese, so it has no cheese vector")
    layer = layer or DEFAULT_LAYER
    return steer(layer, cheese_vectors(agent.net, agent.params, maze.mazes, layer)[0], coeff)


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
    from mazeagent.ppo.checkpoint import load_policy

    path = BUNDLED_AGENT if path is None else Path(path)
    net, params, config = load_policy(path)
    return Agent(net, params, config, source=str(path))
