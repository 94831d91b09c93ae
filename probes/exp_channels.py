"""O2: channels after the first IMPALA block that visibly track the cheese or the top-right square.

Our tracking criterion (:mod:`mazeagent.probes.channels`) is applied to every channel of the residual adds of blocks 2 and
3. The count per layer gets a maze-bootstrap interval. On a net that has the published 11 cheese channels (a
128-wide ``block2.res1.resadd_out``) they are scored too, which checks that the threshold finds what was found by eye.
The "at least 5" sub-forecast is supported when one layer's interval lies at or above 5; since every channel of every
layer is scored, the search is exhaustive for this criterion, and intervals below 5 at every layer contradict it.
"""
from __future__ import annotations

import numpy as np

from mazeagent.experiments import verdicts as V
from mazeagent.experiments.report import Section
from mazeagent.nets.hooks import DEFAULT_LAYER
from mazeagent.probes import channels as CH
from mazeagent.probes.common import ProbeStudy, plt, row

PUBLISHED_CHANNELS = (7, 8, 42, 44, 55, 77, 82, 88, 89, 99, 113)
PUBLISHED_WIDTH = 128
O2_AT_LEAST = 5  # the forecaster's sub-forecast: at least 5 such channels (credence 0.80)


def published_check(scores: np.ndarray, layer: str) -> dict | None:
    """Our criterion on the published cheese channels, when this layer is theirs (else None)."""
    if layer != DEFAULT_LAYER or len(scores) != PUBLISHED_WIDTH:
        return None
    s = {c: float(scores[c]) for c in PUBLISHED_CHANNELS}
    return {"scores": s, "meeting_threshold": sum(v >= CH.O2_THRESHOLD for v in s.values()),
            "of": len(PUBLISHED_CHANNELS)}


def o2_verdict(counts: dict[str, dict]) -> tuple[str, str, str]:
    """(verdict, note, best layer) from the channels tracking the cheese or the top-right: supported when some
    layer's interval lies at or above :data:`O2_AT_LEAST`, contradicted when every layer's lies below it (every
    channel was scored: an exhaustive search for this criterion)."""
    best = max(counts, key=lambda nm: (counts[nm]["either"]["ci"][0], counts[nm]["either"]["count"]))
    if counts[best]["either"]["ci"][0] >= O2_AT_LEAST:
        return V.SUPPORTED, "demonstrated", best
    if all(c["either"]["ci"][1] < O2_AT_LEAST for c in counts.values()):
        return V.CONTRADICTED, "fewer at every layer, all channels scored", best
    return V.INCONCLUSIVE, "interval straddles the bound", best


def o2(st: ProbeStudy) -> Section:
    tr = st.tracking()
    layers = tr["layers"]
    counts = {}
    for k, nm in enumerate(layers):
        hits, n = tr["cheese"][nm]
        counts[nm] = CH.count_interval(hits, n, tr["top_right"][nm], seed=st.cfg.seed + k)
    scores, tr_scores = st.cheese_scores(), st.top_right_scores()
    top = CH.ranking(scores)[:st.n_channels]
    size = st.shape[0]
    published = published_check(scores, st.cfg.layer)
    verdict, note, best = o2_verdict(counts)
    res = {"layer": st.cfg.layer, "layers": list(layers), "threshold": CH.O2_THRESHOLD, "tol_cells": CH.TOL,
           "n_mazes": tr["n_mazes"], "placements": st.cfg.placements, "counts": counts, "best_layer": best,
           "chance_rate": CH.chance_rate(size), "top_cheese_channels": top.tolist(),
           "top_cheese_scores": scores[top].tolist(), "n_channels": len(scores),
           "published_cheese_channels": list(PUBLISHED_CHANNELS), "published_check": published}
    sec = Section("probes_o2", "O2 — channels that track the cheese and the top-right", res)
    sec.text(f"Criterion: a channel is trivially interpretable when, with the cheese moved over up to "
             f"{st.cfg.placements} squares in each of {tr['n_mazes']} mazes, its most salient cell sits within "
             f"{CH.TOL} cell of the cheese in ≥ {CH.O2_THRESHOLD:.0%} of placements (chance ≈ "
             f"{res['chance_rate']:.1%} at `{st.cfg.layer}`); top-right: the same for the top-right square across "
             "mazes of different sizes. Counts carry a 95% interval from resampling the discovery mazes.")
    sec.table(["Layer", "Channels", "Cheese", "95% interval", "Top-right", "95% interval", "Either", "95% interval"],
              [[nm, len(tr["top_right"][nm][0])] + [x for k in ("cheese", "top_right", "either")
                                                     for x in (counts[nm][k]["count"], counts[nm][k]["ci"])]
               for nm in layers], caption="Channels meeting the criterion, per layer after block 1")
    sec.table(["Channel", "Cheese tracking", "Top-right tracking"], [[int(c), scores[c], tr_scores[c]] for c in top],
              caption=f"Best cheese trackers at {st.cfg.layer}")
    if published:
        sec.table(["Published channel", "Our cheese-tracking score"], [[c, v] for c, v in published["scores"].items()],
                  caption=f"The 11 published cheese channels under our criterion: {published['meeting_threshold']} "
                          "meet it")
    else:
        sec.text(f"The published 11 cheese channels belong to a {PUBLISHED_WIDTH}-wide `{DEFAULT_LAYER}`; this "
                 f"net's `{st.cfg.layer}` has {len(scores)} channels, so they cannot be scored here.")
    pl = plt()
    fig, ax = pl.subplots(figsize=(8, 3))
    ax.bar(np.arange(len(scores)), np.sort(scores)[::-1], color="goldenrod", label="cheese")
    ax.plot(np.sort(tr_scores)[::-1], color="steelblue", label="top-right")
    ax.axhline(CH.O2_THRESHOLD, color="k", ls="--", lw=1)
    ax.axhline(res["chance_rate"], color="grey", ls=":", lw=1)
    ax.set_xlabel("channel rank"), ax.set_ylabel("tracking score"), ax.legend()
    st.report.save_figure(sec, fig, "probes_o2_channels",
                          f"Tracking scores at {st.cfg.layer}, channels sorted; dashed: O2 threshold, dotted: chance")
    b = counts[best]["either"]
    st.report.score(row("O2", f"channels tracking the cheese or the top-right at the best layer after block 1 "
                        f"({best}; sub-forecast 'at least {O2_AT_LEAST}', credence 0.80; {note})", b["count"],
                        b["ci"], verdict, 0.80, existence=note))
    sec.text(f"Best layer {best}: {b['count']} channels (95% interval {b['ci'][0]}–{b['ci'][1]}); verdict "
             f"(supported at ≥ {O2_AT_LEAST}, contradicted below it at every layer): {verdict} ({note}).")
    return sec
