"""Learning curves from runs' ``metrics.jsonl``, chained stage after stage.

A CPU agent is often trained in stages (behaviour cloning, then DAgger, then a wider net or PPO), each its own run
directory started ``--init-from`` the last. The model card wants one curve over all of them, so the stages are laid
end to end on one frame axis: labelled frames for ``bc`` runs (``samples``), environment steps for ``train`` runs
(``step``).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EVAL_KEY = "eval/train/cheese_rate"
TRAIN_KEYS = ("bc/accuracy", "rollout/cheese_rate")  # what a stage reports every step, in order of preference


@dataclass(frozen=True)
class Stage:
    """One run's curve: frames from the start of this stage, its per-step training metric and its evaluations."""

    label: str
    frames: np.ndarray
    train_key: str
    train: np.ndarray
    eval_frames: np.ndarray
    eval_cheese: np.ndarray


def load_stage(label: str, run: str | Path) -> Stage:
    """Read a run directory (or its ``metrics.jsonl``); a clear error when it holds no usable rows."""
    path = Path(run)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no metrics.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    key = next((k for k in TRAIN_KEYS if any(k in r for r in rows)), None)
    if key is None:
        raise ValueError(f"{path}: no training metric ({' or '.join(TRAIN_KEYS)}) in {len(rows)} rows")
    x = "samples" if any("samples" in r for r in rows) else "step"
    tr = [r for r in rows if key in r and x in r]
    ev = [r for r in rows if EVAL_KEY in r and x in r]
    return Stage(label, np.array([r[x] for r in tr], float), key, np.array([r[key] for r in tr], float),
                 np.array([r[x] for r in ev], float), np.array([r[EVAL_KEY] for r in ev], float))


def chain(stages: Sequence[Stage]) -> list[tuple[Stage, float]]:
    """Each stage with the frame offset at which it starts (where the previous one ended)."""
    out, offset = [], 0.0
    for s in stages:
        out.append((s, offset))
        offset += float(s.frames[-1]) if len(s.frames) else 0.0
    return out


def plot_learning_curve(stages: Sequence[Stage], target: float | None = 0.9, smooth: int = 50):
    """Two panels: the per-step training metric (moving mean over ``smooth`` steps) and the evaluated cheese rate,
    over frames in millions. Returns the matplotlib Figure (the caller saves or shows it)."""
    import matplotlib.pyplot as plt

    if not stages:
        raise ValueError("no stages to plot")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for s, off in chain(stages):
        k = max(1, min(smooth, len(s.train)))
        sm = np.convolve(s.train, np.ones(k) / k, mode="valid")
        a1.plot((s.frames[k - 1:] + off) / 1e6, sm, label=f"{s.label} ({s.train_key})")
        if len(s.eval_frames):
            a2.plot((s.eval_frames + off) / 1e6, s.eval_cheese, "o-", label=s.label)
    a1.set_xlabel("frames (millions; labelled for BC, env steps for PPO)")
    a1.set_ylabel(f"training metric ({smooth}-step mean)")
    a2.set_xlabel("frames (millions)")
    a2.set_ylabel("cheese within the episode limit (training dist.)")
    a2.set_ylim(0, 1)
    if target is not None:
        a2.axhline(target, color="gray", ls="--", lw=1)
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig
