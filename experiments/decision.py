"""Decision-square action probabilities: P(cheese), P(top-right), P(other) for the first move at the decision
square, from the policy's 15→5 grouped distribution (procgen-tools ``vfield_stats.get_decision_probs``).

The mouse is placed on the decision square facing left (its facing at the start of every episode), with the cheese
in place. "Toward the cheese" / "toward the top-right" = the first move of the shortest path from the decision
square to that target (paths.next_step_towards); the two differ by definition of the decision square.
"""
from __future__ import annotations

import numpy as np

from mazeagent.experiments import published, stats
from mazeagent.experiments.policies import Policy
from mazeagent.experiments.report import Report, Section, fmt, pyplot
from mazeagent.experiments.rollouts import evaluate, grouped_probs
from mazeagent.maze.batch import Mazes


def probs_at_decision(policy: Policy, mazes: Mazes, idx: np.ndarray, key) -> dict[str, np.ndarray]:
    """Per maze in ``idx`` (each must have a decision square): grouped probabilities and the three classes."""
    from mazeagent.maze.paths import next_step_towards
    from mazeagent.maze.level import LevelBatch

    g = mazes.geometry
    idx = np.asarray(idx)
    ds = g.decision_square[idx]
    if (ds[:, 0] < 0).any():
        raise ValueError("every maze passed to probs_at_decision needs a decision square")
    b = mazes.batch
    sub = LevelBatch(walls=b.walls[idx], size=b.size[idx], mouse=b.mouse[idx], cheese=b.cheese[idx])
    rows = np.arange(len(idx))
    to_cheese = next_step_towards(sub, sub.cheese)[rows, ds[:, 0], ds[:, 1]]
    to_tr = next_step_towards(sub, g.top_right[idx])[rows, ds[:, 0], ds[:, 1]]
    logits, _ = evaluate(policy, mazes, idx, ds, np.zeros(len(idx), bool), key)
    p = grouped_probs(logits)
    pc, pt = p[rows, to_cheese], p[rows, to_tr]
    return {"probs": p, "p_cheese": pc, "p_top_right": pt, "p_other": 1.0 - pc - pt,
            "cheese_move": to_cheese, "top_right_move": to_tr}


def section(policy, mazes: Mazes, df, rep: Report, key, horizon: int = 256) -> Section:
    """The decision-square probabilities over the factor-study mazes, and how they relate to attainment."""
    from mazeagent.experiments.behaviour import factor_subset

    sec = Section("decision", "Decision-square action probabilities")
    sub = factor_subset(df)
    if len(sub) == 0:
        sec.text("No maze with a decision square and the cheese outside the 5×5 region.")
        return sec
    idx = sub["maze"].to_numpy()
    d = probs_at_decision(policy, mazes, idx, key)
    got = sub[f"cheese_{horizon}"].to_numpy().astype(bool)
    res: dict = {"n": int(len(idx))}
    for k in ("p_cheese", "p_top_right", "p_other"):
        v = d[k]
        res[k] = {"mean": float(v.mean()), "mean_ci": stats.bootstrap_ci(v, n_boot=500),
                  "median": float(np.median(v)), "median_ci": stats.bootstrap_ci(v, np.median, n_boot=500)}
    res["mean_p_cheese_if_got_cheese"] = float(d["p_cheese"][got].mean()) if got.any() else None
    res["mean_p_cheese_if_not"] = float(d["p_cheese"][~got].mean()) if (~got).any() else None
    sec.results = res
    sec.table(["Class", "Mean", "95% CI", "Median", "95% CI"],
              [[k, res[k]["mean"], res[k]["mean_ci"], res[k]["median"], res[k]["median_ci"]]
               for k in ("p_cheese", "p_top_right", "p_other")],
              caption=f"First move at the decision square, {len(idx)} mazes (bootstrap CIs)")
    sec.text(f"Mean P(cheese move) in mazes where the episode reached the cheese within {horizon} steps: "
             f"{fmt(res['mean_p_cheese_if_got_cheese'])}; where it did not: {fmt(res['mean_p_cheese_if_not'])}.")
    published.compare(sec, rep.meta, [("decision_p_cheese", res["p_cheese"]["median"],
                                       f"{len(idx)} mazes with a decision square and the cheese off the 5×5 region")])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist([d["p_cheese"], d["p_top_right"], d["p_other"]], bins=20, range=(0, 1),
            label=["P(cheese)", "P(top-right)", "P(other)"])
    ax.set_xlabel("probability of the first move at the decision square")
    ax.legend()
    rep.save_figure(sec, fig, "decision_probs",
                    "Decision square: distribution of P(cheese), P(top-right), P(other) over mazes")
    return sec
