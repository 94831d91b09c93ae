"""Function-preserving widening of an IMPALA net (Net2WiderNet): each channel of a block is copied ``k`` times and
every consumer's incoming weights of a copied channel are divided by ``k``, so the wider net computes exactly the same
logits and value (residual adds, ReLUs and max-pools act per channel, so copies stay copies).

Why: a clone trained at small widths on a CPU keeps what it learned when it moves to a larger net that has room to
learn more, instead of starting again. Copies receive equal gradients, so a little noise (``noise`` x each kernel's
std, on the copies only) breaks the symmetry; the function then changes by about that much.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

BLOCKS = ("block1", "block2", "block3")
CONVS = ("conv", "res1/conv1", "res1/conv2", "res2/conv1", "res2/conv2")


def _factors(old: tuple[int, ...], new: tuple[int, ...]) -> list[int]:
    if len(old) != 3 or len(new) != 3 or any(n % o or n < o for o, n in zip(old, new, strict=True)):
        raise ValueError(f"can widen only to whole multiples of each block's width: {tuple(old)} -> {tuple(new)}")
    return [n // o for o, n in zip(old, new, strict=True)]


def widen(variables: Any, old: tuple[int, ...], new: tuple[int, ...], seed: int = 0, noise: float = 0.01) -> Any:
    """``variables`` of an ImpalaCNN at widths ``old`` -> the same function at widths ``new`` (whole multiples)."""
    k = _factors(tuple(old), tuple(new))
    rng = np.random.default_rng(seed)
    p = jax.tree.map(np.asarray, variables["params"])
    emb = {b: {} for b in BLOCKS}
    k_in = 1
    for b, kb, width in zip(BLOCKS, k, old, strict=True):
        for name in CONVS:
            layer = p["embedder"][b]
            for part in name.split("/"):
                layer = layer[part]
            kernel, bias = layer["kernel"], layer["bias"]
            fan = k_in if name == "conv" else kb
            kernel = np.tile(kernel, (1, 1, fan, kb)) / fan  # input copies share the weight; output copies repeat
            if kb > 1:
                copies = np.arange(kernel.shape[-1]) >= width  # the added output channels
                jitter = rng.normal(0.0, noise * float(kernel.std()), kernel.shape).astype(kernel.dtype)
                kernel = kernel + jitter * copies
            node = emb[b]
            parts = name.split("/")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = {"kernel": kernel.astype(np.float32), "bias": np.tile(bias, kb).astype(np.float32)}
        k_in = kb
    fc = p["embedder"]["fc"]
    c_old = old[-1]
    rows = fc["kernel"].reshape(c_old, -1, fc["kernel"].shape[-1])  # (C, 8*8, hidden): the NCHW flatten
    kernel = np.tile(rows, (k_in, 1, 1)).reshape(-1, rows.shape[-1]) / k_in
    emb["fc"] = {"kernel": kernel.astype(np.float32), "bias": fc["bias"]}
    out = {"embedder": emb, "fc_policy": p["fc_policy"], "fc_value": p["fc_value"]}
    return {"params": jax.tree.map(jax.numpy.asarray, out)}
