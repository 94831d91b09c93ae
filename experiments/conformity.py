"""Update-rule conformity (U1–U3): how often the policy's argmax move is the value-maximising neighbour.

At a queried square (the mouse placed there facing left, the cheese in place) we read the policy's grouped
distribution, and the value head at each open neighbour. The value-maximising move is the open neighbour with the
highest value; a neighbour holding the cheese beats every other (its reward ends the episode; the network never
sees the mouse on the cheese). Conformity = the argmax move is that move; we also report the share of squares where
the policy puts at least 25/50/75/95/99.5% on it. "Argmax move" = the move group of the argmax of the 15 logits,
i.e. the move greedy play (``--greedy``) makes.

U1 is measured at the decision square of every maze that has one (one square per maze, so hundreds of mazes in a
study). U2 (all squares) and U3 (squares inside the top-right 5×5 region) use every open square of a random sample
of mazes. Squares of one maze are correlated, so every interval is a maze-clustered bootstrap.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from mazeagent.experiments import stats, verdicts
from mazeagent.experiments.policies import Policy, ValuePolicy
from mazeagent.experiments.report import Report, Section
from mazeagent.experiments.rollouts import evaluate, grouped_probs
from mazeagent.maze.batch import Mazes
from mazeagent.nets import ACTION_TO_GROUP

THRESHOLDS = (0.25, 0.5, 0.75, 0.95, 0.995)
SETS = {"U1": "decision squares (every maze with one)", "U2": "all squares", "U3": "top-right 5×5 region"}
QUERY_MAZES = 256  # mazes rendered per policy query (bounds the static frames held at once)
# (maze indices, world squares) -> (logits (N, 15), values (N,)) with the mouse there facing left
Query = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def net_query(policy: ValuePolicy, mazes: Mazes, key: Any) -> Query:
    """The network's logits and value head, evaluated a few hundred mazes at a time."""
    def query(m_idx: np.ndarray, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, values = np.zeros((len(m_idx), 15), np.float32), np.zeros(len(m_idx), np.float32)
        uniq = np.unique(m_idx)
        for s in range(0, len(uniq), QUERY_MAZES):
            rows = np.nonzero(np.isin(m_idx, uniq[s:s + QUERY_MAZES]))[0]
            logits[rows], values[rows] = evaluate(policy, mazes, m_idx[rows], squares[rows],
                                                  np.zeros(len(rows), bool), key, with_value=True)
        return logits, values

    return query


def conformity_at(mazes: Mazes, m_idx: np.ndarray, squares: np.ndarray, query: Query) -> dict[str, np.ndarray]:
    """Per queried (maze, square): does the argmax move go to the value-maximising open neighbour, and the
    probability on that move. Only the queried squares and their open neighbours are evaluated."""
    from mazeagent.maze.paths import DELTAS

    m_idx, squares = np.asarray(m_idx), np.asarray(squares, np.int32)
    walls = mazes.batch.walls
    W = walls.shape[-1]
    cheese = mazes.cheese[m_idx]
    nb = squares[:, None, :] + DELTAS[None]  # (N, 4, 2)
    inside = ((nb >= 0) & (nb < W)).all(-1)
    r, c = np.clip(nb[..., 0], 0, W - 1), np.clip(nb[..., 1], 0, W - 1)
    open_ = inside & ~walls[m_idx[:, None], r, c]
    is_cheese = open_ & (nb == cheese[:, None, :]).all(-1)
    need_m = np.concatenate([m_idx, np.repeat(m_idx, 4)[(open_ & ~is_cheese).ravel()]])
    need_sq = np.concatenate([squares, nb.reshape(-1, 2)[(open_ & ~is_cheese).ravel()]])
    keys = (need_m.astype(np.int64) * W + need_sq[:, 0]) * W + need_sq[:, 1]
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    logits, values = query(need_m[first], need_sq[first])
    nb_keys = (m_idx[:, None].astype(np.int64) * W + r) * W + c
    nb_val = np.where(open_, values[np.searchsorted(uniq, nb_keys).clip(0, len(uniq) - 1)], -np.inf)
    nb_val = np.where(is_cheese, np.inf, nb_val)
    best = nb_val.argmax(axis=1)  # paths.MOVES order = the first four policy groups
    own = logits[inv[:len(m_idx)]]
    greedy = ACTION_TO_GROUP[np.argmax(own, axis=1)]
    p = grouped_probs(own)
    return {"conform": greedy == best, "p_best": p[np.arange(len(p)), best]}


def all_squares(mazes: Mazes, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maze index, world square) of every open square but the cheese's, for mazes ``idx``."""
    walls = mazes.batch.walls
    m_idx, squares = [np.zeros(0, int)], [np.zeros((0, 2), np.int32)]
    for i in idx:
        sq = np.argwhere(~walls[i])
        sq = sq[~(sq == mazes.cheese[i]).all(axis=1)]
        m_idx.append(np.full(len(sq), i))
        squares.append(sq.astype(np.int32))
    return np.concatenate(m_idx), np.concatenate(squares)


def section(policy: Policy, mazes: Mazes, idx: np.ndarray, rep: Report, key: Any, query: Query | None = None,
            n_boot: int = 1000, seed: int = 0) -> Section:
    """U1 at every decision square of ``mazes``; U2/U3 at every square of the sample ``idx``. ``query`` replaces
    the network (a test's fake agent)."""
    sec = Section("conformity", "U1–U3 — conformity with the update rule")
    if query is None:
        if not isinstance(policy, ValuePolicy):
            sec.text("Needs a network policy with a value head; skipped.")
            return sec
        query = net_query(policy, mazes, key)
    g = mazes.geometry
    ds_mazes = np.nonzero(g.decision_square[:, 0] >= 0)[0]
    sets: dict[str, tuple[np.ndarray, dict]] = {}
    if len(ds_mazes):
        sets["U1"] = (ds_mazes, conformity_at(mazes, ds_mazes, g.decision_square[ds_mazes], query))
    m_all, sq_all = all_squares(mazes, np.asarray(idx, int))
    if len(m_all):
        t = conformity_at(mazes, m_all, sq_all, query)
        sets["U2"] = (m_all, t)
        sel = g.region[m_all, sq_all[:, 0], sq_all[:, 1]]
        sets["U3"] = (m_all[sel], {k: v[sel] for k, v in t.items()})
    res: dict = {"n_decision_square_mazes": int(len(ds_mazes)), "n_sample_mazes": int(len(idx)),
                 "n_sample_squares": int(len(m_all))}
    rows = []
    for u, name in SETS.items():
        if u not in sets or not len(sets[u][0]):
            rep.score(verdicts.scorecard_row(u, f"no {name} to measure", None, None, verdicts.NOT_MEASURED))
            continue
        clusters, t = sets[u]
        r = stats.clustered_proportion(t["conform"], clusters, n_boot=n_boot, seed=seed)
        share = {str(th): float((t["p_best"] >= th).mean()) for th in THRESHOLDS}
        res[u] = {"conformity": r, "share_p_best_at_least": share}
        rep.score(verdicts.scorecard_row(u, f"argmax = value-maximising move, {name} (n={r['n']} squares in "
                                         f"{r['clusters']} mazes)", r["rate"], r["ci"], verdicts.NO_FORECAST))
        rows.append([u, name, r["rate"], r["ci"], r["n"], r["clusters"]] + [share[str(th)] for th in THRESHOLDS])
    sec.results = res
    sec.text(f"U1: the decision square of each of the {len(ds_mazes)} mazes that have one. U2/U3: every open square "
             f"but the cheese's in {len(idx)} random mazes. Mouse facing left; 95% intervals resample whole mazes. "
             "No numbers were published for these.")
    sec.table(["ID", "Squares", "Conformity", "95% CI (maze bootstrap)", "n squares", "n mazes"]
              + [f"P(best) ≥ {th}" for th in THRESHOLDS], rows)
    return sec
