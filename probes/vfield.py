"""Policy vector fields: the 5-way action distribution with the mouse on every open square of a maze, in one
batched forward pass (procgen-tools ``vector_field`` rendered one env per square; here it is one jitted call).

A field's ``probs`` are ordered (left, down, up, right, noop) as :data:`mazeagent.nets.GROUP_NAMES`; its arrow at a
square is ``(x, y) = (p_right - p_left, p_up - p_down)`` with y pointing up, as the published quiver plots.
The mouse faces left (its pose at the start of an episode), the cheese square itself is not a mouse position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import jax
import numpy as np

from mazeagent.batching import pad_rows
from mazeagent.env.mazes import observations
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import CHEESE, WORLD
from mazeagent.nets.actions import group_probs
from mazeagent.nets.hooked import HookedImpala


@dataclass(frozen=True)
class VectorField:
    """``squares`` (N, 2) world squares of maze ``maze``; ``probs`` (N, 5) grouped action probabilities.

    ``mazes`` (the batch it was computed on) lets a field draw itself: ``vf.plot()``; ``a - b`` is :func:`diff`."""

    maze: int
    squares: np.ndarray
    probs: np.ndarray
    mazes: Mazes | None = field(default=None, compare=False, repr=False)

    def __sub__(self, other: "VectorField") -> "VectorField":
        return diff(self, other)

    def plot(self, ax: Any = None, title: str = "", color: str = "red") -> Any:
        """The quiver plot over the maze (:func:`plot`); returns the matplotlib Figure."""
        if self.mazes is None:
            raise ValueError("this field does not know its maze; use mazeagent.probes.vfield.plot(vf, mazes)")
        return plot(self, self.mazes, ax=ax, title=title, color=color).figure

    @property
    def arrows(self) -> np.ndarray:
        """(N, 2) net arrow (x right, y up)."""
        p = self.probs
        return np.stack([p[:, 3] - p[:, 0], p[:, 2] - p[:, 1]], axis=1)

    def at(self, square) -> np.ndarray:
        """The 5 probabilities at one world square."""
        hit = np.nonzero((self.squares == np.asarray(square)).all(1))[0]
        if not len(hit):
            raise ValueError(f"square {tuple(square)} is not an open mouse position of maze {self.maze}")
        return self.probs[hit[0]]


def open_squares(mazes: Mazes, i: int) -> np.ndarray:
    """World squares the mouse can stand on in maze ``i`` (open, not the cheese), row-major."""
    free = ~mazes.batch.walls[i] & (mazes.grid[i] != CHEESE)
    return np.argwhere(free).astype(np.int32)


def field_probs(net: Any, params: Any, mazes: Mazes, idx: np.ndarray, squares: np.ndarray,
                hooks: Mapping[str, Any] | None = None, max_batch: int = 1024, per_row: bool = False) -> np.ndarray:
    """(N, 5) grouped probabilities with the mouse of maze ``idx[k]`` on ``squares[k]``, facing left.

    ``per_row=True``: every leaf of ``hooks`` has a leading axis of N (one intervention per row)."""
    idx, squares = np.asarray(idx), np.asarray(squares)
    model = HookedImpala(net, params, pad=False)  # padded here, to multiples of 64
    out = []
    for s in range(0, len(idx), max_batch):
        k = len(idx[s:s + max_batch])
        size = min(max_batch, -(-k // 64) * 64)  # few compiled shapes, little padding
        obs = observations(mazes, pad_rows(idx[s:s + max_batch], size), pad_rows(squares[s:s + max_batch], size))
        h = dict(hooks or {})
        if per_row:
            h = jax.tree.map(lambda a: pad_rows(np.asarray(a)[s:s + max_batch], size), h)
        logits, _ = model.run_with_hooks(obs, h)
        out.append(np.asarray(group_probs(logits))[:k])
    return np.concatenate(out) if out else np.zeros((0, 5), np.float32)


def vector_field(net: Any, params: Any, mazes: Mazes, i: int, hooks: Mapping[str, Any] | None = None) -> VectorField:
    """The field of maze ``i``, optionally under interventions ``hooks`` (see :mod:`mazeagent.probes.interventions`)."""
    sq = open_squares(mazes, i)
    return VectorField(i, sq, field_probs(net, params, mazes, np.full(len(sq), i), sq, hooks), mazes)


def diff(patched: VectorField, original: VectorField) -> VectorField:
    """``patched - original`` on the squares both share (a cheese/no-cheese pair differs by the cheese square)."""
    common = {tuple(s): k for k, s in enumerate(original.squares)}
    keep = [k for k, s in enumerate(patched.squares) if tuple(s) in common]
    base = np.array([common[tuple(patched.squares[k])] for k in keep], np.int64)
    return VectorField(patched.maze, patched.squares[keep], patched.probs[keep] - original.probs[base], patched.mazes)


def total_variation(a: VectorField, b: VectorField) -> float:
    """Mean total-variation distance between two fields' action distributions over shared squares (unlike the
    published Frobenius-norm "TV", this counts noop changes too)."""
    d = diff(a, b)
    return float(0.5 * np.abs(d.probs).sum(1).mean()) if len(d.squares) else 0.0


def plot(vf: VectorField, mazes: Mazes, ax: Any = None, title: str = "", color: str = "red") -> Any:
    """Quiver plot of a field over the maze (walls dark, cheese yellow), y up as in the published figures."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 5))[1]
    walls = mazes.batch.walls[vf.maze]
    img = np.where(walls, 0.2, 1.0)[..., None].repeat(3, -1)
    if mazes.cheese[vf.maze, 0] >= 0:
        img[tuple(mazes.cheese[vf.maze])] = (1.0, 0.85, 0.0)
    ax.imshow(img, origin="lower", interpolation="nearest")
    a = vf.arrows
    ax.quiver(vf.squares[:, 1], vf.squares[:, 0], a[:, 0], a[:, 1], color=color, angles="xy", scale_units="xy",
              scale=1.0, width=0.004)
    m = (WORLD - int(mazes.size[vf.maze])) // 2
    ax.set_xlim(m - 0.5, WORLD - m - 0.5)
    ax.set_ylim(m - 0.5, WORLD - m - 0.5)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title)
    return ax


def plot_comparison(original: VectorField, patched: VectorField, mazes: Mazes, path: str, title: str = "") -> None:
    """Original, patched and patched − original fields side by side, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
    plot(original, mazes, axes[0], "original")
    plot(patched, mazes, axes[1], "patched")
    plot(diff(patched, original), mazes, axes[2], "patched − original", color="blue")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["VectorField", "open_squares", "field_probs", "vector_field", "diff", "total_variation", "plot",
           "plot_comparison"]
