"""``mazeagent status``: where the jobs of a submission stand, where their logs are, what is left to sync.

Slurm keeps finished jobs in ``scontrol`` for ``MinJobAge`` (300 s by default); after that only ``sacct`` knows them,
and ``sacct`` needs accounting (slurmdbd), which small clusters and CI lack. So: scontrol first, then sacct, then
"finished, no record" -- never a guess.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mazeagent.cluster.submit import log_path, read_submissions

_FIELD = re.compile(r"(\w+)=(\S*)")


def _run(cmd: list[str]) -> tuple[int, str]:
    if shutil.which(cmd[0]) is None:
        return 127, f"{cmd[0]} not found"
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(cmd)} timed out (controller down?)"
    return p.returncode, p.stdout if p.returncode == 0 else p.stderr.strip()


def job_states(job_id: str) -> list[dict[str, str]]:
    """One row per job or array task: ``id``, ``state``, ``exit``, ``restarts``, ``log`` (when known), ``source``."""
    rc, out = _run(["scontrol", "-o", "show", "job", str(job_id)])
    if rc == 0 and out.strip():
        rows = []
        for line in out.splitlines():
            f = dict(_FIELD.findall(line))
            task = f.get("ArrayTaskId")
            rows.append({"id": f"{f.get('ArrayJobId')}_{task}" if task else f.get("JobId", "?"),
                         "state": f.get("JobState", "?"), "exit": f.get("ExitCode", ""),
                         "restarts": f.get("Restarts", "0"), "reason": f.get("Reason", ""),
                         "log": f.get("StdOut", ""), "source": "scontrol"})
        return sorted(rows, key=_task_order)
    rc, out = _run(["sacct", "-n", "-P", "-X", "-j", str(job_id), "--format=JobID,State,ExitCode"])
    if rc == 0 and out.strip():
        rows = [dict(zip(("id", "state", "exit"), line.split("|")), source="sacct") for line in out.splitlines()]
        return sorted(rows, key=_task_order)
    return [{"id": str(job_id), "state": "FINISHED?", "exit": "",
             "source": "no record (scontrol forgot it and sacct has no accounting)"}]


def _task_order(row: dict[str, str]) -> tuple[int, str]:
    tail = row["id"].rpartition("_")[2]
    return (int(tail) if tail.isdigit() else -1, row["id"])


def collect(outs: list[str]) -> dict[str, Any]:
    """Status of every submission recorded under each of ``outs``; without ``outs``, the user's queue."""
    if not outs:
        rc, text = _run(["squeue", "--me", "-o", "%.18i %.9P %.30j %.10T %.10M %R"])
        return {"queue": text if rc == 0 else None, "error": None if rc == 0 else text}
    report: dict[str, Any] = {"submissions": []}
    for out in outs:
        subs = read_submissions(out)
        if not subs:
            raise ValueError(f"no submissions recorded under {out} (expected {out}/slurm/submissions.jsonl, "
                             f"written by `mazeagent submit`)")
        for sub in subs:
            jobs = [{**job, "tasks": job_states(job["id"])} for job in sub["jobs"]]
            offline = sorted(str(p) for p in Path(out).glob("**/wandb/offline-run-*") if p.is_dir())
            report["submissions"].append({"out": str(Path(out).resolve()), "time": sub["time"], "kind": sub["kind"],
                                          "jobs": jobs, "wandb_offline_runs": offline})
    return report


def format_report(report: dict[str, Any]) -> str:
    if "queue" in report:
        return report["queue"] if report["queue"] is not None else f"squeue failed: {report['error']}"
    lines = []
    for sub in report["submissions"]:
        lines.append(f"{sub['kind']} submitted {sub['time']} -> {sub['out']}")
        for job in sub["jobs"]:
            after = f", after {job['after']}" if job.get("after") else ""
            lines.append(f"  job {job['id']} {job['name']}{after}; script {job['path']}")
            for t in job["tasks"]:
                extra = "".join(f" {k}={t[k]}" for k in ("exit", "restarts", "reason") if t.get(k) not in
                                (None, "", "0", "None", "0:0"))
                log = t.get("log") or _task_log(job, t["id"])
                lines.append(f"    {t['id']:>14} {t['state']:<11}{extra}  log {log}")
        if sub["wandb_offline_runs"]:
            lines.append(f"  {len(sub['wandb_offline_runs'])} offline wandb run segment(s); upload with:")
            lines.append(f"    wandb sync {' '.join(sync_globs(sub['out'], sub['wandb_offline_runs']))}")
    return "\n".join(lines)


def _task_log(job: dict[str, Any], task_id: str) -> str:
    task = task_id.rpartition("_")[2] if "_" in task_id else "%a"
    return log_path(job, job["id"]).replace("%a", task)


def sync_globs(out: str, runs: list[str]) -> list[str]:
    """Shell globs covering ``runs`` (offline-run-* dirs under ``out``): ``OUT/*/wandb/offline-run-*`` for a sweep.
    Segments of a resumed run share its id; `wandb sync` uploads them in start-time order into that one run."""
    globs = set()
    for r in runs:
        parts = Path(r).relative_to(out).parts  # e.g. ("003-rand_region_4", "wandb", "offline-run-...")
        globs.add("/".join([out, *("*" for _ in parts[:-2]), "wandb", "offline-run-*"]))
    return sorted(globs)
