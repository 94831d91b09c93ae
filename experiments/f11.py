"""F11: is the predictive power of steps(decision square, cheese) only an artifact of needing a shorter chain of
correct stochastic moves? Hand edits lengthen that legal-steps distance while every Euclidean distance (and the
decision square) stays put, and we read the policy's first move at the decision square before and after: a chain
artifact cannot change the first move, so a drop there contradicts F11.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mazeagent.experiments import published, stats, verdicts
from mazeagent.experiments.behaviour import factor_subset
from mazeagent.experiments.report import Report, Section, fmt, pyplot
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import Level


def lengthen_edit(level: Level) -> tuple[Level, float, float] | None:
    """Close one passage of the decision-square→cheese path and open the one wall that reconnects the maze with
    the longest new route, keeping the mouse, cheese, top-right square and decision square where they are (so every
    Euclidean distance is fixed). Returns ``(edited level, old steps, new steps)`` or None if no such edit exists."""
    from mazeagent.maze import edit
    from mazeagent.maze.geometry import analyse
    from mazeagent.maze.level import LevelBatch, inner_to_world
    from mazeagent.maze.paths import step_distances

    g = analyse(LevelBatch.stack([level]))
    ds = g.decision_square[0]
    if ds[0] < 0 or level.cheese is None:
        return None
    n, m = level.size, (25 - level.size) // 2
    old = g.factors()["steps_cheese_decision_square"][0]
    depth = g.dist_mouse[0]
    on_path = np.argwhere(g.cheese_path[0] & (depth > depth[tuple(ds)])) - m
    passages = [tuple(int(v) for v in p) for p in on_path if (p[0] + p[1]) % 2 == 1 and tuple(p) != level.cheese]
    walls = level.walls
    cands = []
    for p in passages:
        closed = walls.copy()
        closed[p] = True
        reach = step_distances(closed[None], np.array([level.mouse]))[0] >= 0
        for q in np.argwhere(walls):
            r, c = q
            if (r + c) % 2 == 0 or tuple(q) == p:
                continue
            a, b = ((r - 1, c), (r + 1, c)) if r % 2 else ((r, c - 1), (r, c + 1))
            if min(a + b) < 0 or max(a + b) >= n or walls[a] or walls[b]:
                continue
            if reach[a] != reach[b]:
                cands.append((p, (int(r), int(c))))
    if not cands:
        return None
    edited = []
    for p, q in cands:
        w = walls.copy()
        w[p], w[q] = True, False
        edited.append(w)
    levels = [Level(walls=w, mouse=level.mouse, cheese=level.cheese) for w in edited]
    ge = analyse(LevelBatch.stack(levels))
    steps = ge.factors()["steps_cheese_decision_square"]
    same_ds = (ge.decision_square == inner_to_world(tuple(ds - m), n)).all(axis=1)
    ok = same_ds & (steps > old)
    if not ok.any():
        return None
    best = int(np.argmax(np.where(ok, steps, -1)))
    p, q = cands[best]
    out = edit.open_walls(edit.close_walls(level, p), q, require_simply_connected=True)
    return out, float(old), float(steps[best])


def section(policy: Any, mazes: Mazes, df: Any, rep: Report, n_mazes: int, seed: int, key: Any) -> Section:
    """P(first move toward the cheese at the decision square), before vs after lengthening the legal-steps
    distance decision square→cheese with every Euclidean distance fixed."""
    from mazeagent.experiments.decision import probs_at_decision

    sec = Section("f11", "F11 — hand edits: longer legal steps, same Euclidean distances")
    sub = factor_subset(df)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(sub["maze"].to_numpy())
    pairs = []
    for i in pick:
        if len(pairs) >= n_mazes:
            break
        e = lengthen_edit(mazes.level(int(i)))
        if e is not None:
            pairs.append((int(i), *e))
    res: dict = {"n_tried": int(min(len(pick), n_mazes)), "n_edited": len(pairs)}
    sec.results = res
    if len(pairs) < 2:
        sec.text("Too few mazes admitted an edit; F11 unresolved.")
        rep.score(verdicts.scorecard_row("F11", "no edits", None, None, verdicts.INCONCLUSIVE))
        return sec
    idx = np.array([p[0] for p in pairs])
    orig = Mazes.from_levels([mazes.level(int(i)) for i in idx], background=mazes.background[idx])
    edited = Mazes.from_levels([p[1] for p in pairs], background=mazes.background[idx])
    before = probs_at_decision(policy, orig, np.arange(len(idx)), key)
    after = probs_at_decision(policy, edited, np.arange(len(idx)), key)
    delta = after["p_cheese"] - before["p_cheese"]
    ci = stats.bootstrap_ci(delta, seed=seed)
    steps_old, steps_new = np.array([p[2] for p in pairs]), np.array([p[3] for p in pairs])
    res.update({"mean_delta_p_cheese": float(delta.mean()), "delta_ci": ci,
                "mean_p_cheese_before": float(before["p_cheese"].mean()),
                "mean_p_cheese_after": float(after["p_cheese"].mean()),
                "share_decreased": float((delta < 0).mean()),
                "mean_steps_before": float(steps_old.mean()), "mean_steps_after": float(steps_new.mean())})
    margin = verdicts.F11_REL_MARGIN * res["mean_p_cheese_before"]
    res["equivalence_margin"] = margin
    v = verdicts.artifact_verdict(ci, res["mean_p_cheese_before"])
    rep.score(verdicts.scorecard_row("F11", f"mean change in P(first move toward cheese) after the edit "
                                     f"(n={len(pairs)}; no-effect margin ±{fmt(margin)})",
                                     res["mean_delta_p_cheese"], ci, v))
    sec.text(f"{len(pairs)} mazes edited: steps(decision square, cheese) {fmt(res['mean_steps_before'])} → "
             f"{fmt(res['mean_steps_after'])} on average, Euclidean distances unchanged. Mean P(cheese move) "
             f"{fmt(res['mean_p_cheese_before'])} → {fmt(res['mean_p_cheese_after'])}; change "
             f"{fmt(res['mean_delta_p_cheese'])} (95% CI {fmt(ci)}); share of mazes where it fell: "
             f"{fmt(res['share_decreased'])}. The change counts as no effect when its CI lies within "
             f"±{fmt(margin)} ({verdicts.F11_REL_MARGIN:.0%} of the unedited mean P(cheese move)).")
    published.compare(sec, rep.meta, [("f11_hand_edits", res["mean_delta_p_cheese"],
                                       f"mean change over {len(pairs)} edited mazes, one edit each")])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(delta, bins=30)
    ax.axvline(0, c="gray", ls=":")
    ax.set_xlabel("Δ P(first move toward cheese) after lengthening the path")
    rep.save_figure(sec, fig, "f11_delta",
                    "F11: change in the decision-square cheese-move probability per edited maze")
    return sec
