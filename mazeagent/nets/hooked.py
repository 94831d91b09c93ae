"""A network with its parameters as one hooked model, TransformerLens-style: ``model.run_with_cache(obs, names)``
and ``model.run_with_hooks(obs, hooks)``, compiled and batch-padded.

Why an object: interpretability work calls the same net thousands of times with varying batch sizes and varying
edits. Compiled functions are cached per (net, captured names, hooks *structure*): hooks are split into their array
leaves (arguments of the compiled function) and everything else (functions, static fields: part of the cache key), so
a sweep over steering coefficients, channel masks or per-example patches that are pytrees (:mod:`mazeagent.probes.interventions`)
reuses one compilation, and batches padded up to a few bucket sizes (:mod:`mazeagent.batching`) reuse a few more.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mazeagent.batching import bucket, pad_rows
from mazeagent.nets.hooks import Hook, Names, check_names, hook_shapes, run_with_cache, run_with_hooks, select_names
from mazeagent.nets.impala import ImpalaCNN

_ARRAY_LEAVES = (jax.Array, np.ndarray, np.generic, int, float, complex)


def _split(hooks: Mapping[str, Hook]) -> tuple[Any, tuple, list]:
    """``(treedef, static leaves, array leaves)``: array leaves become arguments, the rest part of the cache key."""
    leaves, treedef = jax.tree.flatten(dict(hooks))
    statics = tuple(None if isinstance(leaf, _ARRAY_LEAVES) else leaf for leaf in leaves)
    arrays = [leaf if isinstance(leaf, _ARRAY_LEAVES) else None for leaf in leaves]
    return treedef, statics, arrays


@functools.lru_cache(maxsize=512)  # bounded: hooks that are fresh lambdas key a new entry on every call
def _compiled(net: ImpalaCNN, names: tuple[str, ...] | None, treedef: Any, statics: tuple) -> Callable:
    """One jitted forward pass per (net, names, hooks structure); ``names=None``: no cache, just the outputs."""
    def forward(params: Any, obs: jax.Array, arrays: list) -> Any:
        hooks = jax.tree.unflatten(treedef, [s if a is None else a for s, a in zip(statics, arrays)])
        if names is None:
            return run_with_hooks(net, params, obs, hooks)
        return run_with_cache(net, params, obs, names, hooks)

    return jax.jit(forward)


class HookedImpala:
    """``net`` and ``params`` with jitted, bucket-padded access to every named activation.

    Batches are padded (zero frames, and zero rows for ``per_row`` hook leaves) to a power of two
    >= ``min_batch``; batches over ``max_batch`` (None: no cap) run in slices of ``max_batch``. The padding is
    sliced off the results. ``pad=False`` runs every batch at its own size (one compilation per size). With a
    ``mesh`` (a 1-d ``("batch",)`` device mesh), batches that divide evenly are spread over its devices.
    """

    def __init__(self, net: ImpalaCNN, params: Any, *, min_batch: int = 16, max_batch: int | None = 1024,
                 pad: bool = True, mesh: Any = None) -> None:
        if min_batch < 1 or (max_batch is not None and max_batch < min_batch):
            raise ValueError(f"need 1 <= min_batch <= max_batch, got {min_batch}, {max_batch}")
        self.net, self.params = net, params
        self.min_batch, self.max_batch, self.pad, self.mesh = min_batch, max_batch, pad, mesh
        self._replicated = None

    @property
    def hook_names(self) -> tuple[str, ...]:
        """Every hook point, in forward order."""
        return tuple(self.hook_shapes)

    @property
    def hook_shapes(self) -> dict[str, tuple[int, ...]]:
        """One example's NHWC shape at every hook point of this net."""
        return hook_shapes(widths=self.net.channel_widths)

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(logits, value)`` without edits."""
        return self._run(obs, None, {}, False)

    def run_with_cache(self, obs: jax.Array, names: Names = None, hooks: Mapping[str, Hook] | None = None,
                       per_row: bool = False) -> tuple[tuple[jax.Array, jax.Array], dict[str, jax.Array]]:
        """``((logits, value), cache)``, ``cache[name]`` the NHWC activation of each selected hook (all, a list, or
        a filter ``names(name) -> bool``), after any ``hooks``."""
        return self._run(obs, select_names(names), dict(hooks or {}), per_row)

    def run_with_hooks(self, obs: jax.Array, hooks: Mapping[str, Hook], per_row: bool = False
                       ) -> tuple[jax.Array, jax.Array]:
        """``(logits, value)`` with activations replaced, each hook called as ``hook(x, point)``. ``per_row``: every
        array leaf of ``hooks`` has a leading axis aligned with ``obs`` (one edit per example)."""
        return self._run(obs, None, dict(hooks), per_row)

    def _run(self, obs: jax.Array, names: tuple[str, ...] | None, hooks: dict, per_row: bool) -> Any:
        check_names(hooks)
        treedef, statics, arrays = _split(hooks)
        fn = _compiled(self.net, names, treedef, statics)
        obs = jnp.asarray(obs)
        if obs.ndim == 3:  # one frame: run it as a batch of one, hand back one frame's results
            return jax.tree.map(lambda a: a[0], self._run(obs[None], names, hooks, per_row))
        n = obs.shape[0]
        if not self.pad:
            out = fn(*self._place(obs), arrays)
        else:
            step = n if self.max_batch is None else self.max_batch
            parts = []
            for s in range(0, max(n, 1), step):
                rows = slice(s, s + step)
                k = obs[rows].shape[0]
                size = bucket(k, self.min_batch, self.max_batch)
                part = [pad_rows(a[rows], size) if per_row and a is not None else a for a in arrays]
                res = fn(*self._place(pad_rows(obs[rows], size)), part)
                parts.append(jax.tree.map(lambda a: a[:k], res) if size != k else res)
            out = parts[0] if len(parts) == 1 else jax.tree.map(lambda *a: jnp.concatenate(a), *parts)
        if names is not None:  # jit hands dicts back sorted; the cache follows the order asked for
            out = (out[0], {name: out[1][name] for name in names})
        return out

    def _place(self, obs: jax.Array) -> tuple[Any, jax.Array]:
        """Spread the batch over the mesh's devices when there is a mesh and the batch divides evenly. Per-frame
        results equal one device's to float rounding (XLA may block a conv differently for a smaller batch)."""
        if self.mesh is None or obs.shape[0] % self.mesh.size:
            return self.params, obs
        from jax.sharding import NamedSharding, PartitionSpec

        if self._replicated is None:  # replicate once, not on every call
            self._replicated = jax.device_put(self.params, NamedSharding(self.mesh, PartitionSpec()))
        return self._replicated, jax.device_put(obs, NamedSharding(self.mesh, PartitionSpec("batch")))
