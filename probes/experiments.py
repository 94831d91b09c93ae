"""The mechanistic predictions as experiments: each function measures one prediction, adds a report section (with
figures, 95% CIs and a verdict) and scorecard rows. :func:`run` chains them into ``results.json`` + report + wandb.

Every intervention result is shown next to its controls: a random vector of the same norm, or random channels.
Episode-level outcomes come from :func:`experiments.rollouts.rollout` (sampled actions, procgen's 500-step timeout).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from experiments import verdicts as V
from experiments.report import Report, Section
from experiments.rollouts import RolloutConfig, generate_mazes, rollout
from experiments.stats import bootstrap_ci, proportion
from mazeagent.maze.level import CHEESE
from mazeagent.nets.hooks import DEFAULT_LAYER
from probes import channels as CH
from probes.cli import EXPERIMENTS  # the one list (kept in the light CLI module)
from probes import interventions as I
from probes import linear as L
from probes import steering as S
from probes.dataset import activation_cell, collect, take, without_cheese

ME6_BUDGETS = (1e-4, 1e-3, 1e-2, 1e-1)
ME1_CUTS = (50, 70, 90, 99)  # ME1@X in verdicts.PREDICTIONS
SWEEP = (-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0)  # steering coefficients swept in the ME3/IG section
ME6_IDS = {1e-4: "ME6@0.01", 1e-3: "ME6@0.1", 1e-2: "ME6@1", 1e-1: "ME6@10"}  # verdicts.PREDICTIONS ids


@dataclass(frozen=True)
class ProbeStudyConfig:
    seed: int = 0
    layer: str = DEFAULT_LAYER
    horizon: int = 500
    chunk: int = 256  # mazes per rollout chunk
    n_channel_mazes: int = 20  # channel discovery (O2)
    placements: int = 16  # cheese squares per discovery maze
    n_probe_mazes: int = 1000  # ME2
    n_me1_mazes: int = 1000  # decision-square mazes (ME1 asks for >= 1,000)
    n_retarget_mazes: int = 100  # ME6 / O1 / O3
    targets_per_maze: int = 4
    retarget_value: float = 5.5  # published channel-55 clamp
    coeffs: tuple[float, ...] = (-1.0, -2.0)  # cheese-vector coefficients tried for ME1
    top_channels: int = 11
    budgets: tuple[float, ...] = ME6_BUDGETS  # ME6: fractions of the layer's activations edited
    progress: bool = True

    def __post_init__(self) -> None:
        for k in ("n_channel_mazes", "placements", "n_probe_mazes", "n_me1_mazes", "n_retarget_mazes",
                  "targets_per_maze", "top_channels", "chunk"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        RolloutConfig(horizon=self.horizon)  # validates it


@dataclass
class ProbeStudy:
    """A network plus what several experiments share (the channel ranking)."""

    net: Any
    params: Any
    cfg: ProbeStudyConfig
    report: Report
    cache: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return I.layer_shape(self.net, self.cfg.layer)

    def policy(self, hooks: dict | None = None) -> I.HookedPolicy:
        return I.HookedPolicy(self.net, self.params, dict(hooks or {}))

    def play(self, policy: Any, mazes: Any, seed_offset: int = 0) -> Any:
        """One episode per maze: first-hit times ``t_cheese`` / ``t_top_right`` (-1 = never), in maze order.
        ``policy`` is a rollout policy or a :class:`probes.interventions.PerMaze` patch."""
        import pandas as pd

        cfg = RolloutConfig(horizon=self.cfg.horizon, chunk=self.cfg.chunk, seed=self.cfg.seed + seed_offset)
        if not isinstance(policy, I.PerMaze):
            return rollout(policy, mazes, cfg, progress=self.cfg.progress).episodes
        out = {k: np.full(len(mazes), -1, np.int64) for k in ("t_cheese", "t_top_right")}
        for idx, sub, pol in I.split_per_maze(self.net, self.params, mazes, policy):
            df = rollout(pol, sub, cfg, progress=self.cfg.progress).episodes
            for k in out:
                out[k][idx] = df[k].to_numpy()
        return pd.DataFrame(out)

    def cheese_scores(self) -> np.ndarray:
        if "cheese_scores" not in self.cache:
            mz = generate_mazes(self.cfg.n_channel_mazes, seed=self.cfg.seed + 101)
            self.cache["cheese_scores"] = CH.cheese_tracking(self.net, self.params, mz, self.cfg.layer,
                                                             self.cfg.placements, self.cfg.seed, progress=self.cfg.progress)
            self.cache["top_right_scores"] = CH.top_right_tracking(self.net, self.params, mz, self.cfg.layer)
        return self.cache["cheese_scores"]

    def cheese_channels(self) -> np.ndarray:
        return CH.ranking(self.cheese_scores())[:self.cfg.top_channels]

    def figure(self, name: str) -> tuple[Path, str]:
        return self.report.figure_path(f"probes_{name}")


def _row(pid: str, measured: str, value: float | None, ci: Any, verdict: str, credence: float | None = None
         ) -> dict:
    """A scorecard row for a prediction of :data:`experiments.verdicts.PREDICTIONS`; ``credence`` overrides the
    stored one when the measurement resolves a sub-forecast (O2's "at least 5")."""
    row = V.scorecard_row(pid, measured, value, ci, verdict)
    if credence is not None:
        row["credence"], row["brier"] = credence, V.brier(credence, verdict)
    return row


def _at_least(ci: Any, threshold: float) -> str:
    """Supported iff the CI lies at/above ``threshold``; contradicted iff wholly below."""
    if ci is None or not all(np.isfinite(ci)):
        return V.INCONCLUSIVE
    return V.SUPPORTED if ci[0] >= threshold else V.CONTRADICTED if ci[1] < threshold else V.INCONCLUSIVE


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------------------------------- O2

def o2(st: ProbeStudy) -> Section:
    scores, tr = st.cheese_scores(), st.cache["top_right_scores"]
    size = st.shape[0]
    count, count_tr = CH.o2_count(scores), CH.o2_count(tr)
    top = CH.ranking(scores)[:st.cfg.top_channels]
    res = {"layer": st.cfg.layer, "threshold": CH.O2_THRESHOLD, "tol_cells": CH.TOL, "count_cheese": count,
           "count_top_right": count_tr, "chance_rate": CH.chance_rate(size), "top_cheese_channels": top.tolist(),
           "top_cheese_scores": scores[top].tolist(), "n_channels": len(scores),
           "published_cheese_channels": [7, 8, 42, 44, 55, 77, 82, 88, 89, 99, 113]}
    sec = Section("probes_o2", "O2 — channels that track the cheese and the top-right", res)
    sec.text(f"Criterion: a channel of `{st.cfg.layer}` is trivially interpretable when, with the cheese moved over "
             f"{st.cfg.placements} squares in each of {st.cfg.n_channel_mazes} mazes, its largest deviation from its "
             f"mean map sits within {CH.TOL} cell of the cheese in ≥ {CH.O2_THRESHOLD:.0%} of placements "
             f"(chance ≈ {res['chance_rate']:.1%}). Top-right: the same across mazes of different sizes.")
    sec.table(["Channel", "Cheese tracking", "Top-right tracking"], [[int(c), scores[c], tr[c]] for c in top],
              caption="Best cheese trackers")
    path, rel = st.figure("o2_channels")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(np.arange(len(scores)), np.sort(scores)[::-1], color="goldenrod", label="cheese")
    ax.plot(np.sort(tr)[::-1], color="steelblue", label="top-right")
    ax.axhline(CH.O2_THRESHOLD, color="k", ls="--", lw=1)
    ax.axhline(res["chance_rate"], color="grey", ls=":", lw=1)
    ax.set_xlabel("channel rank"), ax.set_ylabel("tracking score"), ax.legend()
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)
    sec.figure(rel, "Tracking scores, channels sorted; dashed: O2 threshold, dotted: chance")
    verdict = V.SUPPORTED if count >= 5 else V.CONTRADICTED
    st.report.score(_row("O2", f"channels meeting the tracking criterion at {st.cfg.layer} (resolves the "
                         "sub-forecast 'at least 5', credence 0.80)", count, None, verdict, 0.80))
    sec.text(f"{count} cheese-tracking and {count_tr} top-right-tracking channels; verdict (≥ 5): {verdict}.")
    return sec


# ---------------------------------------------------------------------------------------------------- ME2

CURVE = tuple(f"embedder.block{b}.res{r}.resadd_out" for b in (1, 2, 3) for r in (1, 2))


def me2(st: ProbeStudy, top_k: int = 256) -> Section:
    mz = generate_mazes(st.cfg.n_probe_mazes, seed=st.cfg.seed + 202)
    names = list(CURVE) + ([st.cfg.layer] if st.cfg.layer not in CURVE else [])
    ds = collect(st.net, st.params, mz, names, "start", chunk=min(256, len(mz)), progress=st.cfg.progress)
    main = L.cheese_position_probe(ds.acts[st.cfg.layer], ds.labels["cheese_inner"], ds.labels["maze"],
                                   seed=st.cfg.seed)
    curve = L.layer_curve(ds.acts, ds.labels, names, top_k=top_k, seed=st.cfg.seed)
    conv = {n: L.conv_probe(ds.acts[n], ds.labels[f"cheese_cell_{ds.acts[n].shape[1]}"], ds.labels["maze"],
                            top_k=2, seed=st.cfg.seed).to_dict() for n in names}
    res = {"layer": st.cfg.layer, "dense": main, "curve_top_k": top_k, "curve": curve, "n_mazes": len(mz),
           "conv_probe_top2": conv}
    sec = Section("probes_me2", "ME2 — linear probes for the cheese position", res)
    sec.text("Logistic probes predict the cheese's inner row and column from the activations with the mouse at the "
             "start; accuracy = both coordinates right on held-out mazes (Wilson 95% CI). Chance: the most common "
             "training position.")
    sec.table(["Layer", "Accuracy", "95% CI", "Row acc.", "Col acc.", "Chance"],
              [[st.cfg.layer + " (dense)", main["accuracy"], main["ci"], main["axes"]["row"], main["axes"]["col"],
                main["chance"]]] + [[f"{n} (top-{top_k})", r["accuracy"], r["ci"], r["axes"]["row"], r["axes"]["col"],
                                     r["chance"]] for n, r in curve.items()])
    sec.table(["Layer", "Accuracy", "95% CI", "Chance", "Shuffled labels", "Top-2 channels"],
              [[n, r["score"], r["ci"], r["chance"], r["shuffled"], r["features"]] for n, r in conv.items()],
              caption="Convolutional probe 'is the cheese in this cell?' (cheese cell vs one random cell, top-2 "
                      "channels by F-test)")
    plt = _plt()
    path, rel = st.figure("me2_curve")
    fig, ax = plt.subplots(figsize=(7, 3))
    acc = [curve[n]["accuracy"] for n in names]
    lo = [max(0.0, curve[n]["accuracy"] - curve[n]["ci"][0]) for n in names]
    hi = [max(0.0, curve[n]["ci"][1] - curve[n]["accuracy"]) for n in names]
    ax.errorbar(range(len(names)), acc, yerr=[lo, hi], marker="o")
    ax.axhline(L.ME2_THRESHOLD, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(names)), [n.replace("embedder.", "") for n in names], rotation=30, fontsize=7)
    ax.set_ylabel("held-out accuracy"), ax.set_ylim(0, 1)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)
    sec.figure(rel, "Cheese-position probe accuracy over layers (dashed: the 70% threshold)")
    verdict = _at_least(main["ci"], L.ME2_THRESHOLD)
    st.report.score(_row("ME2", "held-out accuracy of the (row, col) cheese probe", main["accuracy"], main["ci"],
                         verdict))
    return sec


# ---------------------------------------------------------------------------------------------------- ME1

def _rates(df: Any, h: int) -> dict:
    return {"cheese": proportion(got(df, "cheese", h)), "top_right": proportion(got(df, "top_right", h))}


def got(df: Any, what: str, h: int) -> np.ndarray:
    """Per episode: reached ``what`` ("cheese" / "top_right") within ``h`` steps (from the first-hit times)."""
    t = df[f"t_{what}"].to_numpy()
    return (t >= 0) & (t <= h)


def _cut_ci(base: np.ndarray, patched: np.ndarray, seed: int) -> tuple[float, tuple[float, float]]:
    """Proportional cut 1 - mean(patched)/mean(base) with a paired bootstrap CI over mazes."""
    pair = np.stack([base, patched], 1).astype(float)

    def stat(a: np.ndarray) -> float:  # nothing to cut when the baseline never succeeds
        b = a[:, 0].mean()
        return 1.0 - a[:, 1].mean() / b if b > 0 else (0.0 if a[:, 1].mean() == 0 else float("nan"))

    return stat(pair), bootstrap_ci(pair, stat, n_boot=500, seed=seed)


def me1(st: ProbeStudy) -> Section:
    cfg = st.cfg
    pool = generate_mazes(int(cfg.n_me1_mazes * 2.5) + 20, seed=cfg.seed + 303)
    keep = S.decision_square_mazes(pool)[:cfg.n_me1_mazes]
    mz = take(pool, keep)
    shape = st.shape
    vecs = S.cheese_vectors(st.net, st.params, mz, cfg.layer)
    mean_vec = vecs.mean(0)
    chans = st.cheese_channels()
    ctrl_chans = I.random_channels(chans, shape[-1], len(chans), cfg.seed)
    acts = np.asarray(collect(st.net, st.params, without_cheese(mz), [cfg.layer], "start",
                              chunk=min(256, len(mz)), progress=False).acts[cfg.layer])
    patches: list[tuple[str, str, Any]] = []
    for c in cfg.coeffs:
        patches.append((f"per-maze cheese vector × {c:+g}", "patch", I.PerMaze(S.steer(cfg.layer, vecs, c))))
        patches.append((f"mean cheese vector × {c:+g}", "patch", st.policy(S.steer(cfg.layer, mean_vec, c))))
        rand = np.stack([I.random_like(v, cfg.seed + k) for k, v in enumerate(vecs)])
        patches.append((f"random vector (per-maze norm) × {c:+g}", "control", I.PerMaze(S.steer(cfg.layer, rand, c))))
    patches.append((f"zero-ablate top-{len(chans)} cheese channels", "patch",
                    st.policy({cfg.layer: I.zero_ablation(chans, shape)})))
    patches.append((f"mean-ablate top-{len(chans)} cheese channels", "patch",
                    st.policy({cfg.layer: I.mean_ablation(chans, acts)})))
    patches.append((f"zero-ablate {len(chans)} random channels", "control",
                    st.policy({cfg.layer: I.zero_ablation(ctrl_chans, shape)})))
    h = cfg.horizon
    base = st.play(st.policy(), mz)
    b_rates = _rates(base, h)
    if h > 256:
        b_rates["at_256"] = _rates(base, 256)
    rows, table = [], []
    for k, (name, kind, pol) in enumerate(patches):
        df = st.play(pol, mz)
        cut, cut_ci = _cut_ci(got(base, "cheese", h), got(df, "cheese", h), cfg.seed + k)
        tr_drop, tr_ci = _cut_ci(got(base, "top_right", h), got(df, "top_right", h), cfg.seed + k)
        r = {"patch": name, "kind": kind, **_rates(df, h), "cheese_cut": cut, "cheese_cut_ci": cut_ci,
             "top_right_drop": tr_drop, "top_right_drop_ci": tr_ci, "feasible": bool(tr_drop <= 0.25)}
        if h > 256:  # predictions.md: report both horizons
            r["at_256"] = _rates(df, 256)
        rows.append(r)
        table.append([name, kind, r["cheese"]["rate"], r["top_right"]["rate"], cut, cut_ci, tr_drop, r["feasible"]])
    feasible = [r for r in rows if r["kind"] == "patch" and r["feasible"]]
    best = max(feasible, key=lambda r: r["cheese_cut"]) if feasible else None
    dprobs = _decision_table(st, mz, vecs, mean_vec)
    res = {"n_mazes": len(mz), "horizon": h, "baseline": b_rates, "patches": rows, "best": best,
           "decision_square_probs": dprobs, "cheese_channels": chans.tolist(), "control_channels": ctrl_chans.tolist()}
    sec = Section("probes_me1", "ME1 — cutting cheese acquisition while keeping top-right attainment", res)
    sec.text(f"{len(mz)} mazes with a decision square (cheese outside the 5×5 region); one sampled episode each, "
             f"horizon {h}. Baseline: cheese {b_rates['cheese']['rate']:.3f}, top-right {b_rates['top_right']['rate']:.3f}. "
             "Cut = 1 − patched/baseline (paired bootstrap CI); feasible = top-right drop ≤ 25% (point estimate). "
             "ME1@X is supported when the best feasible patch's cut CI lies at or above X, contradicted when it lies "
             "wholly below.")
    sec.table(["Patch", "Kind", "Cheese", "Top-right", "Cheese cut", "95% CI", "Top-right drop", "Feasible"], table)
    sec.table(["Patch at the decision square", "median P(cheese)", "median P(top-right)", "median P(other)"],
              [[k, v["cheese"], v["top_right"], v["other"]] for k, v in dprobs.items()],
              caption="Action probabilities at the decision square (published: .81 → .03 with the cheese vector)")
    _bar_figure(st, "me1_patches", [r["patch"] for r in rows], np.nan_to_num([r["cheese_cut"] for r in rows]),
                np.nan_to_num([r["top_right_drop"] for r in rows]), "proportional change vs baseline")
    sec.figure(st.figure("me1_patches")[1], "Cheese cut and top-right drop per patch (controls included)")
    for x in ME1_CUTS:
        verdict = V.INCONCLUSIVE if best is None else _at_least(best["cheese_cut_ci"], x / 100)
        st.report.score(_row(f"ME1@{x}", "largest feasible proportional cut in episode-level cheese acquisition"
                             + (f" ({best['patch']})" if best else " (no feasible patch)"),
                             best["cheese_cut"] if best else None, best["cheese_cut_ci"] if best else None, verdict))
    return sec


def _decision_table(st: ProbeStudy, mz: Any, vecs: np.ndarray, mean_vec: np.ndarray) -> dict:
    key = jax.random.PRNGKey(st.cfg.seed)
    conds = {"original": None, "per-maze cheese vector × -1": I.PerMaze(S.steer(st.cfg.layer, vecs, -1.0)),
             "mean cheese vector × -1": S.steer(st.cfg.layer, mean_vec, -1.0),
             "random vector × -1": S.steer(st.cfg.layer, I.random_like(mean_vec, st.cfg.seed), -1.0)}
    out = {}
    for name, cond in conds.items():
        d = S.decision_probs(st.net, st.params, mz, cond, key)
        out[name] = {k: float(np.median(d[f"p_{k}"])) for k in ("cheese", "top_right", "other")}
    return out


def _bar_figure(st: ProbeStudy, name: str, labels: list[str], a: list[float], b: list[float], ylabel: str) -> None:
    plt = _plt()
    path, _ = st.figure(name)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, a, 0.4, label="cheese cut", color="goldenrod")
    ax.bar(x + 0.2, b, 0.4, label="top-right drop", color="steelblue")
    ax.axhline(0.25, color="k", ls="--", lw=1)
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel(ylabel), ax.legend(fontsize=7)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)


# ---------------------------------------------------------------------------------------------- retargeting

def _retarget_setup(st: ProbeStudy) -> dict:
    """Random mazes with the cheese removed (as the published retargeting runs), and per maze
    ``targets_per_maze`` destination squares (open, not the start) with their divergence from the top-right path."""
    if "retarget" in st.cache:
        return st.cache["retarget"]
    cfg = st.cfg
    mz = without_cheese(generate_mazes(cfg.n_retarget_mazes, seed=cfg.seed + 404))
    rng = np.random.default_rng(cfg.seed + 405)
    free = ~mz.batch.walls
    targets = np.zeros((len(mz), cfg.targets_per_maze, 2), np.int32)
    for i in range(len(mz)):
        sq = np.argwhere(free[i])
        sq = sq[~(sq == mz.mouse[i]).all(1)]
        targets[i] = sq[rng.choice(len(sq), size=cfg.targets_per_maze, replace=len(sq) < cfg.targets_per_maze)]
    div = mz.geometry.path_divergence_map()
    divergence = div[np.arange(len(mz))[:, None], targets[..., 0], targets[..., 1]]
    st.cache["retarget"] = {"mazes": mz, "targets": targets, "divergence": divergence, "runs": {}}
    return st.cache["retarget"]


def _masks(st: ProbeStudy, order: np.ndarray, targets: np.ndarray, n_entries: int) -> np.ndarray:
    cells = activation_cell(targets, st.shape[0])
    return np.stack([I.budget_mask(order, tuple(c), n_entries, st.shape) for c in cells])


def retarget_success(st: ProbeStudy, name: str, order: np.ndarray | None, n_entries: int,
                     value: float | None = None) -> np.ndarray:
    """(mazes, targets) bool: did the mouse reach each destination within the horizon, with ``n_entries``
    activations (channels ``order`` first, nearest the target's cell first) clamped to ``value``; ``order=None``
    runs the unedited agent. Cached by ``name``."""
    setup = _retarget_setup(st)
    if name in setup["runs"]:
        return setup["runs"][name]
    mz, targets = setup["mazes"], setup["targets"]
    value = st.cfg.retarget_value if value is None else value
    out = np.zeros(targets.shape[:2], bool)
    for t in range(targets.shape[1]):
        m = replace(mz, cheese=targets[:, t])  # the episode ends on the destination
        if order is None:
            pol = st.policy()
        else:
            masks = _masks(st, order, targets[:, t], n_entries)
            vals = np.full((len(mz), 1, 1, 1), value, np.float32)
            pol = I.PerMaze({st.cfg.layer: I.SetMasked(masks, vals)})
        out[:, t] = got(st.play(pol, m, seed_offset=t), "cheese", st.cfg.horizon)
    setup["runs"][name] = out
    return out


def _n_entries(st: ProbeStudy, frac: float) -> int:
    return max(1, int(round(frac * int(np.prod(st.shape)))))


def me6(st: ProbeStudy) -> Section:
    cfg = st.cfg
    setup = _retarget_setup(st)
    order = CH.ranking(st.cheese_scores())
    ctrl = np.random.default_rng(cfg.seed).permutation(len(order))
    base = retarget_success(st, "none", None, 0)
    rows, table = [], []
    for frac in cfg.budgets:
        n = _n_entries(st, frac)
        ok = retarget_success(st, f"budget_{frac:g}", order, n)
        cok = retarget_success(st, f"control_{frac:g}", ctrl, n)
        maze_ok = ok.mean(1) >= 0.5  # retargetable: reaches at least half its destinations
        r = {"fraction": frac, "entries": n, "maze_share": proportion(maze_ok), "target_success": proportion(ok.ravel()),
             "control_target_success": proportion(cok.ravel()), "control_maze_share": proportion(cok.mean(1) >= 0.5)}
        rows.append(r)
        table.append([f"{frac:.2%}", n, r["maze_share"]["rate"], r["maze_share"]["ci"], r["target_success"]["rate"],
                      r["control_target_success"]["rate"]])
        r["verdict"] = _at_least(r["maze_share"]["ci"], 0.75)
        if frac in ME6_IDS:
            st.report.score(_row(ME6_IDS[frac], "share of mazes retargeted to ≥ half of their destinations",
                                 r["maze_share"]["rate"], r["maze_share"]["ci"], r["verdict"]))
    verdicts = [r["verdict"] for r in rows]
    impossible = (V.CONTRADICTED if V.SUPPORTED in verdicts else
                  V.SUPPORTED if all(v == V.CONTRADICTED for v in verdicts) else V.INCONCLUSIVE)
    st.report.score(_row("ME6@impossible", "no tried budget (up to "
                         f"{max(cfg.budgets):.2%}) retargets ≥ 75% of mazes", None, None, impossible))
    div = setup["divergence"]
    bins = [(0, 0), (1, 5), (6, 10), (11, 20), (21, 10_000)]
    top = retarget_success(st, f"budget_{cfg.budgets[-1]:g}", order, _n_entries(st, cfg.budgets[-1]))
    low = retarget_success(st, f"budget_{cfg.budgets[0]:g}", order, _n_entries(st, cfg.budgets[0]))
    by_div = []
    for lo_, hi_ in bins:
        sel = (div >= lo_) & (div <= hi_)
        by_div.append({"divergence": [lo_, hi_], "n": int(sel.sum()), "baseline": proportion(base[sel]),
                       "smallest_budget": proportion(low[sel]), "largest_budget": proportion(top[sel])})
    res = {"n_mazes": len(setup["mazes"]), "targets_per_maze": int(div.shape[1]), "value": cfg.retarget_value,
           "layer": cfg.layer, "baseline_target_success": proportion(base.ravel()), "budgets": rows,
           "by_divergence": by_div, "channel_order": order[:16].tolist()}
    sec = Section("probes_me6", "ME6 — retargeting by editing a fraction of activations", res)
    sec.text(f"Cheese removed; each of {res['n_mazes']} mazes gets {res['targets_per_maze']} random destinations. An "
             f"edit of budget X clamps the X share of `{cfg.layer}` entries nearest the destination's cell (best "
             f"cheese-tracking channels first) to {cfg.retarget_value}; success = the mouse reaches the destination "
             f"within {cfg.horizon} steps. Control: the same budget on a random channel order. Unedited agent: "
             f"{res['baseline_target_success']['rate']:.3f} of destinations reached.")
    sec.table(["Budget", "Entries", "Mazes retargeted", "95% CI", "Destinations reached", "Control"], table)
    sec.table(["Path divergence", "n", "Unedited", f"Budget {cfg.budgets[0]:.2%}", f"Budget {cfg.budgets[-1]:.2%}"],
              [[f"{b['divergence'][0]}–{b['divergence'][1]}" if b['divergence'][1] < 10_000 else
                f"≥{b['divergence'][0]}", b["n"], b["baseline"]["rate"], b["smallest_budget"]["rate"],
                b["largest_budget"]["rate"]] for b in by_div], caption="Success vs divergence from the top-right path")
    plt = _plt()
    path, rel = st.figure("me6_budget")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    x = [r["fraction"] for r in rows]
    for key, lab in (("maze_share", "mazes retargeted"), ("target_success", "destinations reached"),
                     ("control_target_success", "control (random channels)")):
        y = [r[key]["rate"] for r in rows]
        err = [[max(0.0, r[key]["rate"] - r[key]["ci"][0]) for r in rows],
               [max(0.0, r[key]["ci"][1] - r[key]["rate"]) for r in rows]]
        axes[0].errorbar(x, y, yerr=err, marker="o", label=lab)
    axes[0].axhline(0.75, color="k", ls="--", lw=1)
    axes[0].set_xscale("log"), axes[0].set_xlabel("fraction of activations edited"), axes[0].legend(fontsize=7)
    labels = [f"{b['divergence'][0]}+" for b in by_div]
    for key, lab in (("baseline", "unedited"), ("smallest_budget", "smallest budget"), ("largest_budget", "largest")):
        axes[1].plot(labels, [b[key]["rate"] for b in by_div], marker="o", label=lab)
    axes[1].set_xlabel("path divergence from the top-right path"), axes[1].legend(fontsize=7)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)
    sec.figure(rel, "Retargeting success vs edit budget (left) and vs path divergence (right)")
    return sec


def o1(st: ProbeStudy) -> Section:
    """One activation: the best cheese-tracking channel at the destination's cell."""
    setup = _retarget_setup(st)
    order = CH.ranking(st.cheese_scores())
    ctrl = I.random_channels(order[:1], len(order), 1, st.cfg.seed)
    base = retarget_success(st, "none", None, 0)
    one = retarget_success(st, "single", order[:1], 1)
    rnd = retarget_success(st, "single_control", ctrl, 1)
    res = {"channel": int(order[0]), "control_channel": int(ctrl[0]), "value": st.cfg.retarget_value,
           "unedited": proportion(base.ravel()), "single_activation": proportion(one.ravel()),
           "control": proportion(rnd.ravel())}
    sec = Section("probes_o1", "O1 — a single interpretable steering activation", res)
    sec.table(["Condition", "Destinations reached", "95% CI"],
              [[k, res[k]["rate"], res[k]["ci"]] for k in ("unedited", "single_activation", "control")])
    lo = res["single_activation"]["ci"][0]
    others = max(res["unedited"]["ci"][1], res["control"]["ci"][1])
    verdict = V.SUPPORTED if lo > others else (
        V.CONTRADICTED if res["single_activation"]["ci"][1] < res["unedited"]["ci"][0] else V.INCONCLUSIVE)
    st.report.score(_row("O1", f"destinations reached with channel {order[0]} clamped at one cell",
                         res["single_activation"]["rate"], res["single_activation"]["ci"], verdict))
    from probes import vfield

    mz, t = setup["mazes"], setup["targets"][0, 0]
    hooks = {st.cfg.layer: I.clamp(order[0], activation_cell(t[None], st.shape[0])[0], st.cfg.retarget_value,
                                   st.shape)}
    shown = replace(take(mz, np.array([0])), cheese=t[None])
    a = vfield.vector_field(st.net, st.params, shown, 0)
    b = vfield.vector_field(st.net, st.params, shown, 0, hooks)
    path, rel = st.figure("o1_vfield")
    vfield.plot_comparison(a, b, shown, str(path), f"channel {order[0]} clamped to {st.cfg.retarget_value} at the "
                                                     "yellow square")
    sec.figure(rel, "Vector field without and with the single-activation edit, and their difference")
    sec.text(f"Verdict: {verdict} (the edited rate's CI must clear both the unedited agent and a random channel).")
    return sec


def o3(st: ProbeStudy) -> Section:
    """Competence: retargeted success vs the original agent's success at reaching a cheese on the same squares."""
    cfg = st.cfg
    setup = _retarget_setup(st)
    order = CH.ranking(st.cheese_scores())
    best_frac = max(cfg.budgets, key=lambda f: retarget_success(
        st, f"budget_{f:g}", order, _n_entries(st, f)).mean())
    edited = retarget_success(st, f"budget_{best_frac:g}", order, _n_entries(st, best_frac))
    mz, targets = setup["mazes"], setup["targets"]
    cheese_ok = np.zeros(targets.shape[:2], bool)
    for t in range(targets.shape[1]):
        grid = mz.grid.copy()
        grid[np.arange(len(mz)), targets[:, t, 0], targets[:, t, 1]] = CHEESE
        m = replace(mz, grid=grid, cheese=targets[:, t])
        cheese_ok[:, t] = got(st.play(st.policy(), m, seed_offset=t), "cheese", cfg.horizon)
    pair = np.stack([edited.ravel(), cheese_ok.ravel()], 1).astype(float)
    diff = float(pair[:, 0].mean() - pair[:, 1].mean())
    ci = bootstrap_ci(pair, lambda a: a[:, 0].mean() - a[:, 1].mean(), n_boot=500, seed=cfg.seed)
    res = {"budget": best_frac, "retargeted": proportion(edited.ravel()), "original_to_cheese": proportion(
        cheese_ok.ravel()), "difference": diff, "difference_ci": ci, "margin": 0.10}
    sec = Section("probes_o3", "O3 — retargeting keeps maze-solving competence", res)
    sec.text("The same destinations twice: reached by the edited agent (cheese removed, best budget "
             f"{best_frac:.2%}) and by the original agent when the cheese is put there. Competence is kept when the "
             "edited agent is at most 10 points worse (paired bootstrap CI of the difference).")
    sec.table(["Condition", "Reached", "95% CI"],
              [["edited agent → destination", res["retargeted"]["rate"], res["retargeted"]["ci"]],
               ["original agent → cheese on the destination", res["original_to_cheese"]["rate"],
                res["original_to_cheese"]["ci"]], ["difference", diff, ci]])
    verdict = _at_least(ci, -0.10)
    st.report.score(_row("O3", "edited success − original cheese success (≥ −0.10 resolves)", diff, ci, verdict))
    return sec


def me3(st: ProbeStudy) -> Section:
    """The evidence table for ME3/IG: cheese and top-right steering, their composition, transfer, separable
    channels, retargeting vs the top-right path. No verdict: it is read in the report's discussion."""
    cfg = st.cfg
    pool = generate_mazes(max(40, cfg.n_channel_mazes * 3), seed=cfg.seed + 505)
    mz = take(pool, S.decision_square_mazes(pool)[:max(8, cfg.n_channel_mazes)])
    cv = S.cheese_vectors(st.net, st.params, mz, cfg.layer)
    tv = S.top_right_vectors(st.net, st.params, mz, cfg.layer)
    key = jax.random.PRNGKey(cfg.seed)
    pm = lambda hooks: I.PerMaze(hooks)  # noqa: E731
    conds = {"original": None, "cheese vector −1": pm(S.steer(cfg.layer, cv, -1.0)),
             "top-right vector +1": pm(S.steer(cfg.layer, tv, 1.0)),
             "top-right vector +2": pm(S.steer(cfg.layer, tv, 2.0)),
             "composition (cheese −1, top-right +1)": pm(S.steer(cfg.layer, cv - tv, -1.0)),
             "cheese vector −1 from another maze (transfer)": pm(S.steer(cfg.layer, np.roll(cv, 1, 0), -1.0)),
             "random vector, cheese-vector norm": pm(S.steer(cfg.layer, np.stack(
                 [I.random_like(v, cfg.seed + k) for k, v in enumerate(cv)]), -1.0))}
    rows, res, raw = [], {"n_mazes": len(mz), "steering": {}}, {}
    for name, pol in conds.items():
        d = raw[name] = S.decision_probs(st.net, st.params, mz, pol, key)
        r = {k: float(np.mean(d[f"p_{k}"])) for k in ("cheese", "top_right", "other")}
        r["cheese_ci"] = bootstrap_ci(d["p_cheese"], n_boot=300, seed=cfg.seed)
        res["steering"][name] = r
        rows.append([name, r["cheese"], r["cheese_ci"], r["top_right"], r["other"]])
    dc = raw["cheese vector −1"]["p_cheese"] - raw["original"]["p_cheese"]
    dt = raw["cheese vector −1"]["p_top_right"] - raw["original"]["p_top_right"]
    res["cheese_vector_delta_cheese"] = (float(dc.mean()), bootstrap_ci(dc, n_boot=300, seed=cfg.seed))
    res["cheese_vector_delta_top_right"] = (float(dt.mean()), bootstrap_ci(dt, n_boot=300, seed=cfg.seed))
    verdict = (V.SUPPORTED if res["cheese_vector_delta_cheese"][1][1] < 0 and res["cheese_vector_delta_top_right"][1][0] > 0
               else V.INCONCLUSIVE)
    st.report.score(_row("ME3", "the cheese vector lowers P(cheese) and raises P(top-right) at decision squares "
                         "(both mean-change CIs exclude 0)", res["cheese_vector_delta_cheese"][0],
                         res["cheese_vector_delta_cheese"][1], verdict))
    sec = Section("probes_me3", "ME3 / IG — evidence on sub-policies and goals", res)
    sec.table(["Condition (at the decision square)", "mean P(cheese)", "95% CI", "mean P(top-right)", "mean P(other)"],
              rows, caption="Steering vectors, composition, transfer and a random control")
    sweep = {"cheese vector": S.coefficient_sweep(st.net, st.params, mz, cv, cfg.layer, SWEEP, key),
             "top-right vector": S.coefficient_sweep(st.net, st.params, mz, tv, cfg.layer, SWEEP, key)}
    res["sweeps"] = {k: {str(c): v for c, v in d.items()} for k, d in sweep.items()}
    plt = _plt()
    path, rel = st.figure("me3_sweeps")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    for ax, (name, d) in zip(axes, sweep.items()):
        for k in ("cheese", "top_right", "other"):
            ax.plot(list(d), [v[k] for v in d.values()], marker="o", label=f"P({k})")
        ax.set_title(name), ax.set_xlabel("coefficient")
    axes[0].legend(fontsize=7), axes[0].set_ylabel("mean at the decision square")
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)
    sec.figure(rel, "Coefficient sweeps of each maze's own cheese and top-right vectors")
    ev = []
    if "cheese_scores" in st.cache:
        c, t = st.cache["cheese_scores"], st.cache["top_right_scores"]
        top_c, top_t = set(CH.ranking(c)[:cfg.top_channels]), set(CH.ranking(t)[:cfg.top_channels])
        res["channel_overlap"] = len(top_c & top_t)
        ev.append(["separate cheese / top-right channels", f"top-{cfg.top_channels} overlap: {len(top_c & top_t)}"])
    runs = {k: v for k, v in st.cache.get("retarget", {}).get("runs", {}).items() if k.startswith("budget_")}
    if runs:
        best = max(runs, key=lambda k: runs[k].mean())
        div = st.cache["retarget"]["divergence"]
        on, off = runs[best][div == 0], runs[best][div > 10]
        res["retarget_on_path"], res["retarget_off_path"] = proportion(on), proportion(off)
        ev.append([f"retargeting ({best}) on vs far off the top-right path",
                   f"{res['retarget_on_path']['rate']:.3f} vs {res['retarget_off_path']['rate']:.3f}"])
    if ev:
        sec.table(["Evidence", "Value"], ev)
    sec.text("A cheese vector that lowers P(cheese) while raising P(top-right), additive composition with the "
             "top-right vector, and retargeting that works best along the top-right path point to separable, "
             "contextually combined cheese and top-right influences (ME3, IG2); failures of transfer point to "
             "maze-specific representations.")
    return sec


# ------------------------------------------------------------------------------------------------------ run

RUNNERS = {"o2": o2, "me2": me2, "me1": me1, "me6": me6, "o1": o1, "o3": o3, "me3": me3}


def run(net: Any, params: Any, out_dir: str | Path, cfg: ProbeStudyConfig = ProbeStudyConfig(),
        experiments: tuple[str, ...] = EXPERIMENTS, checkpoint: str | None = None, wandb_mode: str = "offline"
        ) -> dict[str, Path]:
    """Run the chosen experiments into one report (``report.md``, ``index.html``, ``results.json``, figures)."""
    unknown = [e for e in experiments if e not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {list(RUNNERS)}")
    meta = {"checkpoint": checkpoint or "(random init)", "experiments": ",".join(experiments),
            **{k: (str(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}}
    rep = Report(out_dir, title="mazeagent mechanistic study (probes)", meta=meta)
    st = ProbeStudy(net, params, cfg, rep)
    for e in experiments:
        rep.add(RUNNERS[e](st))
    return rep.write(wandb_mode=wandb_mode)
