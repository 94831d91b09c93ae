"""The mechanistic predictions as experiments: each measures one prediction group, adds a report section (with
figures, 95% CIs and a verdict) and scorecard rows. :func:`run` chains them into ``results.json`` + report + wandb.

Every intervention result is shown next to its controls: a random vector of the same norm, or random channels.
Episode-level outcomes come from :func:`mazeagent.experiments.rollouts.rollout` (sampled actions, procgen's 500-step timeout).
The experiments live by group: :mod:`mazeagent.probes.exp_channels` (O2), :mod:`mazeagent.probes.exp_probe` (ME2),
:mod:`mazeagent.probes.exp_patch` (ME1, the cheese vector), :mod:`mazeagent.probes.exp_retarget` (ME6, O1, O3),
:mod:`mazeagent.probes.exp_paths` (retargeting by the procgen-tools protocol) and :mod:`mazeagent.probes.exp_me3` (ME3 / IG).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from mazeagent.experiments.report import Report
from mazeagent.experiments.sizes import size_note
from mazeagent.probes import EXPERIMENTS
from mazeagent.probes.common import ProbeStudy, ProbeStudyConfig
from mazeagent.probes.exp_channels import o2
from mazeagent.probes.exp_me3 import me3
from mazeagent.probes.exp_patch import cheese_vector, me1
from mazeagent.probes.exp_paths import paths
from mazeagent.probes.exp_probe import me2
from mazeagent.probes.exp_retarget import me6, o1, o3

RUNNERS = {"o2": o2, "me2": me2, "me1": me1, "cv": cheese_vector, "me6": me6, "paths": paths, "o1": o1, "o3": o3,
           "me3": me3}
__all__ = ["ProbeStudy", "ProbeStudyConfig", "RUNNERS", "run"]


def run(net: Any, params: Any, out_dir: str | Path, cfg: ProbeStudyConfig = ProbeStudyConfig(),
        experiments: tuple[str, ...] = EXPERIMENTS, checkpoint: str | None = None, wandb_mode: str = "offline"
        ) -> dict[str, Path]:
    """Run the chosen experiments into one report (``report.md``, ``index.html``, ``results.json``, figures)."""
    unknown = [e for e in experiments if e not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {list(RUNNERS)}")
    meta = {"checkpoint": checkpoint or "(random init)", "experiments": ",".join(experiments),
            "maze_sizes": size_note(cfg.max_maze_size, "left out (`--max-maze-size all` probes them in a report "
                                                       "of their own)"),
            **{k: (str(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}}
    if cfg.retarget_channels is not None:
        meta["retarget_channels"] = "; ".join(f"{n} at {v:g}" for n, _, v in cfg.retarget_channels)
    if cfg.cv_seeds is not None:
        meta["cv_seeds"] = f"{len(cfg.cv_seeds)} level seeds, {min(cfg.cv_seeds)}–{max(cfg.cv_seeds)}"
    rep = Report(out_dir, title="mazeagent mechanistic study (probes)", meta=meta)
    st = ProbeStudy(net, params, cfg, rep)
    for e in experiments:
        rep.add(RUNNERS[e](st))
    return rep.write(wandb_mode=wandb_mode)
