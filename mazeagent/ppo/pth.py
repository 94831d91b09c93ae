"""Published PyTorch ``.pth`` maze agents <-> the suite's checkpoints: an imported agent loads wherever a trained
one does, and a trained one loads in procgen-tools. Tensor conversion is :mod:`mazeagent.nets.torch_io`.

:data:`PUBLISHED` is the table of the published maze agents (docs/agents.md, "Published agents"), so a downloaded
file is recognised by name and scale, and by content where its sha256 is recorded. No hash is recorded yet: the files
are hosted off-registry and could not be fetched where this suite was built. A recognition therefore says plainly
whether the content was verified; record a file's hash with ``mazeagent pth-info FILE`` (or ``sha256sum``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mazeagent.nets.torch_io import load_torch_checkpoint, save_torch_checkpoint
from mazeagent.ppo.checkpoint import file_sha256, load_policy, save_checkpoint
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
    known = recognise(path, scale)
    return save_checkpoint(out, {"params": variables}, config, step=0,
                           extra={"imported_from": path.name, "source_sha256": known.sha256, "source_format": "pytorch",
                                  "recognised_as": known.status, "published_name": known.match and known.match.name})


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


MAZE_I = "procgen-tools README's Google Drive folder maze_I/ (Langosco et al.'s rand_region sweep, 80M steps each)"


@dataclass(frozen=True)
class PublishedAgent:
    """One published agent file. ``sha256`` is None where no trusted hash was recorded."""
    name: str
    scale: int
    rand_region: int | None
    source: str
    sha256: str | None = None


PUBLISHED: tuple[PublishedAgent, ...] = (
    *(PublishedAgent(f"model_rand_region_{r}.pth", 4, r,
                     MAZE_I + ("; also https://nerdsniper.net/mats/model_rand_region_5.pth (the one the posts "
                               "analyse, 43.9 MB with its optimizer state)" if r == 5 else ""))
      for r in range(1, 16)),
    PublishedAgent("maze_i.pth", 1, None, "procgen-tools' load_model(use_small=True) path; origin unverified"),
)


@dataclass(frozen=True)
class Recognition:
    """What a ``.pth`` file is, as far as :data:`PUBLISHED` can tell.

    ``status``: ``verified`` (its sha256 is in the table), ``name-and-scale`` (name and inferred scale match an entry
    whose hash is not recorded: probably that file, content unverified), ``scale-mismatch`` (a published name with
    another scale: not that file), ``hash-mismatch`` (a published name whose recorded hash differs) or ``unknown``."""
    file: str
    sha256: str
    scale: int
    status: str
    match: PublishedAgent | None

    def describe(self) -> str:
        m = self.match
        return {
            "verified": f"{self.file} is the published {m and m.name} (sha256 matches; scale {self.scale})",
            "name-and-scale": f"{self.file}: name and scale {self.scale} match the published {m and m.name}; its "
                              "sha256 is not recorded, so the content is unverified",
            "scale-mismatch": f"{self.file} is named like the published {m and m.name} (scale {m and m.scale}) but "
                              f"holds a scale-{self.scale} net: not that file",
            "hash-mismatch": f"{self.file} is named like the published {m and m.name} but its sha256 differs from "
                             "the recorded one: not that file (or a damaged copy)",
            "unknown": f"{self.file} (scale {self.scale}) is not a published maze agent this table knows",
        }[self.status]


def recognise(path: str | os.PathLike, scale: int | None = None,
              table: tuple[PublishedAgent, ...] = PUBLISHED) -> Recognition:
    """Recognise a ``.pth`` by content (sha256), else by file name and scale (read from the file unless given)."""
    path = Path(path)
    if scale is None:
        scale = load_torch_checkpoint(path)[0]
    sha = file_sha256(path)
    by_hash = [a for a in table if a.sha256 == sha]
    if by_hash:
        return Recognition(path.name, sha, scale, "verified", by_hash[0])
    name = re.sub(r"\s*\(\d+\)(?=\.pth$)", "", path.name.lower())  # a browser's "model (1).pth" copy
    named = [a for a in table if a.name == name]
    if not named:
        return Recognition(path.name, sha, scale, "unknown", None)
    m = named[0]
    status = ("scale-mismatch" if m.scale != scale else "hash-mismatch" if m.sha256 is not None
              else "name-and-scale")
    return Recognition(path.name, sha, scale, status, m)
