"""Study shards on disk: ``mazeagent study --shard I/K`` saves its share of the rollouts under ``OUT/shards/`` and
``--merge K`` loads all K back, checked against each other and against the merging run.

A shard saves the engine outputs per maze (``rollouts.Rollouts.raw``), not the tidy table: the merge regenerates
the mazes (they depend on the seed only) and rebuilds the table with the same code as a single process, so the
merged study is the single-process study bit for bit. Timing (wall time, policy evaluations) goes to a separate
JSON because it depends on the machine and on how the mazes were split.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

SHARD_DIR = "shards"
# what every shard and the merge must agree on (besides the checkpoint's parameters)
MUST_MATCH = ("checkpoint", "params_sha256", "mazes", "seed", "horizon", "greedy", "shards")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/K"`` → ``(I, K)`` with ``0 <= I < K`` (Slurm array task ids start at 0)."""
    try:
        i, k = (int(v) for v in str(spec).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/K (e.g. 3/8, shard 3 of 8, counting from 0), got {spec!r}")
    if k < 1 or not 0 <= i < k:
        raise ValueError(f"--shard I/K needs K >= 1 and 0 <= I < K, got {spec!r}")
    return i, k


def policy_fingerprint(policy: Any) -> str | None:
    """SHA-256 of a network policy's parameters (names, dtypes, shapes, bytes); None for scripted policies."""
    params = getattr(policy, "params", None)
    if params is None:
        return None
    import jax

    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def shard_paths(out_dir: str | Path, shard: int, shards: int) -> tuple[Path, Path]:
    """(arrays .npz, metadata .json) of one shard."""
    stem = Path(out_dir) / SHARD_DIR / f"shard-{shard:05d}-of-{shards:05d}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def save_shard(out_dir: str | Path, shard: int, shards: int, raw: dict[str, np.ndarray], meta: dict,
               timing: dict) -> tuple[Path, Path]:
    """Write one shard atomically (temp file + rename: a killed task leaves no half shard for the merge)."""
    npz, js = shard_paths(out_dir, shard, shards)
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(npz.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **raw)
    tmp.replace(npz)
    tmp = js.with_name(js.name + ".tmp")
    tmp.write_text(json.dumps({**meta, "shard": shard, "timing": timing}, indent=1))
    tmp.replace(js)
    return npz, js


def load_shards(out_dir: str | Path, shards: int, expect: dict) -> tuple[dict[str, np.ndarray], list[dict]]:
    """All ``shards`` shards joined in maze order, plus their metadata; ValueError naming what is missing or
    inconsistent (a shard of another checkpoint, maze count, seed, ...)."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"--merge K needs a positive shard count, got {shards!r}")
    paths = [shard_paths(out_dir, i, shards) for i in range(shards)]
    missing = [i for i, (a, b) in enumerate(paths) if not (a.exists() and b.exists())]
    if missing:
        found = sorted(p.name for p in (Path(out_dir) / SHARD_DIR).glob("shard-*.json"))
        raise ValueError(f"cannot merge: {len(missing)} of {shards} shards missing under "
                         f"{Path(out_dir) / SHARD_DIR} (shard ids {missing[:10]}{'...' if len(missing) > 10 else ''}); "
                         f"found: {found[:10] or 'none'}. Rerun those `mazeagent study ... --shard I/{shards}` tasks.")
    metas, parts = [], []
    for i, (npz, js) in enumerate(paths):
        meta = json.loads(js.read_text())
        bad = {k: (meta.get(k), expect.get(k)) for k in MUST_MATCH if meta.get(k) != expect.get(k)}
        if bad:
            detail = "; ".join(f"{k}: shard has {a!r}, merge has {b!r}" for k, (a, b) in bad.items())
            raise ValueError(f"cannot merge: shard {i} ({js}) was made with different settings: {detail}. "
                             "Rerun the shards with the merge's --checkpoint/--mazes/--seed, or merge with theirs.")
        with np.load(npz) as f:
            parts.append({k: f[k] for k in f.files})
        metas.append(meta)
    raw = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(raw["maze"], kind="stable")
    raw = {k: v[order] for k, v in raw.items()}
    if not np.array_equal(raw["maze"], np.arange(expect["mazes"])):
        raise ValueError(f"cannot merge: the {shards} shards do not cover mazes 0..{expect['mazes'] - 1} exactly once")
    return raw, metas
