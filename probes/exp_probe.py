"""ME2: linear probes for the cheese position.

The primary target is the cheese's world square, the coordinates of the image the net sees; inner coordinates (which
shift with the maze size, so a probe must also infer the size) are reported second. Accuracy is both coordinates
right on held-out mazes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mazeagent.experiments.report import Section
from mazeagent.probes import linear as L
from mazeagent.probes.common import ProbeStudy, at_least, plt, row
from mazeagent.probes.dataset import collect

CURVE = tuple(f"embedder.block{b}.res{r}.resadd_out" for b in (1, 2, 3) for r in (1, 2))
TARGETS = {"world": "cheese", "inner": "cheese_inner"}  # coordinates -> dataset label; the first is primary


def position_probes(acts: np.ndarray, labels: dict[str, np.ndarray], seed: int, top_k: int | None = None) -> dict:
    """The cheese-position probe in world and in inner coordinates on the same rows and split."""
    return {name: L.cheese_position_probe(acts, labels[lab], labels["maze"], top_k, seed)
            for name, lab in TARGETS.items()}


def me2_verdict(probes: dict) -> str:
    """ME2 resolves on the world-coordinate probe (its held-out accuracy CI against 70%)."""
    return at_least(probes["world"]["ci"], L.ME2_THRESHOLD)


def me2(st: ProbeStudy, top_k: int = 256) -> Section:
    cfg = st.cfg
    mz = st.mazes(cfg.n_probe_mazes, 202)
    names = list(CURVE) + ([cfg.layer] if cfg.layer not in CURVE else [])
    ds = collect(st.net, st.params, mz, names, "start", chunk=min(256, len(mz)), progress=cfg.progress)
    main = position_probes(ds.acts[cfg.layer], ds.labels, cfg.seed)
    curve = {name: L.layer_curve(ds.acts, ds.labels, names, top_k=top_k, seed=cfg.seed, target=lab)
             for name, lab in TARGETS.items()}
    conv = {n: L.conv_probe(ds.acts[n], ds.labels[f"cheese_cell_{ds.acts[n].shape[1]}"], ds.labels["maze"],
                            top_k=2, seed=cfg.seed).to_dict() for n in names}
    res = {"layer": cfg.layer, "primary": "world", "dense": main, "curve_top_k": top_k, "curve": curve,
           "n_mazes": len(mz), "conv_probe_top2": conv}
    sec = Section("probes_me2", "ME2 — linear probes for the cheese position", res)
    sec.text("Logistic probes predict the cheese's row and column from the activations with the mouse at the "
             "start; accuracy = both coordinates right on held-out mazes (Wilson 95% CI). Primary: world "
             "coordinates (the square in the image the net sees); second: inner coordinates (relative to the maze, "
             "which moves with its size). Chance: the most common training position.")

    def line(name: str, r: dict) -> list[Any]:
        return [name, r["accuracy"], r["ci"], r["axes"]["row"], r["axes"]["col"], r["chance"]]

    sec.table(["Layer (coordinates)", "Accuracy", "95% CI", "Row acc.", "Col acc.", "Chance"],
              [line(f"{cfg.layer} dense ({c})", main[c]) for c in TARGETS]
              + [line(f"{n} top-{top_k} ({c})", curve[c][n]) for c in TARGETS for n in names])
    sec.table(["Layer", "Accuracy", "95% CI", "Chance", "Shuffled labels", "Top-2 channels"],
              [[n, r["score"], r["ci"], r["chance"], r["shuffled"], r["features"]] for n, r in conv.items()],
              caption="Convolutional probe 'is the cheese in this cell?' (cheese cell vs one random cell, top-2 "
                      "channels by F-test)")
    pl = plt()
    fig, ax = pl.subplots(figsize=(7, 3))
    for c, r in curve.items():
        acc = [r[n]["accuracy"] for n in names]
        err = [[max(0.0, r[n]["accuracy"] - r[n]["ci"][0]) for n in names],
               [max(0.0, r[n]["ci"][1] - r[n]["accuracy"]) for n in names]]
        ax.errorbar(range(len(names)), acc, yerr=err, marker="o", label=c)
    ax.axhline(L.ME2_THRESHOLD, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(names)), [n.replace("embedder.", "") for n in names], rotation=30, fontsize=7)
    ax.set_ylabel("held-out accuracy"), ax.set_ylim(0, 1), ax.legend(fontsize=7)
    st.report.save_figure(sec, fig, "probes_me2_curve",
                          "Cheese-position probe accuracy over layers, world and inner coordinates (dashed: 70%)")
    st.report.score(row("ME2", "held-out accuracy of the (row, col) cheese probe, world coordinates",
                        main["world"]["accuracy"], main["world"]["ci"], me2_verdict(main)))
    return sec
