"""Retargeting by clamping activations near a destination: ME6 (how small an edit retargets ≥ 75% of mazes), O1 (one
interpretable activation steers) and O3 (retargeting keeps maze-solving competence).

Cheese removed, as in the published runs; each maze gets random destinations; an episode succeeds when the mouse
reaches the destination within the horizon. Every destination is played ``retarget_episodes`` times unedited and
edited: a maze counts as retargeted when the edited agent reaches at least half of its destinations and reaches them
more often than the unedited agent does on its own (a destination on the way to the top-right is no evidence of
steering).

ME6's budgets mean "at most X of the layer's activations": several edit sizes are tried, and each budget is resolved
from the best tried edit at or under it, so success can only grow with X.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from mazeagent.experiments import verdicts as V
from mazeagent.experiments.report import Section
from mazeagent.experiments.stats import bootstrap_ci, proportion
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import world_to_activation
from mazeagent.probes import channels as CH
from mazeagent.probes import interventions as I
from mazeagent.probes.common import ProbeStudy, at_least, demonstrated, finite, got, plt, row, with_cheese

ME6_IDS = {1e-4: "ME6@0.01", 1e-3: "ME6@0.1", 1e-2: "ME6@1", 1e-1: "ME6@10"}  # verdicts.PREDICTIONS ids
ME6_SHARE = 0.75  # of mazes
DIVERGENCE_BINS = ((0, 0), (1, 5), (6, 10), (11, 20), (21, 10_000))


def setup(st: ProbeStudy) -> dict:
    """Mazes without cheese, ``targets_per_maze`` destinations each (open, not the start) and their divergence
    from the top-right path; cached with every run of :func:`success`."""
    if "retarget" in st.cache:
        return st.cache["retarget"]
    cfg = st.cfg
    mz = st.mazes(cfg.n_retarget_mazes, 404).without_cheese()
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


def success(st: ProbeStudy, name: str, order: np.ndarray | None, n_entries: int, cheese_at_target: bool = False
            ) -> np.ndarray:
    """(mazes, targets, episodes) bool: did the mouse reach each destination, with ``n_entries`` activations
    (channels ``order`` first, nearest the destination's cell first) clamped to the retarget value; ``order=None``
    plays the unedited agent, ``cheese_at_target`` puts the cheese on the destination. Cached by ``name``."""
    s = setup(st)
    if name in s["runs"]:
        return s["runs"][name]
    mz, targets, k = s["mazes"], s["targets"], st.cfg.retarget_episodes
    out = np.zeros((*targets.shape[:2], k), bool)
    for t in range(targets.shape[1]):
        m = with_cheese(mz, targets[:, t]) if cheese_at_target else _ending_at(mz, targets[:, t])
        if order is None:
            pol = st.policy()
        else:
            cells = world_to_activation(targets[:, t], st.shape[0])
            masks = np.stack([I.budget_mask(order, tuple(c), n_entries, st.shape) for c in cells])
            pol = st.policy({st.cfg.layer: I.SetMasked(masks, np.full((len(mz), 1, 1, 1), st.cfg.retarget_value,
                                                                       np.float32))}, per_maze=True)
        for e in range(k):  # the same sampling seeds for every condition: paired comparisons
            out[:, t, e] = got(st.play(pol, m, seed_offset=1000 * t + e), "cheese", st.cfg.horizon)
    s["runs"][name] = out
    return out


def _ending_at(mazes: Mazes, squares: np.ndarray) -> Mazes:
    """The cheese-less mazes with the episode ending on ``squares`` (the rollout's goal) but nothing drawn there."""
    from dataclasses import replace

    return replace(mazes, cheese=np.asarray(squares, mazes.cheese.dtype))


def retargeted_mazes(edited: np.ndarray, unedited: np.ndarray) -> np.ndarray:
    """(M,) bool from (M, T, K) outcomes: a maze is retargeted when the edited agent reaches at least half of its
    destinations' episodes and reaches them more often than the unedited agent does."""
    e, u = edited.mean((1, 2)), unedited.mean((1, 2))
    return (e >= 0.5) & (e > u)


def budget_caps(budgets: tuple[float, ...], n_activations: int) -> dict[float, int]:
    """Largest number of entries each budget allows: "at most X" of the layer, rounded down."""
    return {b: int(math.floor(b * n_activations + 1e-9)) for b in budgets}


def tried_sizes(caps: dict[float, int], n_channels: int) -> list[int]:
    """Edit sizes to try: one activation, the cheese channels at the destination's cell, and each budget's cap."""
    top = max(caps.values())
    return sorted({n for n in (1, n_channels, *caps.values()) if 1 <= n <= top})


def resolve_budgets(caps: dict[float, int], maze_ok: dict[int, np.ndarray]) -> dict[float, dict]:
    """Each budget from the best tried edit at or under its cap (by the lower CI bound of the share of mazes
    retargeted): monotone in the budget by construction. A cap below one activation tries nothing."""
    out = {}
    for b, cap in caps.items():
        cand = {n: proportion(ok) for n, ok in maze_ok.items() if n <= cap}
        if not cand:
            out[b] = {"cap": cap, "entries": None, "maze_share": None, "verdict": V.INCONCLUSIVE,
                      "note": "budget below one activation of this layer"}
            continue
        n = max(cand, key=lambda k: (cand[k]["ci"][0], cand[k]["rate"], -k))
        verdict, note = demonstrated(finite(cand[n]["ci"]) and cand[n]["ci"][0] >= ME6_SHARE)
        out[b] = {"cap": cap, "entries": n, "maze_share": cand[n], "verdict": verdict, "note": note}
    return out


def impossible_verdict(resolved: dict[float, dict]) -> str:
    """ME6@impossible: contradicted by any demonstrated budget; a failed search cannot support it."""
    return V.CONTRADICTED if any(r["verdict"] == V.SUPPORTED for r in resolved.values()) else V.INCONCLUSIVE


def me6(st: ProbeStudy) -> Section:
    cfg = st.cfg
    s = setup(st)
    order = CH.ranking(st.cheese_scores())
    ctrl = np.random.default_rng(cfg.seed).permutation(len(order))
    base = success(st, "none", None, 0)
    caps = budget_caps(cfg.budgets, int(np.prod(st.shape)))
    edits, edited, maze_ok = [], {}, {}
    for n in tried_sizes(caps, st.n_channels):
        ok, cok = success(st, f"entries_{n}", order, n), success(st, f"control_{n}", ctrl, n)
        edited[n], maze_ok[n] = ok, retargeted_mazes(ok, base)
        edits.append({"entries": n, "fraction": n / np.prod(st.shape), "maze_share": proportion(maze_ok[n]),
                      "destinations": proportion(ok.ravel()),
                      "control_maze_share": proportion(retargeted_mazes(cok, base)),
                      "control_destinations": proportion(cok.ravel())})
    resolved = resolve_budgets(caps, maze_ok)
    for b, r in resolved.items():
        if b in ME6_IDS:
            share = r["maze_share"]
            st.report.score(row(ME6_IDS[b], f"share of mazes retargeted by the best edit of at most {b:.2%} of the "
                                f"activations ({r['entries'] or 0} entries; {r['note']})",
                                share["rate"] if share else None, share["ci"] if share else None, r["verdict"],
                                existence=r["note"]))
    impossible = impossible_verdict(resolved)
    st.report.score(row("ME6@impossible", f"some budget up to {max(cfg.budgets):.2%} retargets ≥ 75% of mazes "
                        "(contradicts); none found is inconclusive", None, None, impossible))
    div = s["divergence"]
    biggest = max(edited)
    by_div = []
    for lo, hi in DIVERGENCE_BINS:
        sel = (div >= lo) & (div <= hi)
        by_div.append({"divergence": [lo, hi], "n": int(sel.sum()),
                       **{k: proportion(a.mean(-1)[sel] > 0.5) for k, a in (
                           ("unedited", base), ("one_entry", edited[min(edited)]), ("largest", edited[biggest]))}})
    res = {"n_mazes": len(s["mazes"]), "targets_per_maze": int(div.shape[1]), "episodes": cfg.retarget_episodes,
           "value": cfg.retarget_value, "layer": cfg.layer, "unedited_destinations": proportion(base.ravel()),
           "edits": edits, "budgets": [{"fraction": b, **r} for b, r in resolved.items()], "by_divergence": by_div,
           "channel_order": order[:16].tolist()}
    sec = Section("probes_me6", "ME6 — retargeting by editing at most a fraction of activations", res)
    sec.text(f"Cheese removed; each of {res['n_mazes']} mazes gets {res['targets_per_maze']} random destinations, "
             f"each played {cfg.retarget_episodes}× unedited and edited. An edit of n entries clamps the n entries of "
             f"`{cfg.layer}` nearest the destination's cell (best cheese-tracking channels first) to "
             f"{cfg.retarget_value}. A maze is retargeted when the edited agent reaches at least half of its destinations "
             "and reaches them more often than the unedited agent. Budget X is resolved from the best tried edit of "
             "at most X of the activations; a budget that no tried edit demonstrates is not demonstrated "
             f"(inconclusive). Unedited agent: {res['unedited_destinations']['rate']:.3f} of destinations reached.")
    sec.table(["Entries", "Fraction", "Mazes retargeted", "95% CI", "Destinations reached", "Control mazes",
               "Control destinations"],
              [[e["entries"], e["fraction"], e["maze_share"]["rate"], e["maze_share"]["ci"], e["destinations"]["rate"],
                e["control_maze_share"]["rate"], e["control_destinations"]["rate"]] for e in edits],
              caption="Tried edits (control: the same sizes on a random channel order)")
    sec.table(["Budget", "Cap (entries)", "Best edit at or under it", "Mazes retargeted", "95% CI", "Verdict"],
              [[f"{b:.2%}", r["cap"], r["entries"], r["maze_share"]["rate"] if r["maze_share"] else None,
                r["maze_share"]["ci"] if r["maze_share"] else None, f"{r['verdict']} ({r['note']})"]
               for b, r in resolved.items()])
    sec.table(["Path divergence", "n", "Unedited", "One entry", f"{biggest} entries"],
              [[f"{b['divergence'][0]}–{b['divergence'][1]}" if b["divergence"][1] < 10_000 else
                f"≥{b['divergence'][0]}", b["n"], b["unedited"]["rate"], b["one_entry"]["rate"], b["largest"]["rate"]]
               for b in by_div], caption="Destinations reached in most episodes, by divergence from the top-right path")
    _figure(st, sec, edits, resolved, by_div)
    return sec


def _figure(st: ProbeStudy, sec: Section, edits: list[dict], resolved: dict, by_div: list[dict]) -> None:
    pl = plt()
    fig, axes = pl.subplots(1, 2, figsize=(10, 3.5))
    x = [e["fraction"] for e in edits]
    for key, lab in (("maze_share", "mazes retargeted"), ("control_maze_share", "control (random channels)")):
        y = [e[key]["rate"] for e in edits]
        err = [[max(0.0, e[key]["rate"] - e[key]["ci"][0]) for e in edits],
               [max(0.0, e[key]["ci"][1] - e[key]["rate"]) for e in edits]]
        axes[0].errorbar(x, y, yerr=err, marker="o", label=lab)
    bx = [b for b, r in resolved.items() if r["maze_share"]]
    axes[0].step(bx, [resolved[b]["maze_share"]["rate"] for b in bx], where="post", color="k", lw=1,
                 label="best at or under budget")
    axes[0].axhline(ME6_SHARE, color="k", ls="--", lw=1)
    axes[0].set_xscale("log"), axes[0].set_xlabel("fraction of activations edited"), axes[0].legend(fontsize=7)
    labels = [f"{b['divergence'][0]}+" for b in by_div]
    for key in ("unedited", "one_entry", "largest"):
        axes[1].plot(labels, [b[key]["rate"] for b in by_div], marker="o", label=key.replace("_", " "))
    axes[1].set_xlabel("path divergence from the top-right path"), axes[1].legend(fontsize=7)
    st.report.save_figure(sec, fig, "probes_me6_budget", "Retargeting vs edit size (left) and vs path divergence "
                                                         "(right)")


def o1(st: ProbeStudy) -> Section:
    """One activation: the best cheese-tracking channel at the destination's cell; supported when it clears both the
    unedited agent and a random channel, contradicted when it does worse than the unedited agent."""
    from mazeagent.probes import vfield

    order = CH.ranking(st.cheese_scores())
    ctrl = I.random_channels(order[:1], len(order), 1, st.cfg.seed)
    base, one, rnd = (success(st, "none", None, 0), success(st, "entries_1", order, 1),
                      success(st, "single_control", ctrl, 1))
    res = {"channel": int(order[0]), "control_channel": int(ctrl[0]), "value": st.cfg.retarget_value,
           "unedited": proportion(base.ravel()), "single_activation": proportion(one.ravel()),
           "control": proportion(rnd.ravel())}
    sec = Section("probes_o1", "O1 — a single interpretable steering activation", res)
    sec.table(["Condition", "Destinations reached", "95% CI"],
              [[k, res[k]["rate"], res[k]["ci"]] for k in ("unedited", "single_activation", "control")])
    verdict, note = o1_verdict(res["single_activation"]["ci"], res["unedited"]["ci"], res["control"]["ci"])
    st.report.score(row("O1", f"destinations reached with channel {order[0]} clamped at one cell ({note})",
                        res["single_activation"]["rate"], res["single_activation"]["ci"], verdict, existence=note))
    s = setup(st)
    t = s["targets"][0, 0]
    shown = _ending_at(s["mazes"], s["targets"][:, 0]).take(np.array([0]))  # the plot marks the destination
    hooks = {st.cfg.layer: I.clamp(order[0], world_to_activation(t[None], st.shape[0])[0], st.cfg.retarget_value,
                                   st.shape)}
    a = vfield.vector_field(st.net, st.params, shown, 0)
    b = vfield.vector_field(st.net, st.params, shown, 0, hooks)
    path, rel = st.figure("o1_vfield")
    vfield.plot_comparison(a, b, shown, str(path), f"channel {order[0]} clamped to {st.cfg.retarget_value} at the "
                                                     "yellow square")
    sec.figure(rel, "Vector field without and with the single-activation edit, and their difference")
    sec.text(f"Verdict: {verdict} ({note}; the edited rate's CI must clear both the unedited agent and a random "
             "channel; it is contradicted when it lies below the unedited agent's).")
    return sec


def o1_verdict(edited: Any, unedited: Any, control: Any) -> tuple[str, str]:
    """O1 from the destinations-reached CIs of the single-activation edit, the unedited agent and a random channel."""
    if edited[0] > max(unedited[1], control[1]):
        return demonstrated(True)
    if edited[1] < unedited[0]:
        return V.CONTRADICTED, "the edit does worse than the unedited agent"
    return demonstrated(False)


def o3(st: ProbeStudy) -> Section:
    """Competence: retargeted success vs the original agent's success at reaching a cheese on the same squares."""
    cfg = st.cfg
    order = CH.ranking(st.cheese_scores())
    base = success(st, "none", None, 0)
    sizes = tried_sizes(budget_caps(cfg.budgets, int(np.prod(st.shape))), st.n_channels)
    best = max(sizes, key=lambda n: proportion(retargeted_mazes(success(st, f"entries_{n}", order, n), base))["rate"])
    edited = success(st, f"entries_{best}", order, best).mean(-1)
    cheese_ok = success(st, "cheese_at_target", None, 0, cheese_at_target=True).mean(-1)
    pair = np.stack([edited.mean(1), cheese_ok.mean(1)], 1)  # per maze: mazes are the independent units
    diff = float(pair[:, 0].mean() - pair[:, 1].mean())
    ci = bootstrap_ci(pair, lambda a: a[:, 0].mean() - a[:, 1].mean(), n_boot=500, seed=cfg.seed)
    res = {"entries": best, "retargeted": float(edited.mean()), "original_to_cheese": float(cheese_ok.mean()),
           "difference": diff, "difference_ci": ci, "margin": 0.10}
    sec = Section("probes_o3", "O3 — retargeting keeps maze-solving competence", res)
    sec.text(f"The same destinations twice: reached by the edited agent (cheese removed, the tried edit that "
             f"retargets most mazes: {best} entries) and by the original agent when the cheese is put there. "
             "Competence is kept when the edited agent is at most 10 points worse (maze-level bootstrap CI).")
    sec.table(["Condition", "Reached"], [["edited agent → destination", res["retargeted"]],
                                         ["original agent → cheese on the destination", res["original_to_cheese"]]])
    sec.table(["Edited − original", "95% CI"], [[diff, ci]])
    st.report.score(row("O3", "edited success − original cheese success (≥ −0.10 resolves)", diff, ci,
                        at_least(ci, -0.10)))
    return sec
