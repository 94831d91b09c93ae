"""Published PyTorch ``.pth`` maze agents <-> the suite's checkpoints: an imported agent loads wherever a trained
one does, and a trained one loads in procgen-tools. Tensor conversion is :mod:`mazeagent.nets.torch_io`."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mazeagent.nets.torch_io import load_torch_checkpoint, save_torch_checkpoint
from mazeagent.ppo.checkpoint import load_policy, save_checkpoint
from mazeagent.ppo.config import pth_config


def import_torch(path: str | os.PathLike, out: str | os.PathLike, *, preset: str = "paper",
                 overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> Path:
    """Convert a published ``.pth`` into a suite checkpoint in ``out`` (new or empty dir); return its step dir.

    The recorded config (what ``eval``/fine-tuning use) is ``preset`` + ``overrides`` with ``net_scale`` set to the
    inferred scale, and ``rand_region`` read from a ``..._rand_region_<r>.pth`` file name unless overridden.
    Everything is validated before anything is written.
    """
    path, out = Path(path), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} already exists and is not an empty directory; refusing to overwrite it")
    scale, variables = load_torch_checkpoint(path)
    config = pth_config(str(path), scale, preset, overrides, seed)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return save_checkpoint(out, {"params": variables}, config, step=0,
                           extra={"imported_from": path.name, "source_sha256": sha, "source_format": "pytorch"})


def export_torch(checkpoint: str | os.PathLike, out: str | os.PathLike, *, step: int | None = None,
                 force: bool = False) -> Path:
    """Write a suite checkpoint's policy as a procgen-tools-loadable ``.pth`` (``{'model_state_dict': ...}``)."""
    out = Path(out)
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; pass force=True (--force) to overwrite it")
    if not out.parent.is_dir():
        raise ValueError(f"directory {out.parent} does not exist")
    _net, params, _config = load_policy(checkpoint, step=step)
    save_torch_checkpoint(params, out)
    return out
