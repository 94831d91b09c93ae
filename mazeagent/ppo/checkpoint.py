"""Checkpoints: atomic, checksummed, pickle-free; the one format every part of the suite reads policies from.

Layout of a checkpoint root (e.g. ``<run>/checkpoints``)::

    step_00000012/            one directory per saved update, zero-padded so names sort by step
        arrays.npz            every leaf of the state pytree, keyed by its path ("params/params/fc/kernel")
        meta.json             format tag, step, config, leaf shapes/dtypes and the sha256 of arrays.npz

A directory is written under a temporary name, fsync'ed and renamed into place, so a reader never sees half a
checkpoint; a crash mid-write leaves only a ``.tmp-*`` directory that the next save removes. Arrays are read with
``allow_pickle=False``: a checkpoint from an untrusted source can be wrong, but it cannot run code.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mazeagent.ppo.config import PPOConfig

FORMAT = "mazeagent-checkpoint-v1"
BUNDLED_AGENT = Path(__file__).resolve().parent.parent / "assets" / "agent"  # the agent that ships (docs/agents.md)
_PREFIX = "step_"


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns: the state pytree, its config, the update step and the raw metadata."""

    state: Any
    config: PPOConfig
    step: int
    path: Path
    meta: dict[str, Any]


def save_checkpoint(directory: str | os.PathLike, state: Any, config: PPOConfig, step: int, *,
                    keep: int | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (any pytree of arrays) as ``directory/step_<step>`` atomically; return its path.

    ``state`` must hold the network variables under a top-level ``params`` entry (dict key or dataclass field) for
    :func:`load_policy` to find them; a params-only checkpoint is ``{"params": variables}``. ``keep`` prunes all but
    the newest ``keep`` checkpoints. ``extra`` is JSON-able metadata (e.g. the env-step counter, the wandb run id).
    """
    import jax

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # leftovers of a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)
    flat = _flatten(jax.device_get(state))
    final = root / f"{_PREFIX}{int(step):08d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    tmp.mkdir()
    arrays_path = tmp / "arrays.npz"
    with open(arrays_path, "wb") as f:
        np.savez(f, **flat)
        f.flush()
        os.fsync(f.fileno())
    meta = {
        "format": FORMAT,
        "step": int(step),
        "config": config.to_dict(),
        "sha256": file_sha256(arrays_path),
        "leaves": {k: [list(v.shape), str(v.dtype)] for k, v in flat.items()},
        "extra": extra or {},
    }
    with open(tmp / "meta.json", "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():  # re-saving the same step (e.g. end of run right after a periodic save)
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    if keep is not None:
        for old in list_checkpoints(root)[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories under ``directory``, oldest first."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / "meta.json").is_file())


def resolve(directory: str | os.PathLike, step: int | None = None) -> Path:
    """Find the checkpoint meant by ``directory``: a step directory, a checkpoint root (latest, or ``step``), or a
    run directory holding ``checkpoints/``."""
    path = Path(directory)
    if (path / "meta.json").is_file() and step is None:
        return path
    for root in (path, path / "checkpoints"):
        found = list_checkpoints(root)
        if found:
            if step is None:
                return found[-1]
            match = [p for p in found if p.name == f"{_PREFIX}{int(step):08d}"]
            if not match:
                raise ValueError(f"no checkpoint for step {step} in {root}; have {[_step_of(p) for p in found]}")
            return match[0]
    if not path.exists():
        raise ValueError(f"checkpoint path {path} does not exist")
    raise ValueError(f"no checkpoint found in {path} (expected {_PREFIX}*/meta.json, directly or under checkpoints/)")


def load_checkpoint(directory: str | os.PathLike, target: Any = None, step: int | None = None) -> Checkpoint:
    """Read a checkpoint, verifying its checksum. With ``target`` (a pytree of arrays or ShapeDtypeStructs, e.g. from
    ``jax.eval_shape``) the state comes back in that structure and every leaf's path, shape and dtype must match;
    without it, as nested dicts of numpy arrays."""
    path = resolve(directory, step)
    meta = read_meta(path)
    arrays_path = path / "arrays.npz"
    if not arrays_path.is_file() or file_sha256(arrays_path) != meta.get("sha256"):
        raise ValueError(f"checkpoint {path} is corrupt: arrays.npz is missing or its sha256 does not match "
                         f"meta.json (an interrupted copy?); use an earlier checkpoint")
    try:
        with np.load(arrays_path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any read failure is the same user-facing problem
        raise ValueError(f"checkpoint {path} is corrupt: cannot read arrays.npz ({e})") from e
    config = PPOConfig.from_dict(meta["config"])
    state = _unflatten_like(flat, target, path) if target is not None else _nest(flat)
    return Checkpoint(state=state, config=config, step=int(meta["step"]), path=path, meta=meta)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path} is corrupt: cannot read meta.json ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint (format={meta.get('format') if isinstance(meta, dict) else None!r})")
    return meta


def load_policy(directory: str | os.PathLike, step: int | None = None) -> tuple[Any, Any, PPOConfig]:
    """``(net, params, config)`` from a training run, a checkpoint root, one step directory, or a published ``.pth``
    file (converted in memory by the safe reader; its config as ``import-torch`` records it): ``net.apply(params,
    obs)`` gives ``(logits, value)``. Optimizer and env state are not loaded."""
    import jax.numpy as jnp

    from mazeagent.ppo.train import make_net

    if Path(directory).suffix == ".pth":
        from mazeagent.nets.torch_io import load_torch_checkpoint
        from mazeagent.ppo.config import pth_config

        if not Path(directory).is_file():
            raise FileNotFoundError(f"{directory}: no such .pth file")
        scale, variables = load_torch_checkpoint(directory)
        config = pth_config(str(directory), scale)
        return make_net(config), _map_leaves(jnp.asarray, variables), config

    ckpt = load_checkpoint(directory, step=step)
    if "params" not in ckpt.state:
        raise ValueError(f"checkpoint {ckpt.path} holds no 'params' entry (leaves: {sorted(ckpt.meta['leaves'])[:5]}...)")
    params = _map_leaves(jnp.asarray, ckpt.state["params"])
    return make_net(ckpt.config), params, ckpt.config


# ---- pytree <-> flat dict ---------------------------------------------------------------------------------------
def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _flatten(tree: Any) -> dict[str, np.ndarray]:
    import jax

    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    flat = {}
    for path, leaf in leaves:
        name = "/".join(_key_name(k) for k in path)
        arr = np.asarray(leaf)
        if arr.dtype == object or arr.dtype.kind == "V":
            raise ValueError(f"cannot checkpoint leaf {name!r} of dtype {arr.dtype} (use raw uint32 PRNG keys)")
        if name in flat:
            raise ValueError(f"two leaves share the checkpoint path {name!r}")
        flat[name] = arr
    return flat


def _unflatten_like(flat: dict[str, np.ndarray], target: Any, path: Path) -> Any:
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
    want = {"/".join(_key_name(k) for k in p): leaf for p, leaf in leaves}
    problems = [f"missing {k}" for k in want if k not in flat]
    problems += [f"unexpected {k}" for k in flat if k not in want]
    for k, leaf in want.items():
        if k in flat and (tuple(flat[k].shape) != tuple(leaf.shape) or flat[k].dtype != np.dtype(leaf.dtype)):
            problems.append(f"{k}: checkpoint {flat[k].dtype}{list(flat[k].shape)} vs expected "
                            f"{np.dtype(leaf.dtype)}{list(leaf.shape)}")
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} in all)" if len(problems) > 8 else "")
        raise ValueError(f"checkpoint {path} does not match this configuration: {shown}")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(flat[k]) for k in want])


def _nest(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, arr in flat.items():
        node = out
        *parents, last = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = arr
    return out


def _map_leaves(fn: Any, tree: Any) -> Any:
    return {k: _map_leaves(fn, v) for k, v in tree.items()} if isinstance(tree, dict) else fn(tree)


def _step_of(p: Path) -> int:
    return int(p.name[len(_PREFIX):])


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (checkpoints and published agents can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
