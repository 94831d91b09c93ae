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
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp

from mazeagent.nets.impala import BASE_WIDTHS, HIDDEN, NUM_ACTIONS, HookContext, ImpalaCNN

_RES_LABELS = ("relu1_out", "conv1_out", "relu2_out", "conv2_out", "resadd_out")


def _names() -> tuple[str, ...]:
    names = ["embedder.block1.conv_in0"]  # circrl labels first-seen inputs only: the observation
    for b in (1, 2, 3):
        p = f"embedder.block{b}"
        names += [f"{p}.conv_out", f"{p}.maxpool_out"]
        names += [f"{p}.res{r}.{lab}" for r in (1, 2) for lab in _RES_LABELS]
    names += ["embedder.relu3_out", "embedder.flatten_out", "embedder.fc_out", "embedder.relufc_out",
              "fc_policy_out", "fc_value_out"]
    return tuple(names)


HOOK_NAMES: tuple[str, ...] = _names()  # in forward order; 43 hook points
DEFAULT_LAYER = "embedder.block2.res1.resadd_out"  # the layer the published probing/steering work uses


def hook_shapes(scale: int = 1, layout: str = "NHWC",
                widths: tuple[int, ...] | None = None) -> dict[str, tuple[int, ...]]:
    """Per-example shape of every hook point (batch axis omitted), e.g. scale 4 NCHW ``block2.res1.resadd_out``
    -> (128, 16, 16) = 32,768 values per observation. ``widths`` (a net's ``channel_widths``) overrides
    ``BASE_WIDTHS x scale`` for nets built with explicit widths."""
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    widths = tuple(w * scale for w in BASE_WIDTHS) if widths is None else tuple(widths)
    shapes: dict[str, tuple[int, ...]] = {}
    c_in, side = 3, 64
    shapes["embedder.block1.conv_in0"] = (side, side, c_in)
    for b, c in enumerate(widths, start=1):
        p = f"embedder.block{b}"
        shapes[f"{p}.conv_out"] = (side, side, c)
        side //= 2
        for name in [f"{p}.maxpool_out"] + [f"{p}.res{r}.{lab}" for r in (1, 2) for lab in _RES_LABELS]:
            shapes[name] = (side, side, c)
        c_in = c
    shapes["embedder.relu3_out"] = (side, side, c_in)
    shapes["embedder.flatten_out"] = (side * side * c_in,)
    shapes["embedder.fc_out"] = shapes["embedder.relufc_out"] = (HIDDEN,)
    shapes["fc_policy_out"] = (NUM_ACTIONS,)
    shapes["fc_value_out"] = (1,)
    if layout == "NCHW":
        shapes = {k: ((v[2], v[0], v[1]) if len(v) == 3 else v) for k, v in shapes.items()}
    return {k: shapes[k] for k in HOOK_NAMES}


def check_names(names: Iterable[str]) -> list[str]:
    """Raise a ValueError naming the closest valid hook for any unknown name."""
    names = list(names)
    for n in names:
        if n not in HOOK_NAMES:
            close = difflib.get_close_matches(str(n), HOOK_NAMES, n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else "; see mazeagent.nets.HOOK_NAMES"
            raise ValueError(f"unknown hook name {n!r}{hint}")
    return names


def run_with_cache(net: ImpalaCNN, params: Any, obs: jax.Array, names: Iterable[str] | None = None,
                   hooks: Mapping[str, Callable[..., Any]] | None = None, hook_args: Any = None,
                   ) -> tuple[tuple[jax.Array, jax.Array], dict[str, jax.Array]]:
    """Forward pass returning ``((logits, value), cache)``; ``cache[name]`` is the NHWC activation (all
    :data:`HOOK_NAMES` when ``names`` is None). Optional ``hooks`` edit activations first (the cache then holds the
    edited values). Under ``jit``, activations nobody reads are never materialised."""
    wanted = HOOK_NAMES if names is None else tuple(check_names(names))
    hk = HookContext(hooks=dict(hooks or {}), hook_args=hook_args, capture=frozenset(wanted))
    check_names(hk.hooks)
    out, state = net.apply(params, obs, hk, mutable=["intermediates"])
    flat = _flatten(state.get("intermediates", {}))
    if jnp.ndim(obs) == 3:  # single frame in, single frame out
        flat = {k: v[0] for k, v in flat.items()}
    return out, {n: flat[n] for n in wanted}


def run_with_hooks(net: ImpalaCNN, params: Any, obs: jax.Array, hooks: Mapping[str, Callable[..., Any]],
                   hook_args: Any = None) -> tuple[jax.Array, jax.Array]:
    """Forward pass with activations replaced: ``hooks[name](x)`` (NHWC, batched) returns the new activation.

    Hooks may close over arrays. For hooks built outside a ``jit``/``vmap`` that must read traced per-call values,
    pass them as ``hook_args`` (any pytree): every hook is then called as ``fn(x, hook_args)``. With a single
    ``(64, 64, 3)`` frame (e.g. under ``vmap``) hooks see a batch axis of 1.
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


def nchw_hook(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Wrap a hook written for published NCHW activations (e.g. ``acts[:, 55] = 0``) into an NHWC hook."""
    def wrapped(x: jax.Array, *args: Any) -> jax.Array:
        return from_nchw(fn(to_nchw(x), *args))
    return wrapped
