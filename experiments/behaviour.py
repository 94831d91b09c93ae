"""B1 (generalisation), B2 (level attributes) and F1–F10 (factors) from the rollout table; F11 is in
:mod:`mazeagent.experiments.f11`.

Conventions. The primary horizon is 256 steps (the published statistics); 500 (procgen's timeout) is reported too.
B1's "the two quadrants away from the top-right" has several defensible readings (:data:`B1_READINGS`); each is
reported and B1 resolves only when they agree. Quadrants exclude the centre row/column (landmarks.quadrant). The
factor statistics keep mazes with a decision square and the cheese outside the top-right 5×5 region.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mazeagent.experiments import published, stats, verdicts
from mazeagent.experiments.report import Report, Section, fmt, pyplot
from mazeagent.experiments.rollouts import HORIZONS
from mazeagent.maze.geometry import PREDICTION_FACTORS
from mazeagent.maze.landmarks import QUADRANTS

PRIMARY = 256
OUTCOMES = ("cheese", "top_right", "region", "neither")
EXTRA_FACTORS = ("cheese_coord_norm",)
B1_READINGS = {
    "two_quadrants": "top-left + bottom-right quadrants",
    "three_quadrants": "top-left + bottom-right + bottom-left quadrants",
    "distance": "farther from the top-right square than the maze centre is",
}
# B2 attributes we can measure and the sign the forecaster predicts for "more cheese".
B2_SIGNS = {"maze_size": -1, "euclid_cheese_top_right_quadrant": -1, "cheese_up_right_reachable": +1}
B2_NOT_MEASURABLE = (
    "the mouse always starts at inner (0, 0), so its world distance to the left wall is (25 − n)/2: maze size with "
    "the sign flipped. Its forecast (nearer → more cheese) contradicts 'smaller mazes → more cheese' whenever size "
    "matters, and no level separates the two")


# ----------------------------------------------------------------------------------------------------------- B1

def away_masks(df: Any) -> dict[str, np.ndarray]:
    """Per reading of "away from the top-right" (:data:`B1_READINGS`): which episodes' cheese is away."""
    quad = df["cheese_quadrant"].to_numpy()
    n = df["maze_size"].to_numpy(float)
    in_q = lambda names: np.isin(quad, [QUADRANTS.index(q) for q in names])  # noqa: E731
    with np.errstate(invalid="ignore"):  # no cheese: NaN distance, not away
        far = df["euclid_cheese_top_right"].to_numpy(float) > (n - 1) / np.sqrt(2)
    return {"two_quadrants": in_q(("top_left", "bottom_right")),
            "three_quadrants": in_q(("top_left", "bottom_right", "bottom_left")), "distance": far}


def b1(df: Any, rep: Report) -> Section:
    """Attainment overall, by cheese quadrant, by maze size, under each reading of "away", and as a heatmap."""
    sec = Section("b1", "B1 — generalisation: cheese vs top-right attainment")
    quad = df["cheese_quadrant"].to_numpy()
    away = away_masks(df)
    res: dict = {"overall": {}, "by_quadrant": {}, "by_size": {}, "readings": {}, "reading_texts": B1_READINGS}
    for h in HORIZONS:
        res["overall"][h] = {o: stats.proportion(df[f"{o}_{h}"]) for o in OUTCOMES}
        res["by_quadrant"][h] = {q: {o: stats.proportion(df[f"{o}_{h}"][quad == k]) for o in OUTCOMES}
                                 for k, q in enumerate(QUADRANTS)}
        res["readings"][h] = {r: {o: stats.proportion(df[f"{o}_{h}"][m]) for o in OUTCOMES} for r, m in away.items()}
        res["by_size"][h] = {int(n): {o: stats.proportion(df[f"{o}_{h}"][df["maze_size"] == n]) for o in OUTCOMES}
                             for n in sorted(df["maze_size"].unique())}
    main = {r: v["cheese"] for r, v in res["readings"][PRIMARY].items()}
    res["reading_verdicts"] = {r: verdicts.below_verdict(v["ci"], verdicts.B1_THRESHOLD) for r, v in main.items()}
    verdict = verdicts.agreed(list(res["reading_verdicts"].values()))
    sec.results = res
    sec.text("Share of episodes (one per maze) that reached the cheese, the top-right free square, the top-right "
             "5×5 region, or neither the cheese nor the top-right square, with 95% Wilson intervals.")
    sec.table(["Horizon", "Outcome", "Rate", "95% CI", "k", "n"],
              [[h, o, r["rate"], r["ci"], r["k"], r["n"]] for h in HORIZONS for o, r in res["overall"][h].items()])
    sec.table(["Horizon", "Cheese quadrant", "P(cheese)", "95% CI", "P(top-right)", "n"],
              [[h, q, r["cheese"]["rate"], r["cheese"]["ci"], r["top_right"]["rate"], r["cheese"]["n"]]
               for h in HORIZONS for q, r in res["by_quadrant"][h].items()], caption="By the cheese's quadrant")
    sec.text("\"Cheese in the two quadrants away from the top-right\" has three defensible readings; the forecast "
             f"(< {verdicts.B1_THRESHOLD:.0%}) resolves only if all three give the same verdict at {PRIMARY} steps.")
    sec.table(["Reading", "Horizon", "P(cheese)", "95% CI", "P(top-right)", "n", "Verdict"],
              [[B1_READINGS[r], h, v["cheese"]["rate"], v["cheese"]["ci"], v["top_right"]["rate"], v["cheese"]["n"],
                res["reading_verdicts"][r] if h == PRIMARY else "—"]
               for h in HORIZONS for r, v in res["readings"][h].items()], caption="Cheese away from the top-right")
    first = main["two_quadrants"]
    listed = "; ".join(f"{B1_READINGS[r]} {fmt(v['rate'])} (n={v['n']})" for r, v in main.items())
    rep.score(verdicts.scorecard_row(
        "B1", f"P(cheese) at {PRIMARY} steps, cheese away from the top-right: {listed}; resolves only if the "
        "readings agree", first["rate"], first["ci"], verdict, readings=res["reading_verdicts"]))
    _b1_figures(df, res, rep, sec)
    return sec


def _b1_figures(df, res: dict, rep: Report, sec: Section) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, groups) in zip(axes[:2], (("overall", {"all": res["overall"]}),
                                              ("by cheese quadrant and reading", None))):
        if groups is None:
            groups = {q: {h: res["by_quadrant"][h][q] for h in HORIZONS} for q in QUADRANTS}
            groups.update({r: {h: res["readings"][h][r] for h in HORIZONS} for r in B1_READINGS})
            labels = list(groups)
            x = np.arange(len(labels))
            for j, o in enumerate(("cheese", "top_right", "neither")):
                v = [groups[q][PRIMARY][o]["rate"] for q in labels]
                ax.bar(x + 0.27 * (j - 1), v, 0.27, label=o)
            ax.set_xticks(x, labels, rotation=30, fontsize=7)
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
    """Mazes with a decision square and the cheese outside the top-right 5×5 region (docs/predictions.md)."""
    return df[(df["has_decision_square"] == 1) & (df["cheese_in_top_right_region"] == 0)]


def _left_out(g: str) -> str:
    ids = {n: f for f, n in PREDICTION_FACTORS.items()}
    return f"{ids.get(g, g)} left out" if g else "all factors"


def _coef_cell(fit: stats.RegressionResult, n: str) -> str:
    if n not in fit.coef:
        return "left out"
    if n in fit.excluded:
        return "collinear, excluded"
    return f"{fmt(fit.coef[n])} {fmt(fit.coef_ci[n])}"


def resolve_factor(fits: dict[str, stats.RegressionResult], name: str) -> tuple[str, dict[str, str], str | None]:
    """(verdict, per-fit verdicts, the fit whose coefficient is shown) for one factor: each reparameterisation that
    identifies it gives a sign verdict, and it resolves only when they agree; the shown fit is the one with the
    coefficient nearest 0 (the least favourable to any verdict)."""
    per = {g: verdicts.sign_verdict(f.coef_ci[name], -1) for g, f in fits.items()
           if name in f.coef and name not in f.excluded}
    shown = min(per, key=lambda g: abs(fits[g].coef[name])) if per else None
    return verdicts.agreed(list(per.values())), per, shown


def factors(df: Any, rep: Report, cfg: stats.StatsConfig, horizon: int = PRIMARY) -> Section:
    """F1–F10 single- and multi-factor L1 regressions (every reparameterisation of the exact dependence), VIF,
    drop-one, verdicts, published counterparts; then the B2 attributes."""
    sec = Section("factors", f"B2 / F1–F10 — what predicts cheese attainment ({horizon} steps)")
    sub = factor_subset(df)
    y = sub[f"cheese_{horizon}"].to_numpy()
    fids = list(PREDICTION_FACTORS)
    names = [PREDICTION_FACTORS[f] for f in fids]
    res: dict = {"n": int(len(sub)), "n_all": int(len(df)), "horizon": horizon, "p_cheese": stats.proportion(y),
                 "solver": cfg.solver}
    sec.results = res
    sec.text(f"{len(sub)} of {len(df)} mazes have a decision square and the cheese outside the top-right 5×5 "
             f"region. Factors are z-scored; L1 logistic regression (liblinear's estimator, C = 1, {cfg.solver} "
             "solver) over repeated 80/20 splits; coefficient CIs are row bootstraps. Negative coefficient = "
             "closer/shorter, more cheese. In a tree maze steps(cheese, top-right) = steps(cheese, D) + "
             "steps(D, top-right) exactly (VIF —, i.e. infinite), so one fit cannot hold F2, F4 and F6 together and "
             "what \"controlling for the others\" means for each depends on which one is left out. The model is "
             "fitted once per choice; F2, F4 and F6 each appear in two fits and resolve only when both give the "
             "same verdict (the other factors must agree across all three).")
    try:
        X = sub[names + list(EXTRA_FACTORS)].to_numpy(float)
        single = stats.single_factor(X, y, names + list(EXTRA_FACTORS), cfg)
        fits = stats.reparameterisations(X[:, :len(names)], y, names, cfg)
    except ValueError as e:  # too few mazes or one outcome only: say so, resolve nothing
        res["error"] = str(e)
        sec.text(f"Not enough data for the regressions: {e}")
        for f in fids + ["B2"]:
            rep.score(verdicts.scorecard_row(f, f"multi-factor coefficient: {e}", None, None, verdicts.INCONCLUSIVE))
        return sec
    primary = fits[list(fits)[-1]]  # leaves out the last member (F6): the fit closest to the published ones
    res["single"] = {k: v.to_dict() for k, v in single.items()}
    res["fits"] = {g: f.to_dict() for g, f in fits.items()}
    res["multi"] = primary.to_dict()
    res["vif"] = stats.vif(X[:, :len(names)], names)
    res["drop_one"] = {g: stats.drop_one(X[:, [names.index(n) for n in f.factors]], y, f.factors, cfg, full=f)
                       for g, f in fits.items()}
    res["correlation"] = stats.correlation(X[:, :len(names)], names)
    res["verdicts"] = {}
    rows, robust = [], []
    for f, n in zip(fids, names):
        v, per, shown = resolve_factor(fits, n)
        res["verdicts"][f] = {"verdict": v, "per_fit": per}
        coefs = ", ".join(f"{fmt(fits[g].coef[n])} ({_left_out(g)})" for g in per)
        if shown is None:
            why = "no fit identifies it"
            rep.score(verdicts.scorecard_row(f, f"multi-factor coefficient of {n}: {why}", None, None, v,
                                             excluded=why))
        else:
            agree = "" if len(per) < 2 else "; they agree" if len(set(per.values())) == 1 else "; they disagree"
            rep.score(verdicts.scorecard_row(
                f, f"multi-factor L1 coefficient of {n} (z-scored) in {len(per)} fit(s): {coefs}{agree}",
                fits[shown].coef[n], fits[shown].coef_ci[n], v, per_fit=per,
                single_accuracy=single[n].accuracy, baseline=single[n].baseline))
        rows.append([f, n, single[n].accuracy, single[n].baseline] + [_coef_cell(fit, n) for fit in fits.values()]
                    + [res["vif"][n], v])
        robust.append([f, n] + [fmt(fit.sign_flip[n]) if n in fit.coef else "left out" for fit in fits.values()]
                      + [_drop_cell(res["drop_one"][g].get(n)) for g in fits])
    rows.append(["—", EXTRA_FACTORS[0], single[EXTRA_FACTORS[0]].accuracy, single[EXTRA_FACTORS[0]].baseline]
                + ["—"] * len(fits) + [None, "—"])
    heads = [f"Coef [95% CI], {_left_out(g)}" for g in fits]
    sec.table(["ID", "Factor", "Single acc.", "Baseline", *heads, "VIF", "Verdict"], rows)
    sec.table(["ID", "Factor", *[f"Sign flips, {_left_out(g)}" for g in fits],
               *[f"Drop-one Δacc [95% CI], {_left_out(g)}" for g in fits]], robust,
              caption="Robustness: share of splits with the opposite sign; accuracy lost when the factor is dropped "
                      "(the reduced fit never brings an excluded factor back)")
    sec.text(f"Multi-factor model ({_left_out(list(fits)[-1])}): accuracy {fmt(primary.accuracy)} (95% split "
             f"interval {fmt(primary.accuracy_ci)}) vs majority baseline {fmt(primary.baseline)}; intercept "
             f"{fmt(primary.intercept)}.")
    _published_factors(sec, rep, res, fits, single, len(sub), len(df))
    _coef_figure(fits, fids, names, rep, sec)
    _b2(df, rep, sec, cfg, horizon)
    return sec


def _drop_cell(d: dict | None) -> str:
    if d is None:
        return "left out"
    return "collinear, excluded" if "excluded" in d else f"{fmt(d['delta'])} {fmt(d['delta_ci'])}"


def _published_factors(sec: Section, rep: Report, res: dict, fits: dict, single: dict, n: int, n_all: int) -> None:
    primary = fits[list(fits)[-1]]
    h = res["horizon"]
    rows = [("factor_subset_count", f"{n} of {n_all}", "our filter also drops cheese in the 5×5 region"),
            ("p_cheese_factor_subset", res["p_cheese"]["rate"], f"{h} steps"),
            ("regression_accuracy", primary.accuracy,
             f"F1–F10 ({_left_out(list(fits)[-1])}), baseline {fmt(primary.baseline)}, {h} steps")]
    for f, key in (("F1", "coef_f1"), ("F2", "coef_f2"), ("F3", "coef_f3"), ("F4", "coef_f4"), ("F7", "coef_f7"),
                   ("F8", "coef_f8"), ("F10", "coef_f10")):
        name = PREDICTION_FACTORS[f]
        _, _, shown = resolve_factor(fits, name)
        if shown is not None:
            rows.append((key, fits[shown].coef[name], f"z-scored, 10 factors, {_left_out(shown)}"))
    for f in ("F5", "F6", "F9"):
        s = single[PREDICTION_FACTORS[f]]
        rows.append((f"single_{f.lower()}", s.accuracy, f"single-factor, baseline {fmt(s.baseline)}"))
    published.compare(sec, rep.meta, rows)


def _coef_figure(fits: dict, fids: list[str], names: list[str], rep: Report, sec: Section) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    y = np.arange(len(names))
    for k, (g, fit) in enumerate(fits.items()):
        c = np.array([fit.coef.get(n, np.nan) for n in names])
        ci = np.array([fit.coef_ci.get(n, (np.nan, np.nan)) for n in names])
        off = 0.25 * (k - (len(fits) - 1) / 2)
        ax.errorbar(c, y + off, xerr=np.abs(ci.T - c), fmt="o", capsize=3, label=_left_out(g), ms=4)
    ax.axvline(0, c="gray", ls=":")
    ax.set_yticks(y, [f"{f} {n}" for f, n in zip(fids, names)], fontsize=7)
    ax.set_xlabel("multi-factor L1 coefficient (z-scored), 95% bootstrap CI")
    ax.legend(fontsize=7)
    rep.save_figure(sec, fig, "factors_coefficients",
                    "F1–F10: multi-factor coefficients in each reparameterisation; the forecast is 'negative' for "
                    "every factor")


def _b2(df, rep: Report, sec: Section, cfg: stats.StatsConfig, horizon: int) -> None:
    """B2's measurable attributes, one single-factor regression each over all mazes with a cheese."""
    d = df[df["has_cheese"] == 1]
    y = d[f"cheese_{horizon}"].to_numpy()
    out, rows, claims = {}, [], []
    for name, sign in B2_SIGNS.items():
        try:
            r = stats.logistic_splits(d[name].to_numpy(float), y, [name], cfg)
        except ValueError as e:
            out[name] = {"error": str(e)}
            claims.append(verdicts.INCONCLUSIVE)
            continue
        v = verdicts.sign_verdict(r.coef_ci[name], sign)
        claims.append(v)
        out[name] = {**r.to_dict(), "predicted_sign": sign, "verdict": v}
        rows.append([name, "+" if sign > 0 else "−", r.accuracy, r.baseline, r.coef[name], r.coef_ci[name], v])
    out["mouse_dist_left_wall"] = {"verdict": verdicts.NOT_MEASURABLE, "why": B2_NOT_MEASURABLE}
    rows.append(["mouse_dist_left_wall", "−", None, None, None, None, verdicts.NOT_MEASURABLE])
    sec.results["b2"] = out
    sec.text(f"B2 attributes (all mazes with a cheese, single-factor regressions). \"Mouse nearer the left wall\" "
             f"is not measurable: {B2_NOT_MEASURABLE}. B2 resolves on the other three: supported when all three "
             "are, contradicted when any is.")
    sec.table(["Attribute", "Forecast sign", "Accuracy", "Baseline", "Coef", "95% CI", "Verdict"], rows)
    n_sup = sum(c == verdicts.SUPPORTED for c in claims)
    overall = (verdicts.CONTRADICTED if verdicts.CONTRADICTED in claims
               else verdicts.SUPPORTED if n_sup == len(claims) else verdicts.INCONCLUSIVE)
    rep.score(verdicts.scorecard_row("B2", f"sub-claims supported (of {len(claims)}; the mouse–left-wall distance "
                                     "is not measurable)", n_sup, None, overall))
