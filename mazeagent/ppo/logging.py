"""Run logging: a local ``metrics.jsonl`` always, and wandb (offline by default, online, or disabled).

Every row is keyed by env steps. Across a kill and ``--resume`` neither sink gets gaps or duplicates:

* ``metrics.jsonl`` is cut back to the resumed checkpoint's step (rows after it will be recomputed, bitwise equal).
* wandb keeps one run id per output directory (``run.json``). Offline, each process writes its own
  ``offline-run-*-<id>`` segment, and a SIGKILLed segment loses its unflushed tail (wandb writes the log lazily), so
  on resume we read the earlier segments back, re-log the rows they lost from ``metrics.jsonl`` and skip the rows they
  already hold. Online, wandb's server-side resume keeps the history; rows it already has are dropped by wandb.

Checkpoints go to wandb as versions of one ``model`` artifact per run (``ckpt-<run id>``, aliases ``latest`` and
``step-<env steps>``). Up to :func:`reference_threshold` bytes a checkpoint is copied into the artifact (wandb stages
the copy under ``$WANDB_DATA_DIR``, so pruning old checkpoints cannot break a later ``wandb sync``); above it the
artifact holds ``file://`` references with checksums, so a scale-4 run does not duplicate gigabytes, and the files
must still exist where the references point when someone downloads them.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from mazeagent.ppo.config import RUN_KEYS, PPOConfig

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
MEDIA_DIR = "media"  # eval rollout GIFs/PNGs, one folder per env step (kept: viewable without wandb)
ARTIFACT_REFERENCE_MB = 64.0  # checkpoints larger than this are logged by reference
REFERENCE_ENV = "MAZEAGENT_ARTIFACT_REFERENCE_MB"  # overrides ARTIFACT_REFERENCE_MB (e.g. 0: always by reference)


class RunLogger:
    """Writes one row per update to ``metrics.jsonl`` and wandb. ``resume_step`` is the env-step count of the
    checkpoint being resumed (None for a fresh run)."""

    def __init__(self, out_dir: str | os.PathLike, config: PPOConfig, resume_step: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out_dir / METRICS_FILE
        rows = _cut_metrics(self.metrics_path, resume_step)
        self._metrics = open(self.metrics_path, "a")
        self.run_id = _run_id(self.out_dir)
        self._run = None
        self._skip: set[int] = set()
        self._artifact_steps: set[int] = set()  # env steps whose checkpoint an earlier offline segment logged
        self.config = config
        if config.wandb_mode != "disabled":
            reference_threshold()  # a bad override fails now, not at the first checkpoint
            self._init_wandb(config, rows, resume_step)

    def will_log(self, step: int) -> bool:
        """Whether a wandb row at ``step`` will be written (so media for it are worth making)."""
        return self._run is not None and int(step) not in self._skip

    def media_dir(self, step: int) -> Path:
        return self.out_dir / MEDIA_DIR / f"{int(step):012d}"

    def _init_wandb(self, config: PPOConfig, rows: list[dict[str, Any]], resume_step: int | None) -> None:
        import wandb

        present = set()
        if resume_step is not None and config.wandb_mode == "offline":
            segments = read_wandb_run(self.out_dir, self.run_id)
            present = {int(r["_step"]) for seg in segments for r in seg["history"] if "_step" in r}
            self._artifact_steps = {int(a["metadata"]["env_steps"]) for seg in segments for a in seg["artifacts"]
                                    if "env_steps" in a["metadata"]}
        self._run = wandb.init(
            project=config.wandb_project, entity=config.wandb_entity, id=self.run_id, resume="allow",
            dir=str(self.out_dir), mode=config.wandb_mode,
            config={**config.to_dict(), "batch_size": config.batch_size, "num_updates": config.num_updates},
            settings=wandb.Settings(x_disable_stats=True, console="off", silent=True))
        for row in rows:  # rows an earlier, killed segment logged locally but lost in wandb
            if row["step"] not in present:
                self._run.log(_wandb_row(row), step=row["step"])
        self._skip = {s for s in present if resume_step is None or s > resume_step}

    def log(self, row: dict[str, Any], media: dict[str, Any] | None = None) -> None:
        """``row`` must hold an int ``step`` (env steps); values must be JSON numbers. ``media`` (wandb Video/Image
        objects) go to wandb only, in the same row (so a row re-logged after a SIGKILL comes back without them)."""
        step = int(row["step"])
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self.will_log(step):
            self._run.log({**_wandb_row(row), **(media or {})}, step=step)

    def log_checkpoint(self, path: str | os.PathLike, update: int, env_steps: int) -> None:
        """Record the (final, renamed) checkpoint directory ``path`` as a new version of the run's model artifact.
        A resumed offline run skips checkpoints its earlier segments already recorded."""
        if self._run is None or int(env_steps) in self._artifact_steps:
            return
        import wandb

        path = Path(path).resolve()
        files = sorted(p for p in path.iterdir() if p.is_file())
        size = sum(p.stat().st_size for p in files)
        by_reference = size > reference_threshold()
        art = wandb.Artifact(f"ckpt-{self.run_id}", type="model", metadata={
            "env_steps": int(env_steps), "update": int(update), "config_hash": config_hash(self.config),
            "checkpoint": str(path), "bytes": size, "by_reference": by_reference})
        if by_reference:  # checksummed file:// entries; nothing is copied
            art.add_reference(path.as_uri())
        else:
            for p in files:  # add_file, not add_dir: the same copy, without add_dir's console chatter
                art.add_file(str(p), name=p.name)
        self._run.log_artifact(art, aliases=["latest", f"step-{int(env_steps)}"])
        self._artifact_steps.add(int(env_steps))

    def close(self, exit_code: int = 0) -> None:
        self._metrics.close()
        if self._run is not None:
            finish_run(self._run, exit_code)
            self._run = None


def finish_run(run: Any, exit_code: int = 0) -> None:
    """``run.finish()``, and for an offline run wait until its ``.wandb`` file is complete: wandb-core writes it
    after finish() returns, and a resume (or a test) must read it whole."""
    log_file = Path(run.dir).parent / f"run-{run.id}.wandb"
    offline = run.settings.mode == "offline"
    run.finish(exit_code=exit_code)
    if offline:
        _wait_for_exit_record(log_file)


def _wait_for_exit_record(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and read_wandb_file(path)["exit_code"] is not None:
            return
        time.sleep(0.02)


def reference_threshold() -> int:
    """Bytes above which a checkpoint is logged by reference: ``$MAZEAGENT_ARTIFACT_REFERENCE_MB`` (MiB) or
    :data:`ARTIFACT_REFERENCE_MB`."""
    raw = os.environ.get(REFERENCE_ENV, "").strip()
    try:
        mb = float(raw) if raw else ARTIFACT_REFERENCE_MB
    except ValueError:
        mb = -1.0
    if not 0 <= mb < 1e12:
        raise ValueError(f"{REFERENCE_ENV}={raw!r} must be a number of MiB >= 0 (checkpoints larger than this are "
                         f"logged to wandb by reference; default {ARTIFACT_REFERENCE_MB:g})")
    return int(mb * (1 << 20))


def run_tags(config: PPOConfig) -> list[str]:
    """The wandb tags that make runs of a sweep filterable by what the agent is: ``rand_region:<r|none>`` and
    ``scale:<net_scale>``."""
    rr = "none" if config.rand_region is None else config.rand_region
    return [f"rand_region:{rr}", f"scale:{config.net_scale}"]


def checkpoint_tags(checkpoint: str | os.PathLike | None) -> list[str]:
    """:func:`run_tags` of the run a checkpoint path belongs to; [] when it is not a readable checkpoint."""
    from mazeagent.ppo.checkpoint import read_meta, resolve

    try:
        return run_tags(PPOConfig.from_dict(read_meta(resolve(checkpoint))["config"])) if checkpoint else []
    except (ValueError, TypeError, KeyError, OSError):  # a label, not a path (e.g. the demo's "UNTRAINED ...")
        return []


def config_hash(config: PPOConfig) -> str:
    """Short hash of what a config trains (run-management keys excluded): equal hashes, comparable checkpoints."""
    learned = {k: v for k, v in config.to_dict().items() if k not in RUN_KEYS}
    return hashlib.sha256(json.dumps(learned, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_metrics(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(out_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cut_metrics(path: Path, resume_step: int | None) -> list[dict[str, Any]]:
    """Keep rows up to ``resume_step`` (all of them for a fresh run: there are none); rewrite atomically."""
    if resume_step is None or not path.exists():
        if path.exists() and path.stat().st_size:
            raise ValueError(f"{path} already holds metrics; resume the run (--resume) or choose a new --out")
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by SIGKILL mid-write
            continue
        if int(row["step"]) <= resume_step:
            rows.append(row)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return rows


def _run_id(out_dir: Path) -> str:
    path = out_dir / RUN_FILE
    if path.exists():
        return json.loads(path.read_text())["wandb_id"]
    run_id = os.urandom(4).hex()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"wandb_id": run_id}))
    os.replace(tmp, path)
    return run_id


def _wandb_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "step"}


# ---- reading offline wandb runs back (for resume bookkeeping and tests) ----------------------------------------
_BLOCK, _HDR = 32768, 7


def read_wandb_run(out_dir: str | os.PathLike, run_id: str | None = None) -> list[dict[str, Any]]:
    """:func:`read_wandb_file` of every offline segment of a run under ``out_dir/wandb`` (oldest first), each with
    its ``path``."""
    run_id = run_id or _run_id(Path(out_dir))
    logs = sorted((Path(out_dir) / "wandb").glob(f"offline-run-*/run-{run_id}.wandb"))
    return [{**read_wandb_file(log), "path": log} for log in logs]


def read_wandb_history(out_dir: str | os.PathLike, run_id: str | None = None) -> list[dict[str, Any]]:
    """History rows of every offline segment of a run under ``out_dir/wandb`` (oldest first)."""
    return [row for seg in read_wandb_run(out_dir, run_id) for row in seg["history"]]


def read_wandb_file(path: str | os.PathLike) -> dict[str, Any]:
    """Run info (name, group, job type, tags), config, history, summary, logged artifacts, media files and exit code
    of one ``run-<id>.wandb`` transaction log.

    The format is wandb-internal (LevelDB-log framing of protobuf ``Record``s, 32 KiB blocks); a tail cut off by a
    kill is ignored rather than raised, because a killed segment is exactly what resume must cope with. Each
    artifact is ``{"name", "type", "aliases", "metadata", "files": [{"path", "size", "digest", "local_path" or
    "ref"}]}``; ``files`` lists paths (relative to the segment's ``files/``) that wandb saved, e.g. media.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"run": {}, "config": {}, "history": [], "summary": {}, "artifacts": [], "files": [],
                           "exit_code": None}
    for raw in _records(Path(path).read_bytes()):
        rec = pb.Record.FromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out["run"] = {"id": r.run_id, "project": r.project, "name": r.display_name, "group": r.run_group,
                          "job_type": r.job_type, "tags": list(r.tags)}
        if kind in ("run", "config"):
            items = rec.run.config.update if kind == "run" else rec.config.update
            out["config"].update({_item_key(it): json.loads(it.value_json) for it in items})
        elif kind == "artifact":
            a = rec.artifact
            out["artifacts"].append({
                "name": a.name, "type": a.type, "aliases": list(a.aliases),
                "metadata": json.loads(a.metadata) if a.metadata else {},
                "files": [{"path": c.path, "size": c.size, "digest": c.digest,
                           **({"ref": c.ref} if c.ref else {"local_path": c.local_path})}
                          for c in a.manifest.contents]})
        elif kind == "files":
            out["files"] += [f.path for f in rec.files.files]
        elif kind == "history":
            out["history"].append({_item_key(it): _item_value(it) for it in rec.history.item})
        elif kind == "summary":
            out["summary"].update({_item_key(it): json.loads(it.value_json) for it in rec.summary.update})
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    out["config"].pop("_wandb", None)
    return out


def _records(data: bytes):
    if len(data) < _HDR or data[:4] != b":W&B":
        return
    pos, buf = _HDR, b""
    while pos + _HDR <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HDR:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HDR])
        chunk = data[pos + _HDR:pos + _HDR + length]
        if kind == 0 and length == 0:
            pos += _HDR
            continue
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            return  # truncated tail
        pos += _HDR + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk
            buf = b""


def _item_key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _item_value(item: Any) -> Any:
    which = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    if which is None:
        return json.loads(item.value_json) if item.value_json else None
    if which == "none":
        return None
    if which == "json":
        return json.loads(item.json)
    return getattr(item, which)
