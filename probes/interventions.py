"""Composable activation interventions, as pytrees, for ``run_with_hooks`` and for rollouts.

Every intervention is a ``flax.struct`` dataclass with the hook signature ``__call__(x, point) -> x`` on an NHWC
activation ``(B, H, W, C)`` (or a vector layer ``(B, D)``). Because they are pytrees, the arrays of a hooks dict
``{hook_name: intervention}`` are ordinary *arguments* of the compiled forward pass
(:class:`mazeagent.nets.hooked.HookedImpala`): a new steering vector, channel subset or clamp target reuses the
compiled function instead of recompiling, which is what makes sweeps over coefficients, mazes and targets cheap.
Parameters may carry a leading batch axis aligned with the observations (one vector / mask per example), so per-maze
patches (:class:`HookedPolicy` with ``per_maze``) evaluate in one call. ``point`` (the hook's name and arguments,
:class:`mazeagent.nets.HookPoint`) is unused here: an intervention does the same wherever it is placed.

Channel indices are the published ones (NCHW channel ``c`` is NHWC ``[..., c]``, see :mod:`mazeagent.nets.hooks`).
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mazeagent.experiments.policies import States
from mazeagent.nets.hooked import HookedImpala
from mazeagent.nets.hooks import check_names, hook_shapes
from mazeagent.nets.impala import HookPoint


@struct.dataclass
class Identity:
    """Changes nothing (a control, and the unit of :class:`Compose`)."""

    def __call__(self, x: jax.Array, point: HookPoint) -> jax.Array:
        return x


@struct.dataclass
class AddVector:
    """``x + coeff * vector``; ``vector`` is one activation ``(H, W, C)`` or per-example ``(B, H, W, C)``."""

    vector: jax.Array
    coeff: jax.Array = 1.0

    def __call__(self, x: jax.Array, point: HookPoint) -> jax.Array:
        return x + jnp.asarray(self.coeff, x.dtype) * jnp.asarray(self.vector, x.dtype)


@struct.dataclass
class SetMasked:
    """``where(mask, values, x)``: zero / mean / resample ablation of channel subsets and clamps are all this.

    ``mask`` and ``values`` broadcast against ``x`` (e.g. ``(H, W, C)``, or ``(B, H, W, C)`` per example).
    """

    mask: jax.Array
    values: jax.Array

    def __call__(self, x: jax.Array, point: HookPoint) -> jax.Array:
        return jnp.where(self.mask, jnp.asarray(self.values, x.dtype), x)

    @property
    def edited_fraction(self) -> float:
        """Share of one example's activation entries this edit overwrites (ME6's budget)."""
        m = np.asarray(self.mask)
        return float(m.reshape(-1, *m.shape[-3:]).mean()) if m.ndim >= 3 else float(m.mean())


@struct.dataclass
class ClampCell:
    """Set the ``channels`` ((B, C) bool) of each example to ``value`` ((B,)) at its own activation cell ``cells``
    ((B, 2) image order): per-example retargeting clamps without a full (B, H, W, C) mask."""

    channels: jax.Array
    cells: jax.Array
    value: jax.Array

    def __call__(self, x: jax.Array, point: HookPoint) -> jax.Array:
        h, w = x.shape[1:3]
        at = ((jnp.arange(h)[None, :, None] == self.cells[:, 0, None, None])
              & (jnp.arange(w)[None, None, :] == self.cells[:, 1, None, None]))
        mask = at[..., None] & self.channels[:, None, None, :]
        return jnp.where(mask, jnp.asarray(self.value, x.dtype)[:, None, None, None], x)


@struct.dataclass
class Multiply:
    """Scale channels: positive values by ``pos``, negative by ``neg`` (per channel ``(C,)``; 1 = unchanged)."""

    pos: jax.Array
    neg: jax.Array

    def __call__(self, x: jax.Array, point: HookPoint) -> jax.Array:
        return x * jnp.where(x > 0, self.pos, self.neg).astype(x.dtype)


@struct.dataclass
class Compose:
    """Apply ``parts`` in order (the composition of patches on one layer)."""

    parts: tuple

    def __call__(self, x: jax.Array, point: HookPoint) -> jax.Array:
        for p in self.parts:
            x = p(x, point)
        return x


# ---------------------------------------------------------------------------------------------- constructors

def _channel_mask(channels, shape: tuple[int, ...]) -> np.ndarray:
    channels = np.atleast_1d(np.asarray(channels, dtype=np.int64))
    c = shape[-1]
    if channels.size and (channels.min() < 0 or channels.max() >= c):
        raise ValueError(f"channel indices must be in [0, {c}), got {channels.tolist()}")
    mask = np.zeros(shape, bool)
    mask[..., channels] = True
    return mask


def zero_ablation(channels, shape: tuple[int, ...]) -> SetMasked:
    """Set ``channels`` to 0 everywhere; ``shape`` is one example's activation shape (see ``hook_shapes``)."""
    return SetMasked(jnp.asarray(_channel_mask(channels, shape)), jnp.zeros(shape, jnp.float32))


def mean_ablation(channels, acts: np.ndarray) -> SetMasked:
    """Set ``channels`` to their mean over a reference batch ``acts`` (N, H, W, C), per position."""
    acts = np.asarray(acts, np.float32)
    return SetMasked(jnp.asarray(_channel_mask(channels, acts.shape[1:])), jnp.asarray(acts.mean(axis=0)))


def resample_ablation(channels, donor: np.ndarray) -> SetMasked:
    """Replace ``channels`` by a donor's activations (``(H, W, C)``, or ``(B, H, W, C)`` one donor per example)."""
    donor = np.asarray(donor, np.float32)
    return SetMasked(jnp.asarray(_channel_mask(channels, donor.shape)), jnp.asarray(donor))


def multiply(channels, num_channels: int, pos: float = 1.0, neg: float | None = None) -> Multiply:
    """Multiply ``channels`` by ``pos`` where positive and ``neg`` (default ``pos``) where negative."""
    sel = _channel_mask(channels, (num_channels,))
    neg = pos if neg is None else neg
    return Multiply(jnp.asarray(np.where(sel, pos, 1.0), jnp.float32), jnp.asarray(np.where(sel, neg, 1.0), jnp.float32))


def clamp(channels, cells, value: float, shape: tuple[int, ...], fill: float | None = None) -> SetMasked:
    """Set ``channels`` at activation cells ``cells`` ((K, 2) image-order (row, col), or one pair) to ``value``;
    with ``fill``, the rest of those channels is set to ``fill`` (the published "smoothed" variant, e.g. -0.2)."""
    h, w, _ = shape
    cells = np.atleast_2d(np.asarray(cells, dtype=np.int64))
    if cells.shape[-1] != 2 or (cells < 0).any() or (cells[:, 0] >= h).any() or (cells[:, 1] >= w).any():
        raise ValueError(f"cells must be (row, col) pairs inside the {h}x{w} map, got {cells.tolist()}")
    ch = _channel_mask(channels, shape)
    at = np.zeros(shape, bool)
    at[cells[:, 0], cells[:, 1]] = True
    at &= ch
    if fill is None:
        return SetMasked(jnp.asarray(at), jnp.full(shape, value, jnp.float32))
    return SetMasked(jnp.asarray(ch), jnp.asarray(np.where(at, value, fill), jnp.float32))


def budget_mask(order: np.ndarray, cell: tuple[int, int], n_entries: int, shape: tuple[int, ...]) -> np.ndarray:
    """The ``n_entries`` activation entries nearest a target: channels in ``order`` (best first) at ``cell``, then the
    same channels at cells of growing Chebyshev rings around it. Used to edit a fixed fraction of activations."""
    h, w, c = shape
    if not 1 <= n_entries <= h * w * c:
        raise ValueError(f"n_entries must be in [1, {h * w * c}], got {n_entries}")
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ring = np.maximum(abs(rr - cell[0]), abs(cc - cell[1])).ravel()
    cells = np.argsort(ring, kind="stable")
    order = np.concatenate([np.asarray(order, np.int64), np.setdiff1d(np.arange(c), order)])
    mask = np.zeros((h * w, c), bool)
    # entries ranked by (ring, channel rank), so small budgets stay at the target cell
    rank = ring[cells][:, None] * c + np.arange(c)[None, :]
    flat = np.argsort(rank.ravel(), kind="stable")[:n_entries]
    mask[cells[flat // c], order[flat % c]] = True
    return mask.reshape(h, w, c)


def compose_hooks(*hook_dicts: Mapping[str, Any]) -> dict[str, Any]:
    """Merge hook dicts; interventions on the same layer run in the given order."""
    out: dict[str, Any] = {}
    for d in hook_dicts:
        for name, fn in d.items():
            check_names([name])
            out[name] = Compose((out[name], fn)) if name in out else fn
    return out


def add_everywhere(vectors: Mapping[str, Any], coeff: float) -> dict[str, AddVector]:
    """``coeff * vector`` added at every given layer (the published "all layers, coeff -0.05" cheese-vector variant)."""
    return {name: AddVector(jnp.asarray(v), jnp.float32(coeff)) for name, v in vectors.items()}


def random_like(vector: np.ndarray, seed: int) -> np.ndarray:
    """Control: a Gaussian vector with the same shape and L2 norm as ``vector``."""
    v = np.asarray(vector, np.float32)
    r = np.random.default_rng(seed).standard_normal(v.shape).astype(np.float32)
    return r * (np.linalg.norm(v) / max(np.linalg.norm(r), 1e-12))


def random_channels(exclude, num_channels: int, k: int, seed: int) -> np.ndarray:
    """Control: ``k`` channels drawn without replacement from those not in ``exclude``."""
    pool = np.setdiff1d(np.arange(num_channels), np.asarray(exclude, np.int64))
    if k > len(pool):
        raise ValueError(f"cannot draw {k} control channels from the {len(pool)} left after excluding {len(exclude)}")
    return np.sort(np.random.default_rng(seed).choice(pool, size=k, replace=False))


def resample_donors(cheese: np.ndarray, same: bool, seed: int = 0) -> np.ndarray:
    """For each maze, a donor maze index whose cheese square is the same (``same=True``) or different, never
    itself; -1 when no maze qualifies. ``cheese``: (N, 2) squares in any one convention."""
    cheese = np.asarray(cheese)
    rng = np.random.default_rng(seed)
    eq = (cheese[:, None, :] == cheese[None, :, :]).all(-1)
    ok = eq if same else ~eq
    np.fill_diagonal(ok, False)
    donors = np.full(len(cheese), -1, np.int64)
    for i in range(len(cheese)):
        cand = np.nonzero(ok[i])[0]
        if len(cand):
            donors[i] = rng.choice(cand)
    return donors


# ---------------------------------------------------------------------------------------------- hooked policy

def layer_shape(net: Any, name: str) -> tuple[int, ...]:
    """One example's NHWC shape at hook ``name`` for this net."""
    check_names([name])
    return hook_shapes(widths=net.channel_widths)[name]


@struct.dataclass
class HookedPolicy:
    """A network with fixed interventions as a policy (:class:`mazeagent.experiments.policies.Policy`). With ``per_maze``,
    every leaf of ``hooks`` has a leading axis over the mazes played and each state gets its own maze's row (a
    per-maze cheese vector, a clamp at each maze's target); the hooks stay an argument of one compiled function."""

    net: Any = struct.field(pytree_node=False)
    params: Any
    hooks: dict
    per_maze: bool = struct.field(pytree_node=False, default=False)

    def _hooks(self, states: States) -> dict:
        """The hooks, or with ``per_maze`` each state's own maze's rows of them."""
        if not self.per_maze:
            return self.hooks
        leaves = jax.tree.leaves(self.hooks)
        lead = {np.shape(leaf)[:1] for leaf in leaves}
        if len(lead) > 1 or () in lead:
            raise ValueError("every leaf of per-maze hooks needs a leading axis of the number of mazes, got shapes "
                             f"{[np.shape(leaf) for leaf in leaves]}")
        if lead and states.maze.max() >= lead.pop()[0]:
            raise ValueError(f"per-maze hooks have {np.shape(leaves[0])[0]} rows, but maze "
                             f"{int(states.maze.max())} was queried")
        return jax.tree.map(lambda a: a[states.maze], self.hooks)  # gathers only the queried rows

    def logits_value(self, states: States) -> tuple[np.ndarray, np.ndarray]:
        # batches padded to a power of two >= 64: the many batch sizes of a rollout reuse a few compilations
        model = HookedImpala(self.net, self.params, min_batch=64, max_batch=None)
        logits, value = model.run_with_hooks(states.obs, self._hooks(states), per_row=self.per_maze)
        return np.asarray(logits), np.asarray(value)

    def __call__(self, states: States, key: jax.Array) -> np.ndarray:
        return self.logits_value(states)[0]
