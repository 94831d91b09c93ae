"""Published PyTorch maze-agent checkpoints <-> our ImpalaCNN parameters and checkpoint format.

Conversion (:func:`torch_state_dict_to_params` / :func:`params_to_torch_state_dict`): conv weights OIHW <-> HWIO,
linear weights (out, in) <-> (in, out); our ``embedder.fc`` already sees an NCHW flatten, so no fc permutation.
Files are read by the restricted reader in :mod:`mazeagent.nets.torch_pickle` (no torch, no pickled code run);
whole files <-> the suite's checkpoints is :mod:`mazeagent.ppo.pth`, above both.
"""
from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mazeagent.nets.impala import BASE_WIDTHS, HIDDEN, NUM_ACTIONS
from mazeagent.nets.torch_pickle import CheckpointError, read_torch_file, write_torch_file

__all__ = ["CheckpointError", "load_torch_checkpoint", "params_to_torch_state_dict", "save_torch_checkpoint",
           "state_dict_shapes", "torch_state_dict_to_params"]


# ---------------------------------------------------------------------------------------------------------------
# state dict <-> params
def state_dict_shapes(scale: int) -> dict[str, tuple[int, ...]]:
    """The 36 tensors of a published policy state dict and their torch shapes (research-notes §4.4)."""
    shapes: dict[str, tuple[int, ...]] = {}
    c_in = 3
    for b, width in enumerate(BASE_WIDTHS, start=1):
        c = width * scale
        convs = {f"embedder.block{b}.conv": (c, c_in, 3, 3)}
        convs.update({f"embedder.block{b}.res{r}.conv{k}": (c, c, 3, 3) for r in (1, 2) for k in (1, 2)})
        for name, shape in convs.items():
            shapes[f"{name}.weight"], shapes[f"{name}.bias"] = shape, (c,)
        c_in = c
    for name, (n_out, n_in) in {"embedder.fc": (HIDDEN, c_in * 8 * 8), "fc_policy": (NUM_ACTIONS, HIDDEN),
                                "fc_value": (1, HIDDEN)}.items():
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (n_out, n_in), (n_out,)
    return shapes


def torch_state_dict_to_params(sd: Mapping[str, Any]) -> tuple[int, dict]:
    """Published policy state dict (numpy or torch tensors) -> ``(scale, {'params': ...})`` for ``ImpalaCNN(scale)``.

    Strict like ``load_state_dict``: every key present, none extra, every shape right for the inferred scale."""
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"expected a state dict (mapping of names to tensors), got {type(sd).__name__}")
    first = "embedder.block1.conv.weight"
    w0 = sd.get(first)
    if w0 is None or len(np.shape(w0)) != 4:
        raise CheckpointError(f"state dict has no 4-D {first!r}: not an IMPALA policy state dict "
                              f"(keys start {sorted(map(str, sd))[:4]})")
    n0 = int(np.shape(w0)[0])
    if n0 % BASE_WIDTHS[0] or n0 == 0:
        raise CheckpointError(f"{first} has {n0} output channels, not a multiple of {BASE_WIDTHS[0]}: no valid scale")
    scale = n0 // BASE_WIDTHS[0]
    expected = state_dict_shapes(scale)
    missing, extra = sorted(set(expected) - set(sd)), sorted(set(map(str, sd)) - set(expected))
    if missing or extra:
        raise CheckpointError(f"state dict keys do not match an IMPALA policy: missing {missing}, unexpected {extra}")
    params: dict = {}
    for key, shape in expected.items():
        a = np.asarray(sd[key])
        if a.shape != shape:
            raise CheckpointError(f"{key} has shape {a.shape}, expected {shape} for scale {scale} (inferred from "
                                  f"{first}); the checkpoint's layers disagree on the scale")
        if not np.issubdtype(a.dtype, np.floating):
            raise CheckpointError(f"{key} has dtype {a.dtype}, expected floating point weights")
        *path, kind = key.split(".")
        leaf = "bias" if kind == "bias" else "kernel"
        a = a.astype(np.float32)
        if leaf == "kernel":
            a = a.transpose(2, 3, 1, 0) if a.ndim == 4 else a.T  # OIHW -> HWIO, (out, in) -> (in, out)
        node = params
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = np.ascontiguousarray(a)
    return scale, {"params": params}


def params_to_torch_state_dict(params: Mapping[str, Any]) -> collections.OrderedDict[str, np.ndarray]:
    """``ImpalaCNN`` params (with or without the ``'params'`` level) -> published policy state dict (float32)."""
    tree = params.get("params", params)
    sd: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
    try:
        scale = int(np.shape(tree["embedder"]["block1"]["conv"]["kernel"])[-1]) // BASE_WIDTHS[0]
        for key, shape in state_dict_shapes(scale).items():
            *path, kind = key.split(".")
            node = tree
            for p in path:
                node = node[p]
            a = np.asarray(node["bias" if kind == "bias" else "kernel"], dtype=np.float32)
            if kind == "weight":
                a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T
            if a.shape != shape:
                raise ValueError(f"{key}: shape {a.shape}, expected {shape}")
            sd[key] = np.ascontiguousarray(a)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"parameters are not an ImpalaCNN parameter tree ({e})") from None
    return sd


def load_torch_checkpoint(path: str | os.PathLike) -> tuple[int, dict]:
    """Read a published ``.pth`` (``{'model_state_dict', ...}`` or a bare state dict) -> ``(scale, variables)``."""
    obj = read_torch_file(path)
    if isinstance(obj, Mapping) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict or {{'model_state_dict': ...}}")
    return torch_state_dict_to_params(obj)


def save_torch_checkpoint(params: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write params as a ``{'model_state_dict': ...}`` ``.pth`` that procgen-tools' ``load_policy`` accepts."""
    write_torch_file({"model_state_dict": params_to_torch_state_dict(params)}, path)
