"""``mazeagent submit train|sweep|study`` and ``mazeagent status`` (Slurm). Parsing only; the work is in
:mod:`mazeagent.cluster.sbatch`, :mod:`mazeagent.cluster.submit` and :mod:`mazeagent.cluster.status`."""
from __future__ import annotations

import argparse
import json
import sys
from mazeagent.ppo.config import DEFAULT_WANDB_MODE, WANDB_MODES


def _add_resources(p: argparse.ArgumentParser, time: str, cpus: int) -> None:
    g = p.add_argument_group("Slurm resources")
    g.add_argument("--time", default=time, help=f"time limit per job/task: minutes, H:M:S or D-H:M:S (default {time})")
    g.add_argument("--cpus", type=int, default=cpus, help=f"--cpus-per-task (default {cpus})")
    g.add_argument("--mem", default=None, help="memory per node, e.g. 32G (default: the partition's)")
    g.add_argument("--gpus", type=int, default=0, help="GPUs per job (--gres=gpu:N)")
    g.add_argument("--gpu-type", default=None, help="GPU type for --gres, e.g. a100")
    g.add_argument("--partition", default=None)
    g.add_argument("--account", default=None)
    g.add_argument("--qos", default=None)
    g.add_argument("--constraint", default=None)
    g.add_argument("--sbatch-arg", dest="sbatch_args", action="append", default=[], metavar="--OPTION[=V]",
                   help="any other sbatch option, e.g. --sbatch-arg=--exclusive (repeatable)")
    g.add_argument("--dry-run", action="store_true", help="print the rendered scripts; submit nothing")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from mazeagent.ppo.config import PRESETS

    p.add_argument("--preset", required=True, help=f"trainer preset: {', '.join(sorted(PRESETS))}")
    p.add_argument("--out", required=True, help="output directory (runs, slurm/ scripts and logs)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config override for every run (repeatable), as for `mazeagent train`")
    p.add_argument("--name", default=None, help="Slurm job name and wandb group (default: from --out)")
    p.add_argument("--signal-lead", type=int, default=300,
                   help="seconds before the time limit at which USR1 asks the run to checkpoint and requeue")
    p.add_argument("--max-restarts", type=int, default=20, help="stop requeueing after this many restarts")
    w = p.add_argument_group("wandb")
    w.add_argument("--wandb", dest="wandb_mode", default=DEFAULT_WANDB_MODE, choices=WANDB_MODES,
                   help="offline (default; upload later with `wandb sync`), online or disabled")
    w.add_argument("--wandb-project", default="mazeagent")
    w.add_argument("--wandb-entity", default=None)
    w.add_argument("--wandb-group", default=None, help="default: the job name")
    w.add_argument("--tag", dest="tags", action="append", default=[], help="extra wandb tag (repeatable)")
    _add_resources(p, time="1-00:00:00", cpus=8)


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = subparsers.add_parser("submit", help="submit training runs, sweeps and studies to Slurm").add_subparsers(
        dest="submit_command", metavar="KIND")
    sub.required = True

    p = sub.add_parser("train", help="one preemption-safe training run")
    _add_train_args(p)
    p.add_argument("--seed", type=int, default=None, help="overrides the preset's seed")
    p.set_defaults(func=_submit, kind="train")

    p = sub.add_parser("sweep", help="a training sweep as a job array (e.g. over rand_region and seeds)",
                       description="One array task per point of the --grid product. Example: "
                                   "--grid rand_region=1..15 --grid seed=0,1 (30 tasks).")
    _add_train_args(p)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2|KEY=A..B",
                   help="a config key and its values (repeatable; the sweep is the cartesian product)")
    p.add_argument("--array", default=None, help="submit only these task ids, e.g. 0-3 or 1,5 (default: all)")
    p.add_argument("--max-parallel", type=int, default=None, help="at most this many tasks at once (%%N)")
    p.set_defaults(func=_submit, kind="sweep")

    p = sub.add_parser("study", help="a study sharded over an array, plus a dependent merge job")
    p.add_argument("--checkpoint", required=True, help="trained agent (run directory, checkpoint or .pth file)")
    p.add_argument("--mazes", type=int, required=True, help="number of mazes in the study")
    p.add_argument("--out", required=True, help="output directory (results.json, shards, slurm/ scripts and logs)")
    p.add_argument("--shards", type=int, required=True, help="array tasks to split the mazes over")
    p.add_argument("--seed", type=int, default=0, help="study seed (same seed -> same results.json at any --shards)")
    p.add_argument("--name", default=None, help="Slurm job name (default: from --out)")
    p.add_argument("--max-parallel", type=int, default=None, help="at most this many shards at once (%%N)")
    p.add_argument("--study-arg", dest="study_args", action="append", default=[], metavar="ARG",
                   help="extra argument passed to `mazeagent study` (repeatable)")
    _add_resources(p, time="4:00:00", cpus=4)
    p.set_defaults(func=_submit, kind="study")

    p = subparsers.add_parser("status", help="state and log files of Slurm jobs submitted with `mazeagent submit`")
    p.add_argument("out", nargs="*", help="output directories given to `mazeagent submit` (default: show squeue)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_status)


def _resources(args: argparse.Namespace, **kw):
    from mazeagent.cluster.sbatch import Resources

    return Resources(time=args.time, cpus_per_task=args.cpus, mem=args.mem, gpus=args.gpus, gpu_type=args.gpu_type,
                     partition=args.partition, account=args.account, qos=args.qos, constraint=args.constraint,
                     extra=tuple(args.sbatch_args), **kw)


def _submit(args: argparse.Namespace) -> int:
    from mazeagent.cluster import submit as S
    from mazeagent.cluster.sbatch import WandbOptions

    if args.kind == "study":
        plan = S.plan_study(args.checkpoint, args.mazes, args.out, args.shards, seed=args.seed,
                            resources=_resources(args), study_args=tuple(args.study_args), name=args.name,
                            max_parallel=args.max_parallel)
    else:
        res = _resources(args, signal_lead_s=args.signal_lead, max_restarts=args.max_restarts)
        wandb = WandbOptions(mode=args.wandb_mode, project=args.wandb_project, entity=args.wandb_entity,
                             group=args.wandb_group, tags=tuple(args.tags))
        if args.kind == "train":
            plan = S.plan_train(args.preset, args.out, args.overrides, seed=args.seed, resources=res, wandb=wandb,
                                name=args.name)
        else:
            plan = S.plan_sweep(args.preset, args.out, args.grid, args.overrides, array=args.array,
                                max_parallel=args.max_parallel, resources=res, wandb=wandb, name=args.name)
    if args.dry_run:
        for i, job in enumerate(plan.jobs):
            dep = f"<job id of {plan.jobs[job.after].name}>" if job.after is not None else None
            print(f"# ---- {job.path}  (submit: {' '.join(S.sbatch_command(job, dep))})")
            print(job.script)
        print(f"# dry run: {len(plan.jobs)} job(s), {max(len(plan.tasks), 1)} task(s); nothing written or submitted")
        return 0
    ids = S.submit(plan)
    for job_id, job in zip(ids, plan.jobs):
        print(f"submitted {job.kind} job {job_id} ({job.name}); logs: {S.log_path(job, job_id)}; script: {job.path}")
    print(f"follow with: mazeagent status {plan.out}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from mazeagent.cluster.status import collect, format_report

    report = collect(args.out)
    print(json.dumps(report, indent=1) if args.json else format_report(report), file=sys.stdout)
    return 0
