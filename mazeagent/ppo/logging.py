"""Run logging: a local ``metrics.jsonl`` always, and wandb (offline by default, online, or disabled).

Every row is keyed by env steps. Across a kill and ``--resume`` neither sink gets gaps or duplicates:

* ``metrics.jsonl`` is cut back to the resumed checkpoint's step (rows after it will be recomputed, bitwise equal).
* wandb keeps one run id per output directory (``run.json``). Offline, each process writes its own
  ``offline-run-*-<id>`` segment and a SIGKILLed segment loses its unflushed tail (slurm-wandb-notes §2.6), so on
  resume we read the earlier segments back, re-log the rows they lost from ``metrics.jsonl`` and skip the rows they
  already hold. Online, wandb's server-side resume keeps the history; rows it already has are dropped by wandb.
"""
from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from mazeagent.ppo.config import PPOConfig

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"


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
        if config.wandb_mode != "disabled":
            self._init_wandb(config, rows, resume_step)

    def _init_wandb(self, config: PPOConfig, rows: list[dict[str, Any]], resume_step: int | None) -> None:
        import wandb

        present = set()
        if resume_step is not None and config.wandb_mode == "offline":
            present = {int(r["_step"]) for r in read_wandb_history(self.out_dir, self.run_id) if "_step" in r}
        self._run = wandb.init(
            project=config.wandb_project, entity=config.wandb_entity, id=self.run_id, resume="allow",
            dir=str(self.out_dir), mode=config.wandb_mode,
            config={**config.to_dict(), "batch_size": config.batch_size, "num_updates": config.num_updates},
            settings=wandb.Settings(x_disable_stats=True, console="off", silent=True))
        for row in rows:  # rows an earlier, killed segment logged locally but lost in wandb
            if row["step"] not in present:
                self._run.log(_wandb_row(row), step=row["step"])
        self._skip = {s for s in present if resume_step is None or s > resume_step}

    def log(self, row: dict[str, Any]) -> None:
        """``row`` must hold an int ``step`` (env steps); values must be JSON numbers."""
        step = int(row["step"])
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self._run is not None and step not in self._skip:
            self._run.log(_wandb_row(row), step=step)

    def close(self, exit_code: int = 0) -> None:
        self._metrics.close()
        if self._run is not None:
            log_file = Path(self._run.dir).parent / f"run-{self.run_id}.wandb"
            offline = self._run.settings.mode == "offline"
            self._run.finish(exit_code=exit_code)
            self._run = None
            if offline:  # wandb-core writes the file after finish() returns: wait, so a resume reads it whole
                _wait_for_exit_record(log_file)


def _wait_for_exit_record(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and read_wandb_file(path)["exit_code"] is not None:
            return
        time.sleep(0.02)


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


def read_wandb_history(out_dir: str | os.PathLike, run_id: str | None = None) -> list[dict[str, Any]]:
    """History rows of every offline segment of a run under ``out_dir/wandb`` (oldest first)."""
    run_id = run_id or _run_id(Path(out_dir))
    rows: list[dict[str, Any]] = []
    for log in sorted((Path(out_dir) / "wandb").glob(f"offline-run-*/run-{run_id}.wandb")):
        rows += read_wandb_file(log)["history"]
    return rows


def read_wandb_file(path: str | os.PathLike) -> dict[str, Any]:
    """Config, history, summary and exit code of one ``run-<id>.wandb`` transaction log.

    The format is wandb-internal (LevelDB-log framing of protobuf ``Record``s, 32 KiB blocks); a tail cut off by a
    kill is ignored rather than raised, because a killed segment is exactly what resume must cope with.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "exit_code": None}
    for raw in _records(Path(path).read_bytes()):
        rec = pb.Record.FromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind in ("run", "config"):
            items = rec.run.config.update if kind == "run" else rec.config.update
            out["config"].update({_item_key(it): json.loads(it.value_json) for it in items})
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
