"""Reading offline wandb runs back in tests, through wandb's own reader (a helper module, not a test file).

Product code never reads wandb's files (``mazeagent/ppo/logging.py``). Tests must, to check what a run recorded, and
they do it with the pinned wandb's public reader: its CLI ``wandb leet inspect --json PATH`` decodes a ``.wandb``
transaction log into one JSON record per line (protobuf JSON: zero values and empty fields are left out, int64 are
strings), stopping without error at a tail a kill cut off. What was checked for wandb 0.31.0: ``wandb.Api`` needs a
server and cannot open an offline directory; ``wandb sync`` and ``wandb beta sync`` only upload (``--dry-run`` lists
runs, no records); ``wandb.sdk.internal.datastore`` (the old Python reader) no longer ships; ``wandb leet inspect`` is
the only reader, so it is what these helpers call.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def wandb_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of one ``run-<id>.wandb`` file, as ``wandb leet inspect --json`` prints them."""
    p = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "WANDB_SILENT": "true"})
    assert p.returncode == 0, f"wandb leet inspect {path}: {p.stderr[-2000:]}"
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def read_segment(path: str | os.PathLike) -> dict[str, Any]:
    """One ``.wandb`` file as ``{"path", "run": {id, project, name, group, job_type, tags, start_time}, "config",
    "history", "summary", "artifacts", "files", "exit_code"}``: history rows are flat dicts (nested keys joined by
    "."), ``exit_code`` is None without an exit record (a killed segment), each artifact is ``{"name", "type",
    "aliases", "digest", "metadata", "files": [{"path", "size", "digest", "local_path" or "ref"}]}`` and ``files``
    lists the paths (relative to the segment's ``files/``) that wandb saved, e.g. media."""
    out: dict[str, Any] = {"path": Path(path), "run": {}, "config": {}, "history": [], "summary": {},
                           "artifacts": [], "files": [], "exit_code": None}
    for rec in wandb_records(path):
        kind, body = rec["type"], rec.get(rec["type"], {})
        if kind == "run":
            out["run"] = {"id": body.get("run_id", ""), "project": body.get("project", ""),
                          "name": body.get("display_name", ""), "group": body.get("run_group", ""),
                          "job_type": body.get("job_type", ""), "tags": body.get("tags", []),
                          "start_time": body.get("start_time", "")}
            out["config"].update(body.get("config", {}).get("update", {}))
        elif kind == "config":
            out["config"].update(body.get("update", {}))
        elif kind == "history":
            out["history"].append(body.get("item", {}))
        elif kind == "summary":
            out["summary"].update(body.get("update", {}))
        elif kind == "files":
            out["files"] += [f["path"] for f in body.get("files", [])]
        elif kind == "artifact":
            out["artifacts"].append({
                "name": body["name"], "type": body["type"], "aliases": body.get("aliases", []),
                "digest": body["digest"], "metadata": json.loads(body.get("metadata") or "{}"),
                "files": [{"path": c["path"], "size": int(c.get("size", 0)), "digest": c["digest"],
                           **({"ref": c["ref"]} if c.get("ref") else {"local_path": c["local_path"]})}
                          for c in body.get("manifest", {}).get("contents", [])]})
        elif kind == "exit":
            out["exit_code"] = int(body.get("exit_code", 0))
    out["config"].pop("_wandb", None)
    return out


def read_run(out_dir: str | os.PathLike, run_id: str | None = None) -> list[dict[str, Any]]:
    """:func:`read_segment` of every offline segment of a run under ``out_dir/wandb``, oldest first (the order
    ``wandb sync`` uploads them in). ``run_id`` defaults to ``out_dir/run.json``'s."""
    run_id = run_id or json.loads((Path(out_dir) / "run.json").read_text())["wandb_id"]
    logs = (Path(out_dir) / "wandb").glob(f"offline-run-*-{run_id}*/run-{run_id}.wandb")
    return [read_segment(p) for p in sorted(logs, key=_started)]


def _started(log: Path) -> tuple[str, int]:
    """When a segment started, from its folder's name, ``offline-run-<YYYYmmdd_HHMMSS>-<id>[-<n>]``: wandb adds -1,
    -2, ... to a segment that starts in the same second as an earlier one. (Not the run record's start time: a
    segment killed early may have written no record at all.)"""
    _, _, stamp, _, *n = log.parent.name.split("-")
    return stamp, int(n[0]) if n else 0


def steps(seg: dict[str, Any]) -> list[int]:
    """The env steps of a segment's history rows, in the order logged."""
    return [int(r["_step"]) for r in seg["history"]]
