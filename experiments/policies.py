"""Everything that picks actions, behind one protocol: ``policy(states, key) -> (B, 15) logits``.

:class:`States` is a batch of (maze, mouse square, facing) with the maze index of each row, so one call serves
every kind of policy: a network reads the frames (``states.obs``, rendered on first use), a scripted policy reads
the true state (``states.level``), and a patch that differs per maze picks each row's own patch by
``states.maze``. A policy must be memoryless and deterministic in the state: the rollout engine evaluates each
distinct state once and reuses its logits (``key`` is the rollout's key, for policies that want randomness tied
to it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import LevelBatch
from mazeagent.nets import ACTION_GROUPS, GROUP_NAMES
from mazeagent.nets.hooked import HookedImpala

NOOP = GROUP_NAMES.index("noop")


@dataclass(frozen=True)
class States:
    """The mouse of maze ``maze[i]`` (an index into ``mazes``) at world square ``squares[i]`` facing
    ``reflected[i]``; ``render()`` gives their (B, 64, 64, 3) uint8 frames, called at most once via :attr:`obs`."""

    mazes: Mazes
    maze: np.ndarray
    squares: np.ndarray
    reflected: np.ndarray
    render: Callable[[], jax.Array] = field(repr=False)

    def __len__(self) -> int:
        return len(self.maze)

    @cached_property
    def obs(self) -> jax.Array:
        """The frames; scripted policies never ask, so they never pay for rendering."""
        return self.render()

    @property
    def level(self) -> LevelBatch:
        """The true state, one row per queried state (``mouse`` = the queried squares)."""
        b = self.mazes.batch
        return LevelBatch(walls=b.walls[self.maze], size=b.size[self.maze], mouse=self.squares,
                          cheese=b.cheese[self.maze])


@runtime_checkable
class Policy(Protocol):
    """Anything that picks actions: (B, 15) procgen-action logits for ``states``."""

    def __call__(self, states: States, key: jax.Array) -> jax.Array | np.ndarray: ...


@runtime_checkable
class ValuePolicy(Policy, Protocol):
    """A policy with a value head (update-rule conformity reads it)."""

    def logits_value(self, states: States) -> tuple[jax.Array | np.ndarray, jax.Array | np.ndarray]: ...


# ------------------------------------------------------------------------------------------ scripted policies

def group_logits(weights: dict[str, float]) -> np.ndarray:
    """(15,) logits giving move groups the given relative weights (spread evenly over each group's actions)."""
    logits = np.full(15, -1e9, np.float32)
    for name, w in weights.items():
        if name not in ACTION_GROUPS:
            raise ValueError(f"unknown move group {name!r}; choose from {GROUP_NAMES}")
        if w < 0:
            raise ValueError(f"group weights must be >= 0, got {name}={w}")
        if w > 0:
            logits[list(ACTION_GROUPS[name])] = math.log(w / len(ACTION_GROUPS[name]))
    if (logits <= -1e9).all():
        raise ValueError("a scripted policy needs at least one group with positive weight")
    return logits


def constant_policy(weights: dict[str, float]) -> Policy:
    """One group distribution everywhere (``{"up": 1, "right": 1}`` = always up-or-right)."""
    logits = jnp.asarray(group_logits(weights))
    return lambda states, key: jnp.broadcast_to(logits, (len(states), 15))


def uniform_policy() -> Policy:
    """Uniform over the 15 procgen actions: left 3/15, down 1/15, up 1/15, right 3/15, stay 7/15."""
    return lambda states, key: jnp.zeros((len(states), 15), jnp.float32)


def oracle_policy(target: str = "cheese") -> Policy:
    """Takes the first move of the shortest path to the cheese (or the ``"top_right"`` square); stays there."""
    from mazeagent.maze.landmarks import top_right_square
    from mazeagent.maze.paths import next_step_towards

    if target not in ("cheese", "top_right"):
        raise ValueError(f"oracle target must be 'cheese' or 'top_right', got {target!r}")
    table = np.stack([group_logits({g: 1.0}) for g in GROUP_NAMES])  # geometry MOVES = the first four groups

    def policy(states: States, key: jax.Array) -> np.ndarray:
        batch = states.level
        goal = batch.cheese if target == "cheese" else top_right_square(batch)
        moves = next_step_towards(batch, goal)
        m = moves[np.arange(len(batch)), batch.mouse[:, 0], batch.mouse[:, 1]]
        return table[np.where(m >= 0, m, NOOP)]

    return policy


# -------------------------------------------------------------------------------------------- network policy

def host_mesh() -> Any:
    """A 1-d mesh over several CPU devices, or None (one device, or accelerators: they need no help)."""
    devices = jax.devices()
    if len(devices) < 2 or devices[0].platform != "cpu":
        return None
    from jax.sharding import Mesh

    return Mesh(np.array(devices), ("batch",))


@dataclass(frozen=True)
class NetPolicy:
    """A network as a policy; :meth:`logits_value` also gives the value head (update-rule conformity).

    Batches run at their own size (the rollout engine already pads them to a few sizes), spread over the host
    devices when there are several (``mazeagent study`` asks XLA for two) and the batch divides evenly. Per-frame
    results equal one device's to float rounding; for the scale-1 net on our CPU they are bitwise equal."""

    net: Any
    params: Any

    @cached_property
    def model(self) -> HookedImpala:
        """The network as a hooked model (for activations of the very policy that was played)."""
        return HookedImpala(self.net, self.params, pad=False, mesh=host_mesh())

    def apply(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(logits, values)`` of frames ``obs`` (B, 64, 64, 3)."""
        return self.model(obs)

    def __call__(self, states: States, key: jax.Array) -> jax.Array:
        return self.apply(states.obs)[0]

    def logits_value(self, states: States) -> tuple[jax.Array, jax.Array]:
        return self.apply(states.obs)

    @classmethod
    def load(cls, checkpoint: str | Path) -> "NetPolicy":
        from mazeagent.ppo.checkpoint import load_policy

        net, params, _ = load_policy(checkpoint)
        return cls(net, params)
