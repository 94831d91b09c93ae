"""Plans and submission: turning a training run, a sweep (a job array over a grid) or a sharded study (an array
plus a merge job) into validated sbatch scripts (:class:`Plan`), and sending them with plain ``sbatch``; the
submission record ``mazeagent status`` reads back. Templates and option checks: :mod:`mazeagent.cluster.sbatch`.

Why plain sbatch and not submitit: our users read and edit sbatch scripts, and a rendered script under
``<out>/slurm/`` is something they can rerun by hand (``sbatch --array=3,7 sweep-....sbatch``); submitit pickles a
Python callable instead, which hides the job from them, adds a dependency, and has no notion of a trainer that
checkpoints on USR1 and requeues itself (ours is 40 lines of bash in ``slurm/lib/job.sh``).

Everything a job would fail on is checked here, before ``sbatch`` runs: the preset and every ``--set``/``--grid``
value (with the trainer's own parser), array specs, time limits, the study's checkpoint.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mazeagent.cluster.sbatch import (Resources, WandbOptions, check_path, check_token, load_template,
                                      parse_array_spec, parse_grid, render, template_dir)

SUBMISSIONS = "submissions.jsonl"  # one JSON line per submission, under <out>/slurm/


# ---- plans ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One sbatch script of a plan. ``after`` is the index of an earlier job that must succeed first."""

    kind: str
    name: str
    script: str
    path: Path
    logs: str  # Slurm's --output pattern, absolute
    after: int | None = None


@dataclass(frozen=True)
class Plan:
    """What ``submit`` sends: scripts in order, and per-task bookkeeping for ``mazeagent status``."""

    kind: str
    out: Path
    jobs: tuple[Job, ...]
    tasks: tuple[dict[str, Any], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


def _common(out: Path, name: str, res: Resources) -> dict[str, str]:
    log_dir = out / "slurm" / "logs"
    return {
        "job_name": check_token("--name", name),
        "log_dir": check_path("--out", log_dir),
        "workdir": check_path("--out", out),
        "time": res.time,
        "cpus_per_task": str(res.cpus_per_task),
        "optional_sbatch": "\n".join(res.sbatch_lines()),
        "python": shlex.quote(sys.executable),
    }


def _train_values(preset_name: str, overrides: list[str], seed: int | None, wandb: WandbOptions, name: str,
                  res: Resources) -> tuple[dict[str, str], Any]:
    """Validate preset + overrides with the trainer's own parser; return template values and the config."""
    from mazeagent.ppo.config import make_config

    sets = list(overrides) + wandb.train_overrides() + ([f"seed={seed}"] if seed is not None else [])
    cfg = make_config(preset_name, sets)
    args = [a for kv in sets for a in ("--set", kv)]
    values = {
        "preset": shlex.quote(preset_name),
        "train_args": " ".join(shlex.quote(a) for a in args),
        "wandb_group": shlex.quote(wandb.group or name),
        "signal_lead_s": str(res.signal_lead_s),
        "max_restarts": str(res.max_restarts),
        "slurm_lib": shlex.quote(str(template_dir() / "lib" / "job.sh")),
    }
    return values, cfg


def _check_existing(run_dir: Path, cfg: Any) -> None:
    """A job always runs with ``--resume``; refuse now (not hours later in the queue) if ``run_dir`` already holds a
    run of a different config, which the trainer would reject."""
    from mazeagent.ppo.checkpoint import list_checkpoints, read_meta
    from mazeagent.ppo.config import PPOConfig
    from mazeagent.ppo.runner import check_resumable, checkpoint_dir

    found = list_checkpoints(checkpoint_dir(run_dir))
    if found:
        check_resumable(PPOConfig.from_dict(read_meta(found[-1])["config"]), cfg, found[-1])


def _tags(cfg: Any, preset_name: str, extra: tuple[str, ...]) -> str:
    """wandb tags that make a sweep filterable: rand_region, net scale (:func:`run_tags`), preset, the user's."""
    from mazeagent.ppo.logging import run_tags

    return ",".join([*run_tags(cfg), f"preset:{preset_name}", *extra])


def plan_train(preset: str, out: str | os.PathLike, overrides: list[str] | tuple[str, ...] = (),
               seed: int | None = None, resources: Resources = Resources(), wandb: WandbOptions = WandbOptions(),
               name: str | None = None) -> Plan:
    """One preemption-safe training run writing checkpoints and wandb under ``out``."""
    out = Path(out).resolve()
    res, wandb = resources.validate(), wandb.validate()
    name = name or f"train-{out.name}"
    values, cfg = _train_values(preset, list(overrides), seed, wandb, name, res)
    _check_existing(out, cfg)
    values |= _common(out, name, res)
    values |= {"run_dir": shlex.quote(check_path("--out", out)), "wandb_name": shlex.quote(out.name),
               "jax_cache": shlex.quote(str(out / "slurm" / "jax-cache")),
               "wandb_tags": shlex.quote(_tags(cfg, preset, wandb.tags))}
    job = Job("train", name, render(load_template("train"), values), out / "slurm" / f"{name}.sbatch",
              str(out / "slurm" / "logs" / f"{name}-%j.out"))
    return Plan("train", out, (job,), ({"task": None, "out": str(out), "config": cfg.to_dict()},),
                {"preset": preset, "overrides": list(overrides), "seed": seed})


def plan_sweep(preset: str, out: str | os.PathLike, grid: list[str] | tuple[str, ...],
               overrides: list[str] | tuple[str, ...] = (), array: str | None = None, max_parallel: int | None = None,
               resources: Resources = Resources(), wandb: WandbOptions = WandbOptions(),
               name: str | None = None) -> Plan:
    """A job array, one task per point of the grid's cartesian product; task i trains under ``out/<i>-<key-val>``."""
    from mazeagent.ppo.config import make_config

    out = Path(out).resolve()
    res, wandb = resources.validate(), wandb.validate()
    name = name or f"sweep-{out.name}"
    points = parse_grid(grid)
    clash = sorted({k for p in points for k in p} & {kv.partition("=")[0].strip() for kv in overrides})
    if clash:
        raise ValueError(f"{clash} set by both --grid and --set; keep one")
    values, _ = _train_values(preset, list(overrides), None, wandb, name, res)
    task_ids = range(len(points))
    if array is not None:
        wanted = parse_array_spec(array)
        bad = [i for i in wanted if i >= len(points)]
        if bad:
            raise ValueError(f"--array {array!r} names task(s) {bad[:5]} but the grid has only {len(points)} "
                             f"points (0-{len(points) - 1})")
        spec = array
    else:
        spec = f"0-{len(points) - 1}"
    if max_parallel is not None:
        if max_parallel < 1:
            raise ValueError(f"--max-parallel must be >= 1, got {max_parallel}")
        if "%" in spec:
            raise ValueError("give the throttle either in --array (…%N) or as --max-parallel, not both")
        spec += f"%{max_parallel}"
    cases, tasks = [], []
    for i in task_ids:
        point = points[i]
        sets = [f"{k}={v}" for k, v in point.items()]
        cfg = make_config(preset, list(overrides) + sets + wandb.train_overrides())  # each point must be valid
        run_name = f"{i:03d}-" + "-".join(f"{k}_{v}" for k, v in point.items())
        run_dir = out / check_token("grid value", run_name)
        _check_existing(run_dir, cfg)
        task_args = " ".join(shlex.quote(a) for kv in sets for a in ("--set", kv))
        cases.append(f"  {i}) RUN_DIR={shlex.quote(str(run_dir))} TASK_ARGS=({task_args})\n"
                     f"     WANDB_NAME={shlex.quote(f'{name}/{run_name}')} "
                     f"WANDB_TAGS={shlex.quote(_tags(cfg, preset, wandb.tags))} ;;")
        tasks.append({"task": i, "out": str(run_dir), "point": point, "config": cfg.to_dict()})
    values |= _common(out, name, res)
    values |= {"array": spec, "task_cases": "\n".join(cases),
               "jax_cache": shlex.quote(str(out / "slurm" / "jax-cache"))}
    job = Job("sweep", name, render(load_template("sweep"), values), out / "slurm" / f"{name}.sbatch",
              str(out / "slurm" / "logs" / f"{name}-%A_%a.out"))
    return Plan("sweep", out, (job,), tuple(tasks),
                {"preset": preset, "grid": list(grid), "overrides": list(overrides), "array": spec})


def plan_study(checkpoint: str | os.PathLike, mazes: int, out: str | os.PathLike, shards: int, seed: int = 0,
               resources: Resources = Resources(cpus_per_task=4, time="4:00:00"), study_args: tuple[str, ...] = (),
               name: str | None = None, wandb: WandbOptions = WandbOptions(), max_parallel: int | None = None) -> Plan:
    """``shards`` array tasks that each study their share of ``mazes``, then a merge job (afterok)."""
    from mazeagent.ppo.checkpoint import resolve

    out = Path(out).resolve()
    res, wandb = resources.validate(), wandb.validate()
    ckpt = Path(checkpoint).resolve()
    resolve(ckpt)  # ValueError naming the problem if there is no usable checkpoint there
    if mazes < 1:
        raise ValueError(f"--mazes must be >= 1, got {mazes}")
    if not 1 <= shards <= mazes:
        raise ValueError(f"--shards must be between 1 and --mazes ({mazes}), got {shards}")
    name = name or f"study-{out.name}"
    base = ["--checkpoint", check_path("--checkpoint", ckpt), "--mazes", str(mazes), "--out",
            check_path("--out", out), "--seed", str(seed), *study_args]
    quoted = " ".join(shlex.quote(a) for a in base)
    common = {"wandb_group": shlex.quote(wandb.group or name), "wandb_tags": shlex.quote(",".join(wandb.tags)),
              "jax_cache": shlex.quote(str(out / "slurm" / "jax-cache"))}
    if max_parallel is not None and max_parallel < 1:
        raise ValueError(f"--max-parallel must be >= 1, got {max_parallel}")
    array = f"0-{shards - 1}" + (f"%{max_parallel}" if max_parallel else "")
    shard_vals = _common(out, name, res) | common | {"array": array, "shards": str(shards),
                                                      "study_args": quoted}
    merge_name = f"{name}-merge"
    # the merge also evaluates the policy (decision squares, edits), so it gets the shards' resources
    merge_vals = _common(out, merge_name, res) | common | {
        "merge_args": f"{quoted} --merge {shards}"}
    jobs = (
        Job("study", name, render(load_template("study"), shard_vals), out / "slurm" / f"{name}.sbatch",
            str(out / "slurm" / "logs" / f"{name}-%A_%a.out")),
        Job("merge", merge_name, render(load_template("study_merge"), merge_vals),
            out / "slurm" / f"{merge_name}.sbatch", str(out / "slurm" / "logs" / f"{merge_name}-%j.out"), after=0),
    )
    tasks = tuple({"task": i, "shard": f"{i}/{shards}"} for i in range(shards))
    return Plan("study", out, jobs, tasks, {"checkpoint": str(ckpt), "mazes": mazes, "shards": shards, "seed": seed})


# ---- submission -----------------------------------------------------------------------------------------------------
def sbatch_command(job: Job, dependency: str | None = None) -> list[str]:
    cmd = ["sbatch", "--parsable"]
    if dependency is not None:
        cmd += [f"--dependency=afterok:{dependency}", "--kill-on-invalid-dep=yes"]
    return cmd + [str(job.path)]


def submit(plan: Plan) -> list[str]:
    """Write the scripts under ``<out>/slurm/`` and sbatch them in order (a dependent job gets its dependency's id);
    returns the job ids. The submission is recorded for ``mazeagent status``. (A dry run is just the plan.)"""
    if shutil.which("sbatch") is None:
        raise ValueError("sbatch not found on PATH: submit from a Slurm login node (or use --dry-run to see the "
                         "scripts)")
    (plan.out / "slurm" / "logs").mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    for job in plan.jobs:
        job.path.write_text(job.script)
        dep = ids[job.after] if job.after is not None else None
        proc = subprocess.run(sbatch_command(job, dep), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            if ids:  # don't leave half a plan queued (e.g. shards without their merge)
                subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
            raise ValueError(f"sbatch {job.path} failed (exit {proc.returncode}): {proc.stderr.strip()}"
                               + (f"; cancelled {ids}" if ids else ""))
        ids.append(proc.stdout.strip().split(";")[0])
    record = {"time": _time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kind": plan.kind, "meta": plan.meta,
              "jobs": [{"id": i, **{k: str(v) for k, v in asdict(j).items() if k in ("kind", "name", "path", "logs")},
                        "after": ids[j.after] if j.after is not None else None} for i, j in zip(ids, plan.jobs)],
              "tasks": list(plan.tasks)}
    with open(plan.out / "slurm" / SUBMISSIONS, "a") as f:
        f.write(json.dumps(record) + "\n")
    return ids


def log_path(job: Job | dict[str, Any], job_id: str) -> str:
    """The ``--output`` pattern with the job's name and id filled in (``%a``, the array task, stays)."""
    name, logs = (job.name, job.logs) if isinstance(job, Job) else (job["name"], job["logs"])
    return logs.replace("%x", name).replace("%j", job_id).replace("%A", job_id)


def read_submissions(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every recorded submission under ``out`` (oldest first); empty if none."""
    path = Path(out) / "slurm" / SUBMISSIONS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
