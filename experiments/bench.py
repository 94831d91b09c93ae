"""``mazeagent bench study-factors``: time the study's factor stage (F1–F10 + B2 regressions) on a table like a
real study's, without rolling out a policy.

The factors are those of real generated mazes (so F2 = F4 − F6 holds exactly, as in every tree maze, and the other
correlations are the real ones); the outcome is planted: P(cheese) falls with F3 (Euclidean cheese→top-right) and
F2 (steps cheese→decision square), as the forecast says, plus the maze-size effect of B2.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np


def synthetic_table(rows: int, seed: int = 0) -> Any:
    """An episode table with at least ``rows`` mazes in the factor subset (real geometry, planted attainment)."""
    import pandas as pd

    from mazeagent.experiments.behaviour import factor_subset
    from mazeagent.experiments.rollouts import HORIZONS
    from mazeagent.env.mazes import generate_mazes
    from mazeagent.experiments.stats import zscore

    if rows < 10:
        raise ValueError(f"rows must be >= 10, got {rows}")
    n = int(rows / 0.5) + 200  # about half of all mazes have a decision square and the cheese off the region
    while True:
        df = pd.DataFrame(generate_mazes(n, seed=seed).geometry.factors())
        if len(factor_subset(df)) >= rows:
            break
        n = int(n * 1.3)
    rng = np.random.default_rng(seed)
    z = {k: zscore(np.nan_to_num(df[k].to_numpy(float))) for k in
         ("euclid_cheese_top_right", "steps_cheese_decision_square", "maze_size")}
    logit = -0.3 - 1.0 * z["euclid_cheese_top_right"] - 0.5 * z["steps_cheese_decision_square"] - 0.4 * z["maze_size"]
    got = rng.random(len(df)) < 1 / (1 + np.exp(-logit))
    for h in HORIZONS:
        df[f"cheese_{h}"] = got
    df["maze"] = np.arange(len(df))
    sub = factor_subset(df)
    return pd.concat([sub.iloc[:rows], df.drop(sub.index)]).sort_values("maze").reset_index(drop=True)


def bench_factors(rows: int = 5000, n_splits: int = 50, n_boot: int = 100, seed: int = 0,
                  out_dir: str | None = None) -> dict:
    """Seconds for :func:`mazeagent.experiments.behaviour.factors` on :func:`synthetic_table` (figures included)."""
    import tempfile

    from mazeagent.experiments import behaviour, stats
    from mazeagent.experiments.report import Report

    df = synthetic_table(rows, seed)
    cfg = stats.StatsConfig(n_splits=n_splits, n_boot=n_boot, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        rep = Report(out_dir or tmp)
        t0 = time.perf_counter()
        sec = behaviour.factors(df, rep, cfg)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows_factor_subset": sec.results["n"], "rows_all": len(df), "n_splits": n_splits,
            "n_boot": n_boot, "seed": seed, "left_out_per_fit": list(sec.results.get("fits", {})),
            "scorecard": {r["id"]: r["verdict"] for r in rep.rows}}
