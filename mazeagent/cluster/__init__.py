"""Slurm glue: render the sbatch templates in ``slurm/``, submit them, report on them.

``mazeagent submit train|sweep|study`` builds a :class:`~mazeagent.cluster.submit.Plan` (validated before anything
is queued), writes the scripts under ``<out>/slurm/`` and runs ``sbatch``; ``mazeagent status <out>`` reads the
recorded submission back. Preemption safety lives in ``slurm/lib/job.sh`` (USR1 -> checkpoint -> requeue) and in the
trainer's ``--resume``.
"""
# (``submit()`` itself stays in :mod:`mazeagent.cluster.submit`: re-exporting it would shadow that module's name.)
from mazeagent.cluster.sbatch import Resources, WandbOptions
from mazeagent.cluster.submit import Plan, plan_study, plan_sweep, plan_train

__all__ = ["Plan", "Resources", "WandbOptions", "plan_train", "plan_sweep", "plan_study"]
