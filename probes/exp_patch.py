"""ME1 (patches that cut cheese acquisition while keeping top-right attainment) and the cheese vector's effect at
the decision square.

ME1 is an existence claim over a search of patches, so the search must not grade itself: the patch is chosen on one
half of the mazes and scored on the other, and it counts only when, on the scoring half, the cheese cut's CI clears
X and the top-right drop's CI stays within 25%. Anything less is "not demonstrated", never a contradiction.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from mazeagent.experiments.report import Section
from mazeagent.experiments.stats import bootstrap_ci, proportion
from mazeagent.probes import interventions as I
from mazeagent.probes import steering as S
from mazeagent.maze.batch import Mazes
from mazeagent.probes.common import (ProbeStudy, demonstrated, finite, got, mazes_from_seeds, paired_cut, plt, rates, row)
from mazeagent.probes.dataset import collect

ME1_CUTS = (50, 70, 90, 99)  # ME1@X in verdicts.PREDICTIONS
MAX_TOP_RIGHT_DROP = 0.25
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(choosing half, scoring half) of ``n`` maze indices, at random."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n // 2]), np.sort(perm[n // 2:])


def half_stats(base: Any, df: Any, idx: np.ndarray, h: int, seed: int) -> dict:
    """Cheese cut and top-right drop of a patch on the mazes ``idx`` (paired bootstrap CIs)."""
    out: dict = {"n": len(idx)}
    for what, key in (("cheese", "cheese_cut"), ("top_right", "top_right_drop")):
        b, p = got(base, what, h)[idx], got(df, what, h)[idx]
        out[what] = proportion(p)
        out[key], out[f"{key}_ci"] = paired_cut(b, p, seed)
    return out


def choose_patch(rows: list[dict]) -> int | None:
    """Index of the patch with the largest cheese cut on the choosing half among the admissible ones there (upper
    CI bound of the top-right drop at most 25%); controls are never chosen."""
    ok = [k for k, r in enumerate(rows) if r["kind"] == "patch" and np.isfinite(r["choose"]["cheese_cut"])
          and finite(r["choose"]["top_right_drop_ci"]) and r["choose"]["top_right_drop_ci"][1] <= MAX_TOP_RIGHT_DROP]
    return max(ok, key=lambda k: rows[k]["choose"]["cheese_cut"]) if ok else None


def me1_verdict(scored: dict | None, x: float) -> tuple[str, str]:
    """ME1@X from the chosen patch's scoring-half results: demonstrated iff the cut's CI lies at/above ``x`` and
    the top-right drop's CI at/below 25%."""
    shown = (scored is not None and finite(scored["cheese_cut_ci"]) and finite(scored["top_right_drop_ci"])
             and scored["cheese_cut_ci"][0] >= x and scored["top_right_drop_ci"][1] <= MAX_TOP_RIGHT_DROP)
    return demonstrated(shown)


def _patches(st: ProbeStudy, mz: Mazes, choose: np.ndarray) -> list[tuple[str, str, Any]]:
    """(name, kind, policy) of every patch and control; whatever is fitted (the mean vector, the mean-ablation
    reference) is fitted on the choosing half only."""
    cfg, shape = st.cfg, st.shape
    vecs = S.cheese_vectors(st.net, st.params, mz, cfg.layer)
    mean_vec = vecs[choose].mean(0)
    chans = st.cheese_channels()
    ctrl = I.random_channels(chans, shape[-1], len(chans), cfg.seed)
    ref = np.asarray(collect(st.net, st.params, mz.take(choose).without_cheese(), [cfg.layer], "start",
                             chunk=min(256, len(choose)), progress=False).acts[cfg.layer])
    rand = np.stack([I.random_like(v, cfg.seed + k) for k, v in enumerate(vecs)])
    out: list[tuple[str, str, Any]] = []
    for c in cfg.coeffs:
        out.append((f"per-maze cheese vector × {c:+g}", "patch",
                    st.policy(S.steer(cfg.layer, vecs, c), per_maze=True)))
        out.append((f"mean cheese vector × {c:+g}", "patch", st.policy(S.steer(cfg.layer, mean_vec, c))))
        out.append((f"random vector (per-maze norm) × {c:+g}", "control",
                    st.policy(S.steer(cfg.layer, rand, c), per_maze=True)))
    n = len(chans)
    out.append((f"zero-ablate top-{n} cheese channels", "patch", st.policy({cfg.layer: I.zero_ablation(chans, shape)})))
    out.append((f"mean-ablate top-{n} cheese channels", "patch", st.policy({cfg.layer: I.mean_ablation(chans, ref)})))
    out.append((f"zero-ablate {n} random channels", "control", st.policy({cfg.layer: I.zero_ablation(ctrl, shape)})))
    return out


def me1(st: ProbeStudy) -> Section:
    cfg, h = st.cfg, st.cfg.horizon
    mz = st.mazes(cfg.n_me1_mazes, 303, keep=S.decision_square_mazes)
    choose, score = halves(len(mz), cfg.seed + 304)
    base = st.play(st.policy(), mz)
    horizons = [x for x in sorted({256, h}) if x <= h]  # predictions.md: report both horizons
    b_rates = {str(x): rates(base, x) for x in horizons}
    rows = []
    for k, (name, kind, pol) in enumerate(_patches(st, mz, choose)):
        df = st.play(pol, mz)
        rows.append({"patch": name, "kind": kind, "all": {str(x): rates(df, x) for x in horizons},
                     "choose": half_stats(base, df, choose, h, cfg.seed + k),
                     "score": half_stats(base, df, score, h, cfg.seed + k)})
    best = choose_patch(rows)
    chosen = rows[best] if best is not None else None
    res = {"n_mazes": len(mz), "n_choose": len(choose), "n_score": len(score), "horizon": h, "baseline": b_rates,
           "patches": rows, "chosen": chosen["patch"] if chosen else None,
           "cheese_channels": st.cheese_channels().tolist(), "max_top_right_drop": MAX_TOP_RIGHT_DROP}
    sec = Section("probes_me1", "ME1 — cutting cheese acquisition while keeping top-right attainment", res)
    sec.text(f"{len(mz)} mazes with a decision square (cheese outside the 5×5 region), one sampled episode each, "
             f"horizon {h}, split at random: {len(choose)} choose the patch, {len(score)} score it. Cut = "
             "1 − patched/baseline, top-right drop likewise (paired bootstrap CIs). The chosen patch has the largest "
             "cut on the choosing half among patches whose top-right drop's upper CI bound there is ≤ 25%. ME1@X is demonstrated when, "
             "on the scoring half, the cut's CI lies at/above X and the drop's CI at/below 25%; otherwise it is not "
             "demonstrated (inconclusive): a search of patches cannot show that none exists.")
    sec.table(["Patch", "Kind", "Cut (choose)", "Drop (choose)", "Cut (score)", "95% CI", "Drop (score)", "95% CI"],
              [[r["patch"], r["kind"], r["choose"]["cheese_cut"], r["choose"]["top_right_drop"],
                r["score"]["cheese_cut"], r["score"]["cheese_cut_ci"], r["score"]["top_right_drop"],
                r["score"]["top_right_drop_ci"]] for r in rows])
    pl = plt()
    fig, ax = pl.subplots(figsize=(9, 3.5))
    x = np.arange(len(rows))
    for dx, key, lab, col in ((-0.2, "cheese_cut", "cheese cut", "goldenrod"),
                              (0.2, "top_right_drop", "top-right drop", "steelblue")):
        ax.bar(x + dx, np.nan_to_num([r["score"][key] for r in rows]), 0.4, label=lab, color=col)
    ax.axhline(MAX_TOP_RIGHT_DROP, color="k", ls="--", lw=1)
    ax.set_xticks(x, [r["patch"] for r in rows], rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("proportional change (scoring half)"), ax.legend(fontsize=7)
    st.report.save_figure(sec, fig, "probes_me1_patches", "Cheese cut and top-right drop per patch on the scoring "
                                                          "half (controls included)")
    scored = chosen["score"] if chosen else {"cheese_cut": None, "cheese_cut_ci": None}
    name = chosen["patch"] if chosen else "no patch kept the top-right on the choosing half"
    for x_ in ME1_CUTS:
        verdict, note = me1_verdict(chosen["score"] if chosen else None, x_ / 100)
        st.report.score(row(f"ME1@{x_}", "proportional cut in episode-level cheese acquisition of the patch chosen "
                            f"on half the mazes, scored on the other half ({name}; {note})", scored["cheese_cut"],
                            scored["cheese_cut_ci"], verdict, existence=note))
    return sec


# ------------------------------------------------------------------------------------------- cheese vector

def seed_list(text: str) -> tuple[int, ...]:
    """Level seeds from ``"0-99"`` / ``"3,8,10-12"`` (ranges inclusive)."""
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        a, sep, b = part.partition("-")
        try:
            out += list(range(int(a), int(b) + 1)) if sep else [int(a)]
        except ValueError:
            raise ValueError(f"level seeds must look like '0-99' or '3,8,10-12', got {text!r}") from None
    if not out:
        raise ValueError(f"no level seeds in {text!r}")
    return tuple(out)


def _cv_mazes(st: ProbeStudy) -> tuple[Mazes, str]:
    cfg = st.cfg
    has_ds = lambda m: np.nonzero(m.geometry.decision_square[:, 0] >= 0)[0]  # noqa: E731
    if cfg.cv_seeds is None:
        return st.mazes(cfg.n_cv_mazes, 606, keep=has_ds), f"{cfg.n_cv_mazes} random mazes with a decision square"
    pool = mazes_from_seeds(cfg.cv_seeds)
    keep = has_ds(pool)
    big = pool.size[keep] > (cfg.max_maze_size or 25)
    if (~big).sum() == 0:
        raise ValueError("none of the given level seeds has a decision square and a maze within the size range")
    return pool.take(keep[~big]), (f"the {len(pool)} given level seeds: {len(keep)} have a decision square, "
                                    f"{int(big.sum())} of them larger than the agent's sizes are left out")


def cheese_vector(st: ProbeStudy) -> Section:
    """P(cheese | decision square) and P(top-right | decision square) with the cheese vector subtracted, per maze
    and as a distribution, for each coefficient, against a mean vector and a random vector of the same norm."""
    cfg = st.cfg
    mz, source = _cv_mazes(st)
    vecs = S.cheese_vectors(st.net, st.params, mz, cfg.layer)
    mean_vec = vecs.mean(0)
    conds: dict[str, Any] = {"original": st.policy()}
    for c in cfg.coeffs:
        conds[f"per-maze cheese vector × {c:+g}"] = st.policy(S.steer(cfg.layer, vecs, c), per_maze=True)
        conds[f"mean cheese vector × {c:+g}"] = st.policy(S.steer(cfg.layer, mean_vec, c))
        conds[f"random vector × {c:+g}"] = st.policy(S.steer(cfg.layer, I.random_like(mean_vec, cfg.seed), c))
    key = jax.random.PRNGKey(cfg.seed)
    raw = {name: S.decision_probs(pol, mz, key) for name, pol in conds.items()}
    p0 = raw["original"]["p_cheese"]
    res: dict = {"source": source, "n_mazes": len(mz), "level_seeds": mz.seed.tolist(), "layer": cfg.layer,
                 "conditions": {}}
    for name, d in raw.items():
        pc = d["p_cheese"]
        res["conditions"][name] = {
            **{k: float(np.median(d[f"p_{k}"])) for k in ("cheese", "top_right", "other")},
            "median_cheese_ci": bootstrap_ci(pc, np.median, n_boot=500, seed=cfg.seed),
            "quantiles_cheese": {str(q): float(np.quantile(pc, q)) for q in QUANTILES},
            "mazes_cheese_rose": int((pc > p0).sum()) if name != "original" else None}
    sec = Section("probes_cv", "Cheese vector — P(cheese | decision square) before and after", res)
    sec.text(f"Mazes: {source}. Each maze's cheese vector (activations with − without cheese, mouse at the start, "
             f"`{cfg.layer}`) is added with coefficients {', '.join(f'{c:+g}' for c in cfg.coeffs)} at every square; "
             "probabilities are read with the mouse on the decision square. Published (scale-4 agent, seeds 0–99, "
             "coefficient −1): median P(cheese) .81 → .03, rising in 1 maze of 100.")
    sec.table(["Condition", "median P(cheese)", "95% CI", "median P(top-right)", "median P(other)",
               "Mazes where P(cheese) rose"],
              [[k, v["cheese"], v["median_cheese_ci"], v["top_right"], v["other"], v["mazes_cheese_rose"]]
               for k, v in res["conditions"].items()])
    pl = plt()
    fig, axes = pl.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    names = list(raw)
    for ax, k in zip(axes, ("p_cheese", "p_top_right")):
        ax.boxplot([raw[n][k] for n in names], vert=False)
        ax.set_yticks(range(1, len(names) + 1), names, fontsize=7)
        ax.set_xlabel(k.replace("p_", "P(").replace("_", "-") + ") at the decision square"), ax.set_xlim(0, 1)
    st.report.save_figure(sec, fig, "probes_cv_distribution",
                          "Per-maze decision-square probabilities before and after the cheese vector")
    return sec
