"""Maze-size curriculum: small mazes first, then larger ones (the ``curriculum`` keys of ``PPOConfig``).

A schedule ``((start_env_step, max_maze_size), ...)`` gives each update the stage whose start is the latest at or
before the update's first env step. With ``curriculum_advance_at`` a stage also ends early, once the training cheese
rate over its newest ``curriculum_window`` episodes (whole updates) reaches that rate; the starts are then deadlines.

Why this shape: ``max_maze_size`` is a static env option, so each stage runs its own compiled update (the runner
compiles one per size, on first use); the env state's shapes do not depend on it, so one state flows through every
stage. Sizes only grow, so levels an env queued under an earlier stage still fit the current one. The stage and the
rolling window are host state, stored in each checkpoint's ``extra`` so that a resume is exact.

No jax at import: :meth:`PPOConfig.validate` calls :func:`schedule_errors` before anything compiles.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

Schedule = tuple[tuple[int, int], ...]


def stage_at(schedule: Schedule, env_step: int) -> int:
    """Index of the stage that the step schedule alone gives the update starting at ``env_step``."""
    return max(bisect.bisect_right([start for start, _ in schedule], env_step) - 1, 0)


def schedule_errors(config: Any) -> list[str]:
    """Every problem with ``config.curriculum`` (a :class:`PPOConfig`), as messages for its ValueError."""
    sched, errors = config.curriculum, []
    if sched is None:
        return errors if config.curriculum_advance_at is None else \
            [f"curriculum_advance_at={config.curriculum_advance_at} needs a curriculum"]
    from mazeagent.env.levelgen import WORLD_DIMS

    if not sched:
        return ["curriculum must hold at least one (start_env_step, max_maze_size) stage, e.g. 0:5,100000:9"]
    starts, sizes = [s for s, _ in sched], [n for _, n in sched]
    if starts[0] != 0:
        errors.append(f"curriculum's first stage must start at env step 0, got {starts[0]}")
    if any(b <= a for a, b in zip(starts, starts[1:])):
        errors.append(f"curriculum's stage starts must increase, got {starts}")
    world = WORLD_DIMS.get(config.distribution_mode)
    if world is not None:
        bad = [n for n in sizes if not (3 <= n <= world and n % 2)]
        if bad:
            errors.append(f"curriculum's maze sizes must be odd ints in [3, {world}] in {config.distribution_mode} "
                          f"mode, got {bad}")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        errors.append(f"curriculum's maze sizes must increase (levels queued under one stage must fit the next), "
                      f"got {sizes}")
    if config.max_maze_size is not None and sizes[-1] > config.max_maze_size:
        errors.append(f"curriculum's last size {sizes[-1]} exceeds max_maze_size={config.max_maze_size}")
    last = (config.total_timesteps // config.batch_size - 1) * config.batch_size if config.batch_size > 0 else 0
    if config.curriculum_advance_at is None and starts[-1] > last:
        errors.append(f"curriculum stage start {starts[-1]} is never reached: the last update starts at env step "
                      f"{last} (or set curriculum_advance_at to reach it by the cheese rate)")
    return errors


@dataclass
class Curriculum:
    """The runner's stage tracker. ``stage`` is the current stage (the next update may still move on by the step
    schedule: :meth:`begin`); ``window`` holds ``(episodes, cheese)`` of the stage's newest updates, trimmed to the
    fewest that cover ``curriculum_window`` episodes."""

    config: Any  # PPOConfig with a curriculum
    stage: int = 0
    window: list[tuple[int, int]] = field(default_factory=list)
    updates: dict[int, Any] = field(default_factory=dict, repr=False)  # size -> the runner's compiled update

    @classmethod
    def restore(cls, config: Any, extra: dict[str, Any] | None) -> "Curriculum":
        """From a checkpoint's ``extra`` (what :meth:`to_json` saved), or stage 0 for a fresh run."""
        saved = (extra or {}).get("curriculum")
        if saved is None:
            return cls(config)
        return cls(config, int(saved["stage"]), [(int(e), int(c)) for e, c in saved["window"]])

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "window": [list(w) for w in self.window]}

    @property
    def size(self) -> int:
        return self.config.curriculum[self.stage][1]

    def begin(self, update: int) -> int:
        """Enter update ``update`` (0-based): move to the step schedule's stage if it is later; return the size."""
        s = stage_at(self.config.curriculum, update * self.config.batch_size)
        if s > self.stage:
            self.stage, self.window = s, []
        return self.size

    def observe(self, episodes: float, cheese_rate: float) -> None:
        """Feed one update's rollout stats; with ``curriculum_advance_at``, advance once the rolling rate reaches it."""
        cfg = self.config
        if cfg.curriculum_advance_at is None or self.stage == len(cfg.curriculum) - 1:
            return
        n = int(round(episodes))
        self.window.append((n, int(round(cheese_rate * n))))  # cheese_rate = cheese / max(episodes, 1)
        while len(self.window) > 1 and sum(e for e, _ in self.window[1:]) >= cfg.curriculum_window:
            self.window.pop(0)
        eps = sum(e for e, _ in self.window)
        if eps >= cfg.curriculum_window and sum(c for _, c in self.window) >= cfg.curriculum_advance_at * eps:
            self.stage, self.window = self.stage + 1, []
