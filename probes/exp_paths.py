"""Retargeting as procgen-tools measured it, so a published agent can be compared with the posts.

Explicit channel lists are clamped at the destination's activation cell, each at its own magnitude (published: channel
55 at 5.5, the "effective" channels at 2.3, all 11 cheese channels at 1.0). The score of a destination is the
geometric mean, over the squares of the shortest path from the start to it, of the policy's probability of the move
along that path (a vector field restricted to the path). Two baselines bracket it: "normal" (cheese removed, no edit)
and "cheese at target" (no edit, the cheese moved onto the destination). Results are shown against the destination's
divergence from the top-right path. Nets without the published channels use their own best cheese trackers in the
same proportions. ME6's episode-level success stays the headline; this section draws no verdict.
"""
from __future__ import annotations

import numpy as np

from mazeagent.experiments.report import Section
from mazeagent.experiments.stats import bootstrap_ci
from mazeagent.maze.batch import Mazes
from mazeagent.maze.paths import next_step_towards, shortest_paths
from mazeagent.maze.level import world_to_activation
from mazeagent.nets.hooks import DEFAULT_LAYER
from mazeagent.probes import channels as CH
from mazeagent.probes import interventions as I
from mazeagent.probes.common import ProbeStudy, plt, with_cheese
from mazeagent.probes.exp_channels import PUBLISHED_CHANNELS, PUBLISHED_WIDTH
from mazeagent.probes.exp_retarget import DIVERGENCE_BINS, setup
from mazeagent.probes.vfield import field_probs

PUBLISHED_LISTS = (("channel 55", (55,), 5.5), ("effective", (8, 55, 77, 82, 88, 89, 113), 2.3),
                   ("all 11", PUBLISHED_CHANNELS, 1.0))
EFFECTIVE_SHARE = 7 / 11


def parse_channel_lists(text: str) -> tuple[tuple[str, tuple[int, ...], float], ...]:
    """``"55:5.5;8,55,77:2.3"`` -> ((name, channels, value), ...)."""
    out = []
    for part in (p.strip() for p in str(text).split(";") if p.strip()):
        chans, sep, value = part.rpartition(":")
        try:
            ch = tuple(int(c) for c in chans.split(",") if c.strip())
            out.append((f"channel{'s' if len(ch) > 1 else ''} {','.join(map(str, ch))}", ch, float(value)))
        except ValueError:
            ch = ()
        if not sep or not ch:
            raise ValueError(f"channel lists must look like '55:5.5;8,55,77:2.3', got {text!r}")
    if not out:
        raise ValueError(f"no channel list in {text!r}")
    return tuple(out)


def channel_lists(st: ProbeStudy) -> tuple[tuple[str, tuple[int, ...], float], ...]:
    """The lists given, else the published ones on a net that has them, else this net's analogues."""
    width = st.shape[-1]
    lists = st.cfg.retarget_channels
    if lists is None and st.cfg.layer == DEFAULT_LAYER and width == PUBLISHED_WIDTH:
        lists = PUBLISHED_LISTS
    if lists is None:
        order = [int(c) for c in CH.ranking(st.cheese_scores())]
        k = st.n_channels
        eff = max(1, round(k * EFFECTIVE_SHARE))
        lists = ((f"best channel {order[0]}", (order[0],), 5.5), (f"best {eff} channels", tuple(order[:eff]), 2.3),
                 (f"best {k} channels", tuple(order[:k]), 1.0))
    bad = [c for _, ch, _ in lists for c in ch if not 0 <= c < width]
    if bad:
        raise ValueError(f"channels {bad} are not channels of {st.cfg.layer} ({width} channels)")
    return tuple(lists)


def path_probability(st: ProbeStudy, mazes: Mazes, targets: np.ndarray, clamp: tuple[tuple[int, ...], float] | None
                     = None) -> np.ndarray:
    """(M,) geometric mean of P(the shortest path's move) over the squares from each maze's start to ``targets``
    (the destination itself excluded), with ``(channels, value)`` clamped at the destination's cell if given."""
    paths, lengths = shortest_paths(mazes.batch.walls, mazes.mouse, targets)
    moves = next_step_towards(mazes.batch, targets)
    idx = np.repeat(np.arange(len(mazes)), np.maximum(lengths, 0))
    squares = np.concatenate([paths[i, :n] for i, n in enumerate(lengths) if n > 0] or [np.zeros((0, 2), int)])
    hooks = None
    if clamp is not None:
        chans = np.zeros((len(idx), st.shape[-1]), bool)
        chans[:, list(clamp[0])] = True
        hooks = {st.cfg.layer: I.ClampCell(chans, world_to_activation(targets[idx], st.shape[0]),
                                           np.full(len(idx), clamp[1], np.float32))}
    probs = field_probs(st.net, st.params, mazes, idx, squares, hooks, per_row=hooks is not None)
    right = probs[np.arange(len(idx)), moves[idx, squares[:, 0], squares[:, 1]]]
    logs = np.bincount(idx, np.log(np.maximum(right, 1e-12)), minlength=len(mazes))
    return np.where(lengths > 0, np.exp(logs / np.maximum(lengths, 1)), np.nan)


def paths(st: ProbeStudy) -> Section:
    s = setup(st)
    mz, targets, div = s["mazes"], s["targets"], s["divergence"]
    lists = channel_lists(st)
    names = ["normal", "cheese at target", *(n for n, _, _ in lists)]
    score = {n: np.zeros(targets.shape[:2]) for n in names}
    for t in range(targets.shape[1]):
        score["normal"][:, t] = path_probability(st, mz, targets[:, t])
        score["cheese at target"][:, t] = path_probability(st, with_cheese(mz, targets[:, t]), targets[:, t])
        for n, ch, v in lists:
            score[n][:, t] = path_probability(st, mz, targets[:, t], (ch, v))
    normal = score["normal"]
    res: dict = {"layer": st.cfg.layer, "n_mazes": len(mz), "targets_per_maze": int(targets.shape[1]),
                 "channel_lists": [{"name": n, "channels": list(ch), "value": v} for n, ch, v in lists],
                 "conditions": {}, "by_divergence": []}
    for name, p in score.items():
        res["conditions"][name] = {"mean": float(np.nanmean(p)), "ci": bootstrap_ci(np.nanmean(p, 1), n_boot=500,
                                                                                     seed=st.cfg.seed),
                                   "beats_normal": None if name == "normal" else float(np.mean(p > normal))}
    for lo, hi in DIVERGENCE_BINS:
        sel = (div >= lo) & (div <= hi)
        res["by_divergence"].append({"divergence": [lo, hi], "n": int(sel.sum()), **{
            name: float(np.nanmean(p[sel])) if sel.any() else None for name, p in score.items()}})
    sec = Section("probes_paths", "Retargeting, procgen-tools protocol — path probability to the destination", res)
    sec.text(f"The ME6 mazes and destinations (cheese removed). Score = geometric mean over the shortest path from the "
             "start to the destination of the probability of the move along it. Channel lists and magnitudes: "
             + "; ".join(f"{n} ({','.join(map(str, ch))}) at {v:g}" for n, ch, v in lists) + ". Published (scale-4 "
             "agent, 100 seeds): ≈0.9 on the top-right path, < 0.3 by divergence 25; all channels > effective > "
             "channel 55.")
    sec.table(["Condition", "Mean path probability", "95% CI (mazes)", "Share of destinations above normal"],
              [[n, r["mean"], r["ci"], r["beats_normal"]] for n, r in res["conditions"].items()])
    sec.table(["Path divergence", "n"] + list(score),
              [[f"{b['divergence'][0]}–{b['divergence'][1]}" if b["divergence"][1] < 10_000 else
                f"≥{b['divergence'][0]}", b["n"]] + [b[n] for n in score] for b in res["by_divergence"]],
              caption="Mean path probability by divergence from the top-right path")
    pl = plt()
    fig, ax = pl.subplots(figsize=(7, 3.5))
    labels = [f"{b['divergence'][0]}+" for b in res["by_divergence"]]
    for n in score:
        ax.plot(labels, [np.nan if b[n] is None else b[n] for b in res["by_divergence"]], marker="o", label=n)
    ax.set_xlabel("path divergence from the top-right path"), ax.set_ylabel("path probability"), ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    st.report.save_figure(sec, fig, "probes_paths_divergence", "Path probability to the destination vs its divergence "
                                                               "from the top-right path")
    return sec
