"""Padding batches up to a few sizes (powers of two), so jitted functions compile once per size rather than once per
batch length; callers slice the padding off again.

Each caller keeps its own minimum and cap: XLA may block a computation differently for another batch shape, which
moves float results at the 1e-7 level, so a caller's bucket sizes are part of its numbers. This module sits below
every layer (numpy and jax only) so the env, the nets, rollouts and probes share it.
"""
from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

Fill = Literal["zero", "first", "last"]


def bucket(n: int, minimum: int = 1, cap: int | None = None) -> int:
    """The smallest power of two that is >= ``n`` and >= ``minimum``, but at most ``cap``."""
    size = max(minimum, 1 << (max(n, 1) - 1).bit_length())
    return size if cap is None else min(cap, size)


def pad_rows(a: Any, size: int, fill: Fill = "zero") -> Any:
    """``a`` padded along axis 0 to ``size`` rows with zeros, or with copies of its ``"first"`` row (a valid index
    for gathers) or ``"last"`` row (an idempotent repeat for scatters); an empty ``a`` pads with zeros. jax arrays
    stay on their device; anything else comes back as numpy."""
    xp = jnp if isinstance(a, jax.Array) else np
    a = xp.asarray(a)
    extra = size - a.shape[0]
    if extra < 0:
        raise ValueError(f"cannot pad {a.shape[0]} rows down to {size}")
    if not extra:
        return a
    if fill == "zero" or not a.shape[0]:
        return xp.pad(a, [(0, extra)] + [(0, 0)] * (a.ndim - 1))
    if fill == "first":
        return xp.concatenate([a, xp.repeat(a[:1], extra, 0)])
    if fill == "last":
        return xp.pad(a, [(0, extra)] + [(0, 0)] * (a.ndim - 1), mode="edge")
    raise ValueError(f"fill must be 'zero', 'first' or 'last', got {fill!r}")


def pad_to_bucket(a: Any, minimum: int = 1, cap: int | None = None, fill: Fill = "zero") -> Any:
    """``a`` padded along axis 0 to :func:`bucket` of its length."""
    return pad_rows(a, bucket(len(a), minimum, cap), fill)
