"""B1 (generalisation), B2 (level attributes) and F1–F11 (factors) from the rollout table.

Conventions. The primary horizon is 256 steps (the published statistics); 500 (procgen's timeout) is reported too.
B1's "two quadrants away from the top-right" are read as top-left and bottom-right: the bottom-left holds the
start, so cheese there is trivially near, and the forecaster's claim is about cheese off the start→corner
diagonal. Quadrants exclude the centre row/column (geometry.quadrant). The factor statistics keep mazes with a
decision square and the cheese outside the top-right 5×5 region (predictions.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from experiments import stats, verdicts
from experiments.report import Report, Section, fmt
from experiments.rollouts import HORIZONS, Mazes
from mazeagent.maze.geometry import PREDICTION_FACTORS, QUADRANTS
from mazeagent.maze.level import Level

PRIMARY = 256
AWAY = ("top_left", "bottom_right")
OUTCOMES = ("cheese", "top_right", "region", "neither")
EXTRA_FACTORS = ("cheese_coord_norm",)
# B2 attributes and the sign the forecaster predicts for "more cheese"; the mouse's distance to the left wall is
# measured in the world (= the 25x25 frame the agent sees): inner col 0 sits (25 - n) / 2 squares from it.
B2_SIGNS = {"maze_size": -1, "mouse_world_dist_left_wall": -1, "euclid_cheese_top_right_quadrant": -1,
            "cheese_up_right_reachable": +1}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------------------------------------- B1

def b1(df: Any, rep: Report) -> Section:
    """Attainment overall, by cheese quadrant, by maze size, and as a heatmap over cheese squares."""
    sec = Section("b1", "B1 — generalisation: cheese vs top-right attainment")
    quad = df["cheese_quadrant"].to_numpy()
    res: dict = {"overall": {}, "by_quadrant": {}, "by_size": {}, "away_quadrants": list(AWAY)}
    for h in HORIZONS:
        res["overall"][h] = {o: stats.proportion(df[f"{o}_{h}"]) for o in OUTCOMES}
        res["by_quadrant"][h] = {q: {o: stats.proportion(df[f"{o}_{h}"][quad == k]) for o in OUTCOMES}
                                 for k, q in enumerate(QUADRANTS)}
        away = np.isin(quad, [QUADRANTS.index(q) for q in AWAY])
        res["by_quadrant"][h]["away_pooled"] = {o: stats.proportion(df[f"{o}_{h}"][away]) for o in OUTCOMES}
        res["by_size"][h] = {int(n): {o: stats.proportion(df[f"{o}_{h}"][df["maze_size"] == n]) for o in OUTCOMES}
                             for n in sorted(df["maze_size"].unique())}
    sec.results = res
    sec.text("Share of episodes (one per maze) that reached the cheese, the top-right free square, the top-right "
             "5×5 region, or neither the cheese nor the top-right square, with 95% Wilson intervals.")
    sec.table(["Horizon", "Outcome", "Rate", "95% CI", "k", "n"],
              [[h, o, r["rate"], r["ci"], r["k"], r["n"]] for h in HORIZONS for o, r in res["overall"][h].items()])
    sec.table(["Horizon", "Cheese quadrant", "P(cheese)", "95% CI", "P(top-right)", "n"],
              [[h, q, r["cheese"]["rate"], r["cheese"]["ci"], r["top_right"]["rate"], r["cheese"]["n"]]
               for h in HORIZONS for q, r in res["by_quadrant"][h].items()], caption="By the cheese's quadrant")
    pooled = res["by_quadrant"][PRIMARY]["away_pooled"]["cheese"]
    rep.score(verdicts.scorecard_row(
        "B1", f"P(cheese) at {PRIMARY} steps, cheese in {' or '.join(AWAY)} quadrant (n={pooled['n']})",
        pooled["rate"], pooled["ci"], verdicts.below_verdict(pooled["ci"], verdicts.B1_THRESHOLD)))
    _b1_figures(df, res, rep, sec)
    return sec


def _b1_figures(df, res: dict, rep: Report, sec: Section) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, groups) in zip(axes[:2], (("overall", {"all": res["overall"]}),
                                              ("by cheese quadrant", None))):
        if groups is None:
            groups = {q: {h: res["by_quadrant"][h][q] for h in HORIZONS} for q in (*QUADRANTS, "away_pooled")}
            labels = list(groups)
            x = np.arange(len(labels))
            for j, o in enumerate(("cheese", "top_right", "neither")):
                v = [groups[q][PRIMARY][o]["rate"] for q in labels]
                ax.bar(x + 0.27 * (j - 1), v, 0.27, label=o)
            ax.set_xticks(x, labels, rotation=20)
        else:
            x = np.arange(len(OUTCOMES))
            for j, h in enumerate(HORIZONS):
                r = [res["overall"][h][o] for o in OUTCOMES]
                ax.bar(x + 0.4 * (j - 0.5), [v["rate"] for v in r], 0.4, label=f"{h} steps",
                       yerr=np.abs(np.array([v["ci"] for v in r]).T - [v["rate"] for v in r]))
            ax.set_xticks(x, OUTCOMES)
        ax.axhline(verdicts.B1_THRESHOLD, ls=":", c="gray")
        ax.set_ylim(0, 1)
        ax.set_title(f"{title} ({PRIMARY} steps)" if title != "overall" else title)
        ax.legend(fontsize=8)
    ax = axes[2]
    for o in ("cheese", "top_right", "neither"):
        sizes = sorted(res["by_size"][PRIMARY])
        ax.plot(sizes, [res["by_size"][PRIMARY][n][o]["rate"] for n in sizes], marker="o", label=o)
    ax.set_xlabel("maze size n")
    ax.set_ylim(0, 1)
    ax.set_title(f"by maze size ({PRIMARY} steps)")
    ax.legend(fontsize=8)
    rep.save_figure(sec, fig, "b1_attainment",
                    "B1: attainment overall, by cheese quadrant and by maze size (dotted line: 30%)")

    heat = np.full((25, 25), np.nan)
    count = np.zeros((25, 25), int)
    m = (25 - df["maze_size"].to_numpy()) // 2
    rows = (df["cheese_row"].to_numpy() + m).astype(int)
    cols = (df["cheese_col"].to_numpy() + m).astype(int)
    got = df[f"cheese_{PRIMARY}"].to_numpy()
    np.add.at(count, (rows, cols), 1)
    hits = np.zeros((25, 25))
    np.add.at(hits, (rows, cols), got)
    heat[count > 0] = hits[count > 0] / count[count > 0]
    sec.results["heatmap_world"] = {"p_cheese": heat, "count": count}
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(heat, origin="lower", vmin=0, vmax=1, cmap="viridis")
    fig.colorbar(im, ax=ax, label=f"P(cheese within {PRIMARY} steps)")
    ax.set_xlabel("world col (x)")
    ax.set_ylabel("world row (y, up)")
    ax.set_title("cheese attainment by cheese square (world coordinates)")
    rep.save_figure(sec, fig, "b1_heatmap",
                    "B1: P(cheese) by the cheese's world square (all maze sizes pooled)", tight=False)


# --------------------------------------------------------------------------------------------------- B2 / F1-F10

def factor_subset(df: Any) -> Any:
    """Mazes with a decision square and the cheese outside the top-right 5×5 region (predictions.md)."""
    return df[(df["has_decision_square"] == 1) & (df["cheese_in_top_right_region"] == 0)]


def factors(df: Any, rep: Report, cfg: stats.StatsConfig, horizon: int = PRIMARY) -> Section:
    """F1–F10 single- and multi-factor L1 regressions, VIF, drop-one, verdicts; then the B2 attributes."""
    sec = Section("factors", f"B2 / F1–F10 — what predicts cheese attainment ({horizon} steps)")
    sub = factor_subset(df)
    y = sub[f"cheese_{horizon}"].to_numpy()
    fids = list(PREDICTION_FACTORS)
    names = [PREDICTION_FACTORS[f] for f in fids]
    res: dict = {"n": int(len(sub)), "n_all": int(len(df)), "horizon": horizon, "p_cheese": stats.proportion(y)}
    sec.results = res
    sec.text(f"{len(sub)} of {len(df)} mazes have a decision square and the cheese outside the top-right 5×5 "
             "region. Factors are z-scored; L1 logistic regression (liblinear's estimator, C = 1) over repeated "
             "80/20 splits; coefficient CIs are row bootstraps. Negative coefficient = closer/shorter, more cheese. "
             "A VIF of — is infinite: in a tree maze steps(cheese, top-right) = steps(cheese, D) + "
             "steps(D, top-right) exactly, so F2, F4 and F6 are jointly collinear. A factor that is an exact linear "
             "combination of earlier ones has no identifiable coefficient: it is left out of the multi-factor fit "
             "(\"collinear, excluded\", verdict inconclusive), and the coefficients of the factors it combines are "
             "effects with it implicitly varying.")
    try:
        X = sub[names + list(EXTRA_FACTORS)].to_numpy(float)
        single = stats.single_factor(X, y, names + list(EXTRA_FACTORS), cfg)
        multi = stats.logistic_splits(X[:, :len(names)], y, names, cfg)
    except ValueError as e:  # too few mazes or one outcome only: say so, resolve nothing
        res["error"] = str(e)
        sec.text(f"Not enough data for the regressions: {e}")
        for f in fids + ["B2"]:
            rep.score(verdicts.scorecard_row(f, f"multi-factor coefficient: {e}", None, None, verdicts.INCONCLUSIVE))
        return sec
    res["single"] = {k: v.to_dict() for k, v in single.items()}
    res["multi"] = multi.to_dict()
    res["excluded"] = {n: f"exact linear combination of {', '.join(c)}" for n, c in multi.excluded.items()}
    res["vif"] = stats.vif(X[:, :len(names)], names)
    res["drop_one"] = stats.drop_one(X[:, :len(names)], y, names, cfg, full=multi)
    res["correlation"] = stats.correlation(X[:, :len(names)], names)
    rows = []
    for f, n in zip(fids, names):
        if n in multi.excluded:  # no identifiable coefficient: say why instead of resolving the forecast
            why = f"collinear, excluded: exact linear combination of {', '.join(multi.excluded[n])} (VIF inf)"
            rep.score(verdicts.scorecard_row(f, f"multi-factor coefficient of {n}: {why}", None, None,
                                             verdicts.INCONCLUSIVE, single_accuracy=single[n].accuracy,
                                             baseline=single[n].baseline, excluded=why))
            rows.append([f, n, single[n].accuracy, single[n].baseline, None, None, None, res["vif"][n], None,
                         f"{verdicts.INCONCLUSIVE} (collinear, excluded)"])
            continue
        v = verdicts.sign_verdict(multi.coef_ci[n], -1)
        rep.score(verdicts.scorecard_row(f, f"multi-factor L1 coefficient of {n} (z-scored)", multi.coef[n],
                                         multi.coef_ci[n], v, single_accuracy=single[n].accuracy,
                                         baseline=single[n].baseline))
        rows.append([f, n, single[n].accuracy, single[n].baseline, multi.coef[n], multi.coef_ci[n],
                     multi.sign_flip[n], res["vif"][n], res["drop_one"][n]["delta"], v])
    rows.append(["—", EXTRA_FACTORS[0], single[EXTRA_FACTORS[0]].accuracy, single[EXTRA_FACTORS[0]].baseline,
                 None, None, None, None, None, "—"])
    sec.table(["ID", "Factor", "Single acc.", "Baseline", "Multi coef", "95% CI", "Sign flips", "VIF",
               "Drop-one Δacc", "Verdict"], rows)
    sec.text(f"Multi-factor model: accuracy {fmt(multi.accuracy)} (95% split interval {fmt(multi.accuracy_ci)}) "
             f"vs majority baseline {fmt(multi.baseline)}; intercept {fmt(multi.intercept)}.")
    _coef_figure(multi, fids, names, rep, sec)
    _b2(df, rep, sec, cfg, horizon)
    return sec


def _coef_figure(multi, fids, names, rep: Report, sec: Section) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    y = np.arange(len(names))
    c = np.array([multi.coef[n] for n in names])
    ci = np.array([multi.coef_ci[n] for n in names])
    ax.errorbar(c, y, xerr=np.abs(ci.T - c), fmt="o", capsize=3)
    ax.axvline(0, c="gray", ls=":")
    ax.set_yticks(y, [f"{f} {n}" for f, n in zip(fids, names)], fontsize=7)
    ax.set_xlabel("multi-factor L1 coefficient (z-scored), 95% bootstrap CI")
    rep.save_figure(sec, fig, "factors_coefficients",
                    "F1–F10: multi-factor coefficients; the forecast is 'negative' for every factor")


def _b2(df, rep: Report, sec: Section, cfg: stats.StatsConfig, horizon: int) -> None:
    """B2's attributes, one single-factor regression each over all mazes with a cheese."""
    d = df[df["has_cheese"] == 1]
    y = d[f"cheese_{horizon}"].to_numpy()
    X = {"maze_size": d["maze_size"], "mouse_world_dist_left_wall": (25 - d["maze_size"]) // 2 + d["mouse_col"],
         "euclid_cheese_top_right_quadrant": d["euclid_cheese_top_right_quadrant"],
         "cheese_up_right_reachable": d["cheese_up_right_reachable"]}
    out, rows, claims = {}, [], []
    for name, sign in B2_SIGNS.items():
        try:
            r = stats.logistic_splits(X[name].to_numpy(float), y, [name], cfg)
        except ValueError as e:
            out[name] = {"error": str(e)}
            claims.append(verdicts.INCONCLUSIVE)
            continue
        v = verdicts.sign_verdict(r.coef_ci[name], sign)
        claims.append(v)
        out[name] = {**r.to_dict(), "predicted_sign": sign, "verdict": v}
        rows.append([name, "+" if sign > 0 else "−", r.accuracy, r.baseline, r.coef[name], r.coef_ci[name], v])
    sec.results["b2"] = out
    sec.text("B2 attributes (all mazes with a cheese, single-factor regressions). The mouse's distance to the left "
             "wall is (25 − n)/2 in the world frame, so it is maze size with the sign flipped: both forecasts "
             "cannot hold at once.")
    sec.table(["Attribute", "Forecast sign", "Accuracy", "Baseline", "Coef", "95% CI", "Verdict"], rows)
    n_sup = sum(c == verdicts.SUPPORTED for c in claims)
    overall = (verdicts.CONTRADICTED if verdicts.CONTRADICTED in claims
               else verdicts.SUPPORTED if n_sup == len(claims) else verdicts.INCONCLUSIVE)
    rep.score(verdicts.scorecard_row("B2", f"sub-claims supported (of {len(claims)})", n_sup, None, overall))


# ------------------------------------------------------------------------------------------------------------ F11

def lengthen_edit(level: Level) -> tuple[Level, float, float] | None:
    """Close one passage of the decision-square→cheese path and open the one wall that reconnects the maze with
    the longest new route, keeping the mouse, cheese, top-right square and decision square where they are (so every
    Euclidean distance is fixed). Returns ``(edited level, old steps, new steps)`` or None if no such edit exists."""
    from mazeagent.maze import edit
    from mazeagent.maze.geometry import analyse, step_distances
    from mazeagent.maze.level import LevelBatch, inner_to_world

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


def f11(policy: Any, mazes: Mazes, df: Any, rep: Report, n_mazes: int, seed: int, key: Any) -> Section:
    """P(first move toward the cheese at the decision square), before vs after lengthening the legal-steps
    distance decision square→cheese with every Euclidean distance fixed."""
    from experiments.decision import probs_at_decision

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
    from experiments.rollouts import from_levels

    idx = np.array([p[0] for p in pairs])
    orig = from_levels([mazes.level(int(i)) for i in idx], background=mazes.background[idx])
    edited = from_levels([p[1] for p in pairs], background=mazes.background[idx])
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
    v = verdicts.artifact_verdict(ci)
    rep.score(verdicts.scorecard_row("F11", f"mean change in P(first move toward cheese) after the edit "
                                     f"(n={len(pairs)})", res["mean_delta_p_cheese"], ci, v))
    sec.text(f"{len(pairs)} mazes edited: steps(decision square, cheese) {fmt(res['mean_steps_before'])} → "
             f"{fmt(res['mean_steps_after'])} on average, Euclidean distances unchanged. Mean P(cheese move) "
             f"{fmt(res['mean_p_cheese_before'])} → {fmt(res['mean_p_cheese_after'])}; change "
             f"{fmt(res['mean_delta_p_cheese'])} (95% CI {fmt(ci)}); share of mazes where it fell: "
             f"{fmt(res['share_decreased'])}.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(delta, bins=30)
    ax.axvline(0, c="gray", ls=":")
    ax.set_xlabel("Δ P(first move toward cheese) after lengthening the path")
    rep.save_figure(sec, fig, "f11_delta",
                    "F11: change in the decision-square cheese-move probability per edited maze")
    return sec
