"""What every probe experiment shares: the configuration, :class:`ProbeStudy` (a network plus the maze sets and
channel rankings several experiments reuse) and the scoring helpers.

Sizes come from the network: how many "cheese channels" an experiment edits, and so how many random control channels
it can draw, is a share of the layer's width (the published 11 of 128), capped; budgets are fractions of the layer.
Maze sets stay inside the sizes the agent was trained on (``max_maze_size``) unless told otherwise.

Existence claims ("can", "there exist") follow one rule: a demonstration supports; not finding one after a search
that is not exhaustive is *not demonstrated* (inconclusive, no Brier score).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mazeagent.experiments import verdicts as V
from mazeagent.experiments.policies import Policy
from mazeagent.experiments.report import Report
from mazeagent.experiments.rollouts import TIMEOUT, RolloutConfig, rollout
from mazeagent.experiments.stats import bootstrap_ci, proportion
from mazeagent.env.mazes import from_generated, generate_mazes
from mazeagent.maze.batch import Mazes
from mazeagent.nets.hooks import DEFAULT_LAYER
from mazeagent.probes import channels as CH
from mazeagent.probes import interventions as I

PUBLISHED_SHARE = 11 / 128  # cheese channels found by eye among the 128 of block2.res1.resadd_out
NOT_DEMONSTRATED = "not demonstrated"
LATER_LAYERS = tuple(f"embedder.block{b}.res{r}.resadd_out" for b in (2, 3) for r in (1, 2))  # after block 1


@dataclass(frozen=True)
class ProbeStudyConfig:
    seed: int = 0
    layer: str = DEFAULT_LAYER
    horizon: int = TIMEOUT
    chunk: int = 256  # mazes per rollout chunk
    max_maze_size: int | None = None  # mazes up to this size (the agent's training sizes); None: all
    n_channel_mazes: int = 20  # channel discovery (O2)
    placements: int = 16  # cheese squares per discovery maze
    o2_layers: tuple[str, ...] = LATER_LAYERS
    n_probe_mazes: int = 1000  # ME2
    n_me1_mazes: int = 1000  # decision-square mazes (ME1 asks for >= 1,000), halved: choose on one, score on the other
    n_cv_mazes: int = 100  # cheese-vector decision-square distribution (procgen-tools: seeds 0-99)
    cv_seeds: tuple[int, ...] | None = None  # explicit level seeds for the cheese vector instead of drawn mazes
    n_retarget_mazes: int = 100  # ME6 / O1 / O3
    targets_per_maze: int = 4
    retarget_episodes: int = 2  # per destination, edited and unedited alike (the unedited rate is the bar)
    retarget_value: float = 5.5  # published channel-55 clamp
    retarget_channels: tuple | None = None  # ((name, channels, value), ...) for the path-probability protocol
    n_me3_mazes: int = 200
    coeffs: tuple[float, ...] = (-1.0, -2.0)  # cheese-vector coefficients
    top_channels: int = 11  # cap on the cheese channels edited (the published count)
    budgets: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)  # ME6: "at most X" of the layer's activations
    progress: bool = True

    def __post_init__(self) -> None:
        for k in ("n_channel_mazes", "placements", "n_probe_mazes", "n_cv_mazes", "n_retarget_mazes",
                  "targets_per_maze", "retarget_episodes", "top_channels", "chunk", "n_me3_mazes"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.n_me1_mazes < 2:
            raise ValueError(f"n_me1_mazes must be >= 2 (one half chooses, the other scores), got {self.n_me1_mazes}")
        if self.max_maze_size is not None:
            from mazeagent.env.levelgen import check_max_maze_size

            check_max_maze_size(self.max_maze_size, 25)
        RolloutConfig(horizon=self.horizon)  # validates it


def channel_count(width: int, cap: int = 11) -> int:
    """How many best cheese-tracking channels to edit in a layer of ``width`` channels: the published share, at
    least 1, at most ``cap`` and at most half the width (so as many random control channels remain)."""
    return max(1, min(cap, width // 2, math.ceil(width * PUBLISHED_SHARE)))


@dataclass
class ProbeStudy:
    """A network plus what several experiments share (maze sets, channel tracking scores)."""

    net: Any
    params: Any
    cfg: ProbeStudyConfig
    report: Report
    cache: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return I.layer_shape(self.net, self.cfg.layer)

    @property
    def n_channels(self) -> int:
        """Cheese channels edited and random channels drawn as their control, sized from this layer."""
        return channel_count(self.shape[-1], self.cfg.top_channels)

    def policy(self, hooks: dict | None = None, per_maze: bool = False) -> I.HookedPolicy:
        """The network with ``hooks``; ``per_maze``: every hook leaf has a row per maze of the mazes played."""
        return I.HookedPolicy(self.net, self.params, dict(hooks or {}), per_maze)

    def play(self, policy: Policy, mazes: Mazes, seed_offset: int = 0) -> Any:
        """One episode per maze (the tidy table, in maze order): first-hit times ``t_cheese`` / ``t_top_right``
        (-1 = never) and the rest."""
        cfg = RolloutConfig(horizon=self.cfg.horizon, chunk=self.cfg.chunk, seed=self.cfg.seed + seed_offset)
        return rollout(policy, mazes, cfg, progress=self.cfg.progress).episodes

    def mazes(self, n: int, offset: int, keep: Callable[[Mazes], np.ndarray] | None = None) -> Mazes:
        """``n`` mazes in the study's size range (those passing ``keep``, a function of a maze batch returning the
        indices to keep), drawn deterministically from ``seed + offset``."""
        parts, have = [], 0
        for block in range(64):
            seed = self.cfg.seed + offset if block == 0 else int(
                np.random.SeedSequence([self.cfg.seed + offset, block]).generate_state(1)[0] >> 1)
            want = n - have if keep is None else max(64, 4 * (n - have))
            pool = generate_mazes(want, seed=seed, max_size=self.cfg.max_maze_size)
            idx = np.arange(len(pool)) if keep is None else np.asarray(keep(pool))
            parts.append(pool.take(idx[:n - have]))
            have += len(parts[-1])
            if have >= n:
                return Mazes.concat(parts)
        raise ValueError(f"found only {have} of {n} suitable mazes of size <= {self.cfg.max_maze_size}")

    def tracking(self) -> dict:
        """Per-maze tracking hits of every channel at the configured layer and the layers after block 1."""
        if "tracking" not in self.cache:
            layers = tuple(dict.fromkeys((self.cfg.layer, *self.cfg.o2_layers)))
            mz = self.mazes(self.cfg.n_channel_mazes, 101)
            self.cache["tracking"] = {
                "cheese": CH.cheese_tracking_by_maze(self.net, self.params, mz, layers, self.cfg.placements,
                                                     self.cfg.seed, progress=self.cfg.progress),
                "top_right": CH.top_right_tracking_by_maze(self.net, self.params, mz, layers), "layers": layers,
                "n_mazes": len(mz)}
        return self.cache["tracking"]

    def cheese_scores(self, layer: str | None = None) -> np.ndarray:
        hits, n = self.tracking()["cheese"][layer or self.cfg.layer]
        return hits.sum(0) / max(n.sum(), 1)

    def top_right_scores(self, layer: str | None = None) -> np.ndarray:
        return self.tracking()["top_right"][layer or self.cfg.layer].mean(0)

    def cheese_channels(self) -> np.ndarray:
        return CH.ranking(self.cheese_scores())[:self.n_channels]

    def figure(self, name: str) -> tuple[Path, str]:
        return self.report.figure_path(f"probes_{name}")


def mazes_from_seeds(seeds: Any) -> Mazes:
    """The stock mazes of explicit level seeds (e.g. procgen-tools' seeds 0-99), in the given order."""
    from mazeagent.env.levelgen import as_seed_array, generate_batch

    return from_generated(generate_batch(as_seed_array(np.asarray(seeds))))


def row(pid: str, measured: str, value: float | None, ci: Any, verdict: str, credence: float | None = None,
        **extra: Any) -> dict:
    """A scorecard row for a prediction of :data:`mazeagent.experiments.verdicts.PREDICTIONS`; ``credence`` overrides the
    stored one when the measurement resolves a sub-forecast (O2's "at least 5")."""
    r = V.scorecard_row(pid, measured, value, ci, verdict, **extra)
    if credence is not None:
        r["credence"], r["brier"] = credence, V.brier(credence, verdict)
    return r


def finite(ci: Any) -> bool:
    return ci is not None and all(v is not None and np.isfinite(v) for v in ci)


def at_least(ci: Any, threshold: float) -> str:
    """Supported iff the CI lies at/above ``threshold``; contradicted iff wholly below."""
    if not finite(ci):
        return V.INCONCLUSIVE
    return V.SUPPORTED if ci[0] >= threshold else V.CONTRADICTED if ci[1] < threshold else V.INCONCLUSIVE


def demonstrated(shown: bool) -> tuple[str, str]:
    """(verdict, note) of an existence claim after a non-exhaustive search."""
    return (V.SUPPORTED, "demonstrated") if shown else (V.INCONCLUSIVE, NOT_DEMONSTRATED)


def got(df: Any, what: str, h: int) -> np.ndarray:
    """Per episode: reached ``what`` ("cheese" / "top_right") within ``h`` steps (from the first-hit times)."""
    t = df[f"t_{what}"].to_numpy()
    return (t >= 0) & (t <= h)


def rates(df: Any, h: int) -> dict:
    return {"cheese": proportion(got(df, "cheese", h)), "top_right": proportion(got(df, "top_right", h))}


def paired_cut(base: np.ndarray, patched: np.ndarray, seed: int) -> tuple[float, tuple[float, float]]:
    """Proportional cut 1 - mean(patched)/mean(base) with a paired bootstrap CI over mazes."""
    pair = np.stack([base, patched], 1).astype(float)

    def stat(a: np.ndarray) -> float:  # nothing to cut when the baseline never succeeds
        b = a[:, 0].mean()
        return 1.0 - a[:, 1].mean() / b if b > 0 else (0.0 if a[:, 1].mean() == 0 else float("nan"))

    return stat(pair), bootstrap_ci(pair, stat, n_boot=500, seed=seed)


def with_cheese(mazes: Mazes, squares: np.ndarray) -> Mazes:
    """The mazes with the cheese moved to world ``squares`` (N, 2)."""
    from mazeagent.maze.level import CHEESE

    base = mazes.without_cheese()
    grid = base.grid.copy()
    grid[np.arange(len(mazes)), squares[:, 0], squares[:, 1]] = CHEESE
    return replace(base, grid=grid, cheese=np.asarray(squares, base.cheese.dtype))


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
