"""Activation datasets: named activations of a network at chosen mouse positions of many mazes, with labels.

Positions: ``"start"`` (the mouse's start square), ``"decision"`` (the canonical decision square; mazes without one
are skipped) or ``"all"`` (every open square except the cheese). One row per (maze, position). Labels use the suite's
conventions (:mod:`mazeagent.maze.level`): world and inner ``(row, col)`` squares with row 0 at the bottom, and
activation cells in image order for each spatial size of the captured layers.

Large datasets stream: activations are computed in chunks and, given ``out_dir``, each chunk is written as its own
``part-#####.npz`` (float16 optional) so memory stays bounded; :func:`load` concatenates the parts back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jax
import numpy as np

from mazeagent.env.mazes import observations
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import CHEESE, WORLD, world_to_activation
from mazeagent.nets.hooked import HookedImpala
from mazeagent.nets.hooks import check_names

POSITIONS = ("start", "decision", "all")


def capture(net: Any, params: Any, obs: jax.Array, names: Iterable[str]) -> dict[str, np.ndarray]:
    """NHWC activations at hook ``names`` as host arrays (compiled once per net, names and batch size: batches run
    at their own size, :func:`collect` pads its chunks)."""
    _, cache = HookedImpala(net, params, pad=False).run_with_cache(obs, check_names(names))
    return {k: np.asarray(v) for k, v in cache.items()}


def positions(mazes: Mazes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(maze index (N,), world square (N, 2))`` of every sampled position."""
    if where not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {where!r}")
    if where == "start":
        return np.arange(len(mazes)), np.asarray(mazes.mouse, np.int32)
    if where == "decision":
        ds = mazes.geometry.decision_square
        keep = np.nonzero(ds[:, 0] >= 0)[0]
        return keep, ds[keep].astype(np.int32)
    free = (~mazes.batch.walls) & (mazes.grid != CHEESE)
    m, r, c = np.nonzero(free)
    return m, np.stack([r, c], 1).astype(np.int32)


@dataclass
class ActivationDataset:
    """``acts[name]``: (N, ...) activations (NHWC); ``labels[key]``: (N, ...) arrays; one row per position."""

    acts: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.labels["maze"]))

    def save(self, path: str | Path, float16: bool = False) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"act/{k}": (v.astype(np.float16) if float16 else v) for k, v in self.acts.items()}
        arrays.update({f"label/{k}": v for k, v in self.labels.items()})
        arrays["meta"] = np.array(json.dumps(self.meta))
        np.savez_compressed(path, **arrays)
        return path


def _labels(mazes: Mazes, maze: np.ndarray, sq: np.ndarray, sizes: Iterable[int],
            got_cheese: np.ndarray | None) -> dict[str, np.ndarray]:
    m = ((WORLD - mazes.size) // 2)[maze][:, None]
    cheese = mazes.cheese[maze]
    ds = mazes.geometry.decision_square[maze]
    lab = {"maze": maze.astype(np.int32), "level_seed": mazes.seed[maze], "maze_size": mazes.size[maze],
           "mouse": sq, "mouse_inner": sq - m, "cheese": cheese, "cheese_inner": np.where(cheese >= 0, cheese - m, -1),
           "decision_square": ds, "at_decision": (sq == ds).all(1)}
    for s in sorted(set(sizes)):
        lab[f"cheese_cell_{s}"] = world_to_activation(cheese, s)
        lab[f"mouse_cell_{s}"] = world_to_activation(sq, s)
    if got_cheese is not None:
        lab["got_cheese"] = np.asarray(got_cheese, bool)[maze]
    return lab


def collect(net: Any, params: Any, mazes: Mazes, names: Iterable[str], where: str = "start", chunk: int = 256,
            got_cheese: np.ndarray | None = None, out_dir: str | Path | None = None, float16: bool = False,
            progress: bool = True) -> ActivationDataset | Path:
    """Capture ``names`` at the chosen positions of every maze.

    ``got_cheese`` (per maze, e.g. ``rollout(...).episodes["cheese_500"]``) adds that label. Without ``out_dir``
    the dataset is returned in memory; with it, chunks are written as they are computed and the directory returned.
    """
    from tqdm.auto import tqdm

    names = check_names(names)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if got_cheese is not None and len(got_cheese) != len(mazes):
        raise ValueError(f"got_cheese needs one value per maze ({len(mazes)}), got {len(got_cheese)}")
    maze, sq = positions(mazes, where)
    sizes = []
    meta = {"names": names, "where": where, "n_mazes": len(mazes), "scale": int(getattr(net, "scale", 1))}
    parts: list[tuple[dict, dict]] = []
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(tqdm(range(0, len(maze), chunk), desc=f"activations@{where}", disable=not progress)):
        rows = slice(s, s + chunk)
        n = len(maze[rows])
        pad = chunk - n  # one compiled shape
        obs = observations(mazes, np.pad(maze[rows], (0, pad)), np.pad(sq[rows], ((0, pad), (0, 0))))
        acts = {nm: a[:n] for nm, a in capture(net, params, obs, names).items()}
        sizes = [a.shape[1] for a in acts.values() if a.ndim == 4]
        lab = _labels(mazes, maze[rows], sq[rows], sizes, got_cheese)
        if out is None:
            parts.append((acts, lab))
        else:
            ActivationDataset(acts, lab, meta).save(out / f"part-{k:05d}.npz", float16)
    if out is not None:
        (out / "meta.json").write_text(json.dumps(meta))
        return out
    if not parts:
        return ActivationDataset({nm: np.zeros((0,)) for nm in names}, {"maze": np.zeros(0, np.int32)}, meta)
    return ActivationDataset({nm: np.concatenate([p[0][nm] for p in parts]) for nm in names},
                             {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}, meta)


def load(path: str | Path, names: Iterable[str] | None = None, dtype: Any = np.float32) -> ActivationDataset:
    """Read a dataset saved by :meth:`ActivationDataset.save` (a file) or by :func:`collect` (a directory of
    parts); ``names`` restricts which activations are read."""
    path = Path(path)
    files = sorted(path.glob("part-*.npz")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"no activation dataset at {path} (expected an .npz file or a directory of part-*.npz)")
    acts: dict[str, list] = {}
    labels: dict[str, list] = {}
    meta: dict = {}
    for f in files:
        with np.load(f) as z:
            meta = json.loads(str(z["meta"]))
            for k in z.files:
                if k.startswith("act/") and (names is None or k[4:] in names):
                    acts.setdefault(k[4:], []).append(z[k].astype(dtype))
                elif k.startswith("label/"):
                    labels.setdefault(k[6:], []).append(z[k])
    if names is not None and set(names) - set(acts):
        raise ValueError(f"{path} holds no activations {sorted(set(names) - set(acts))}; it has {sorted(acts)}")
    return ActivationDataset({k: np.concatenate(v) for k, v in acts.items()},
                             {k: np.concatenate(v) for k, v in labels.items()}, meta)
