"""Update-rule conformity (U1–U3): how often the policy's argmax move is the value-maximising neighbour.

For every open square of a maze (the mouse placed there facing left, the cheese in place) we read the policy's
grouped distribution and the value head. The value-maximising move is the open neighbour with the highest value;
a neighbour holding the cheese beats every other (its reward ends the episode; the network never sees the mouse
on the cheese). Conformity = the argmax move is that move; we also report the share of squares where
the policy puts at least 25/50/75/95/99.5% on it. U1: decision squares; U2: all squares; U3: squares inside the
top-right 5×5 region (where training put the cheese). "Argmax move" = the move group of the argmax of the
15 logits, i.e. the move greedy play (``--greedy``) makes.
"""
from __future__ import annotations

import numpy as np

from experiments import stats, verdicts
from experiments.report import Report, Section
from experiments.rollouts import Mazes, evaluate, grouped_probs
from mazeagent.nets import ACTION_TO_GROUP

THRESHOLDS = (0.25, 0.5, 0.75, 0.95, 0.995)
SETS = {"U1": "decision squares", "U2": "all squares", "U3": "top-right 5×5 region"}


def square_table(policy, mazes: Mazes, idx: np.ndarray, key) -> dict[str, np.ndarray]:
    """Per (maze, open non-cheese square): conformity, probability on the best move, and which sets it is in."""
    from mazeagent.maze.geometry import DELTAS

    g = mazes.geometry
    walls = mazes.batch.walls
    m_idx, squares = [], []
    for i in idx:
        sq = np.argwhere(~walls[i])
        sq = sq[~(sq == mazes.cheese[i]).all(axis=1)]
        m_idx.append(np.full(len(sq), i))
        squares.append(sq)
    m_idx, squares = np.concatenate(m_idx), np.concatenate(squares).astype(np.int32)
    logits, values = evaluate(policy, mazes, m_idx, squares, np.zeros(len(m_idx), bool), key, with_value=True)
    W = walls.shape[-1]
    vmap = np.full((len(mazes), W, W), -np.inf)
    vmap[m_idx, squares[:, 0], squares[:, 1]] = values
    cheese = mazes.cheese
    vmap[np.arange(len(mazes))[cheese[:, 0] >= 0], cheese[cheese[:, 0] >= 0, 0],
         cheese[cheese[:, 0] >= 0, 1]] = np.inf
    nb_val = np.full((len(m_idx), 4), -np.inf)
    for k, (dr, dc) in enumerate(DELTAS):
        r, c = squares[:, 0] + dr, squares[:, 1] + dc
        ok = (r >= 0) & (r < W) & (c >= 0) & (c < W)
        nb_val[ok, k] = vmap[m_idx[ok], r[ok], c[ok]]
    best = nb_val.argmax(axis=1)  # geometry's MOVES order = the first four policy groups
    p = grouped_probs(logits)
    ds = g.decision_square[m_idx]
    greedy = ACTION_TO_GROUP[np.argmax(logits, axis=1)]  # the move greedy play makes (argmax of the 15 logits)
    return {"maze": m_idx, "square": squares, "conform": greedy == best,
            "p_best": p[np.arange(len(p)), best],
            "U1": (squares == ds).all(axis=1), "U2": np.ones(len(m_idx), bool),
            "U3": g.region[m_idx, squares[:, 0], squares[:, 1]]}


def section(policy, mazes: Mazes, idx: np.ndarray, rep: Report, key) -> Section:
    sec = Section("conformity", "U1–U3 — conformity with the update rule")
    if not hasattr(policy, "logits_value"):
        sec.text("Needs a network policy with a value head; skipped.")
        return sec
    t = square_table(policy, mazes, idx, key)
    res: dict = {"n_mazes": int(len(idx)), "n_squares": int(len(t["maze"]))}
    rows = []
    for u, name in SETS.items():
        sel = t[u]
        r = stats.proportion(t["conform"][sel])
        share = {str(th): float((t["p_best"][sel] >= th).mean()) if sel.any() else None for th in THRESHOLDS}
        res[u] = {"conformity": r, "share_p_best_at_least": share}
        rep.score(verdicts.scorecard_row(u, f"argmax = value-maximising move, {name} (n={r['n']})", r["rate"],
                                         r["ci"], verdicts.NO_FORECAST))
        rows.append([u, name, r["rate"], r["ci"], r["n"]] + [share[str(th)] for th in THRESHOLDS])
    sec.results = res
    sec.text(f"{len(idx)} mazes, every open square but the cheese's, mouse facing left.")
    sec.table(["ID", "Squares", "Conformity", "95% CI", "n"] + [f"P(best) ≥ {th}" for th in THRESHOLDS], rows)
    return sec
