"""TransformerLens-style access to the IMPALA-CNN's activations: capture (``run_with_cache``) and edit
(``run_with_hooks``) by the published hook names (research-notes §4.1), inside ``jit`` and ``vmap``.

Layout: our activations are **NHWC** ``(B, H, W, C)``; the published tools (circrl / procgen-tools) show **NCHW**
``(B, C, H, W)``. Only the axis order differs: channel ``c`` is the same channel in both (channel 55 of
``embedder.block2.res1.resadd_out`` is ``cache[name][..., 55]`` here and ``acts[:, 55]`` there), and spatial cells
are in the same image order (row 0 at the top). :func:`to_nchw` / :func:`from_nchw` convert, :func:`nchw_hook`
wraps a hook written against the published layout. ``embedder.flatten_out`` is already in the published (C, H, W)
flatten order; ``fc_value_out`` is ``(B, 1)`` as published.
"""
from __future__ import annotations

import difflib
import functools
from typing import Any, Callable, Iterable, Mapping, Union

import jax
import jax.numpy as jnp

from mazeagent.nets.impala import BASE_WIDTHS, OBS_SHAPE, HookContext, HookPoint, ImpalaCNN

DEFAULT_LAYER = "embedder.block2.res1.resadd_out"  # the layer the published probing/steering work uses
Hook = Callable[[jax.Array, HookPoint], Any]
Names = Union[None, Iterable[str], Callable[[str], bool]]  # all, a list, or a filter on the name


@functools.cache
def _derived(widths: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Hook name -> one example's NHWC shape, in forward order, read off an abstract capture-everything forward
    pass (``jax.eval_shape``: nothing is computed), so names and shapes cannot drift from the module."""
    net = ImpalaCNN(widths=widths)
    order: list[str] = []

    def forward(obs: jax.Array) -> dict[str, jax.Array]:
        params = net.init(jax.random.key(0), obs)
        _, state = net.apply(params, obs, HookContext(capture_all=True), mutable=["intermediates"])
        flat = _flatten(state["intermediates"])
        order.extend(flat)  # sow order is forward order; eval_shape's output dict would be sorted
        return flat

    shapes = jax.eval_shape(forward, jax.ShapeDtypeStruct((1, *OBS_SHAPE), jnp.uint8))
    return {name: tuple(shapes[name].shape[1:]) for name in order}


def __getattr__(name: str) -> Any:
    if name == "HOOK_NAMES":  # derived on first use: importing this module traces nothing
        return tuple(_derived(BASE_WIDTHS))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


HOOK_NAMES: tuple[str, ...]  # in forward order; 43 hook points


def hook_shapes(scale: int = 1, layout: str = "NHWC",
                widths: tuple[int, ...] | None = None) -> dict[str, tuple[int, ...]]:
    """Per-example shape of every hook point (batch axis omitted), e.g. scale 4 NCHW ``block2.res1.resadd_out``
    -> (128, 16, 16) = 32,768 values per observation. ``widths`` (a net's ``channel_widths``) overrides
    ``BASE_WIDTHS x scale`` for nets built with explicit widths."""
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    shapes = _derived(tuple(w * scale for w in BASE_WIDTHS) if widths is None else tuple(widths))
    if layout == "NCHW":
        return {k: ((v[2], v[0], v[1]) if len(v) == 3 else v) for k, v in shapes.items()}
    return dict(shapes)


def check_names(names: Iterable[str]) -> list[str]:
    """Raise a ValueError naming the closest valid hook for any unknown name."""
    names = list(names)
    valid = tuple(_derived(BASE_WIDTHS))
    for n in names:
        if n not in valid:
            close = difflib.get_close_matches(str(n), valid, n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else "; see mazeagent.nets.HOOK_NAMES"
            raise ValueError(f"unknown hook name {n!r}{hint}")
    return names


def select_names(names: Names = None) -> tuple[str, ...]:
    """Hook names to capture: all (None), the given ones (checked), or those a filter ``names(name)`` accepts."""
    if names is None:
        return tuple(_derived(BASE_WIDTHS))
    if callable(names):
        return tuple(n for n in _derived(BASE_WIDTHS) if names(n))
    return tuple(check_names(names))


def run_with_cache(net: ImpalaCNN, params: Any, obs: jax.Array, names: Names = None,
                   hooks: Mapping[str, Hook] | None = None, hook_args: Any = None,
                   ) -> tuple[tuple[jax.Array, jax.Array], dict[str, jax.Array]]:
    """Forward pass returning ``((logits, value), cache)``; ``cache[name]`` is the NHWC activation (``names``: see
    :func:`select_names`). Optional ``hooks`` edit activations first (the cache then holds the edited values).
    Under ``jit``, activations nobody reads are never materialised. :class:`mazeagent.nets.hooked.HookedImpala`
    wraps this in cached, batch-padded compiled functions."""
    wanted = select_names(names)
    hk = HookContext(hooks=dict(hooks or {}), hook_args=hook_args, capture=frozenset(wanted))
    check_names(hk.hooks)
    out, state = net.apply(params, obs, hk, mutable=["intermediates"])
    flat = _flatten(state.get("intermediates", {}))
    if jnp.ndim(obs) == 3:  # single frame in, single frame out
        flat = {k: v[0] for k, v in flat.items()}
    return out, {n: flat[n] for n in wanted}


def run_with_hooks(net: ImpalaCNN, params: Any, obs: jax.Array, hooks: Mapping[str, Hook],
                   hook_args: Any = None) -> tuple[jax.Array, jax.Array]:
    """Forward pass with activations replaced: ``hooks[name](x, point)`` (x NHWC, batched; ``point`` a
    :class:`~mazeagent.nets.impala.HookPoint` with the name and ``hook_args``) returns the new activation.

    Hooks may close over arrays, or be pytrees holding them (see :mod:`mazeagent.probes.interventions`). Hooks built outside a
    ``jit``/``vmap`` that must read traced per-call values get them as ``point.args`` (any pytree passed as
    ``hook_args``). With a single ``(64, 64, 3)`` frame (e.g. under ``vmap``) hooks see a batch axis of 1.
    """
    hk = HookContext(hooks=dict(hooks), hook_args=hook_args)
    check_names(hk.hooks)
    return net.apply(params, obs, hk)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, jax.Array]:
    out: dict[str, jax.Array] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_nchw(x: jax.Array) -> jax.Array:
    """NHWC ``(B, H, W, C)`` or ``(H, W, C)`` -> published NCHW (channel index unchanged); vectors pass through."""
    return jnp.moveaxis(x, -1, -3) if x.ndim in (3, 4) else x


def from_nchw(x: jax.Array) -> jax.Array:
    """Published NCHW ``(B, C, H, W)`` or ``(C, H, W)`` -> our NHWC (channel index unchanged); vectors pass through."""
    return jnp.moveaxis(x, -3, -1) if x.ndim in (3, 4) else x


def nchw_hook(fn: Hook) -> Hook:
    """Wrap a hook written for published NCHW activations (``fn(acts, point)``, e.g. ``acts.at[:, 55].set(0)``)
    into an NHWC hook."""
    def wrapped(x: jax.Array, point: HookPoint) -> jax.Array:
        return from_nchw(fn(to_nchw(x), point))
    return wrapped
