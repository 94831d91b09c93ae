"""Verdict rules on synthetic data whose truth is known: B2 without the unmeasurable left-wall sub-claim, F2/F4/F6
resolved only where every reparameterisation agrees, U1 at every decision square with maze-clustered intervals,
B1's three readings of "away from the top-right", the existence rule, and the published-numbers file."""
import numpy as np
import pandas as pd
import pytest

from mazeagent.experiments import behaviour, conformity, published, stats, verdicts
from mazeagent.experiments.report import Report
from mazeagent.experiments.verdicts import CONTRADICTED, INCONCLUSIVE, NOT_DEMONSTRATED, SUPPORTED
from mazeagent.maze.geometry import PREDICTION_FACTORS
from mazeagent.maze.landmarks import QUADRANTS

FAST = stats.StatsConfig(n_splits=12, n_boot=40, seed=0)
F = PREDICTION_FACTORS


def _outcomes(df: pd.DataFrame, got: np.ndarray) -> pd.DataFrame:
    for h in (256, 500):
        df[f"cheese_{h}"] = got
        df[f"top_right_{h}"] = df[f"region_{h}"] = ~got
        df[f"neither_{h}"] = np.zeros(len(got), bool)
    return df


@pytest.fixture(scope="module")
def f6_policy(tmp_path_factory):
    """A policy whose cheese rate depends on steps(D, top-right) (F6) only, in mazes where F4 = F2 + F6 exactly
    as in every tree maze; B2's three measurable attributes are planted with the forecast signs, and smaller mazes
    get more cheese (which made the left-wall sub-claim, and so B2, come out contradicted)."""
    rng = np.random.default_rng(0)
    n = 2500
    cols = {name: rng.normal(5, 2, n) for name in F.values()}
    cols[F["F2"]] = rng.integers(1, 30, n).astype(float)
    cols[F["F6"]] = rng.integers(1, 30, n).astype(float)
    cols[F["F4"]] = cols[F["F2"]] + cols[F["F6"]]
    size = rng.choice(np.arange(3, 26, 2), n).astype(float)
    quad = rng.normal(3, 1, n)
    reach = (rng.random(n) < 0.4).astype(float)
    z = stats.zscore(np.column_stack([cols[F["F6"]], size, quad]))
    logit = 0.3 - 1.5 * z[:, 0] - 0.8 * z[:, 1] - 0.8 * z[:, 2] + 1.2 * reach
    got = rng.random(n) < 1 / (1 + np.exp(-logit))
    df = pd.DataFrame({"maze": np.arange(n), **cols, "cheese_coord_norm": rng.normal(10, 3, n), "maze_size": size,
                       "euclid_cheese_top_right_quadrant": quad, "cheese_up_right_reachable": reach,
                       "has_decision_square": 1.0, "cheese_in_top_right_region": 0.0, "has_cheese": 1.0})
    rep = Report(tmp_path_factory.mktemp("rules"))
    sec = behaviour.factors(_outcomes(df, got), rep, FAST)
    return sec.results, {r["id"]: r for r in rep.scorecard()}


def test_f4_is_not_resolved_by_what_is_really_f6s_coefficient(f6_policy):
    res, rows = f6_policy
    assert set(res["fits"]) == {F["F2"], F["F4"], F["F6"]}  # one fit per left-out member of the dependence
    assert rows["F6"]["verdict"] == SUPPORTED  # negative in both fits that hold it
    # F4 is negative only with F2 held fixed (i.e. it is F6's effect); with F6 held fixed it is ~0
    assert res["verdicts"]["F4"]["per_fit"][F["F6"]] == SUPPORTED
    assert rows["F4"]["verdict"] == INCONCLUSIVE and rows["F4"]["brier"] is None
    assert res["verdicts"]["F2"]["per_fit"][F["F6"]] == CONTRADICTED and rows["F2"]["verdict"] == INCONCLUSIVE
    for f in ("F1", "F3", "F5", "F7", "F8", "F9", "F10"):  # no effect planted, and every fit holds them
        assert len(res["verdicts"][f]["per_fit"]) == 3 and rows[f]["verdict"] != SUPPORTED


def test_b2_resolves_on_the_three_measurable_attributes(f6_policy):
    res, rows = f6_policy
    b2 = res["b2"]
    assert b2["mouse_dist_left_wall"]["verdict"] == verdicts.NOT_MEASURABLE
    assert "maze size" in b2["mouse_dist_left_wall"]["why"]
    assert all(b2[a]["verdict"] == SUPPORTED for a in behaviour.B2_SIGNS)
    assert rows["B2"]["verdict"] == SUPPORTED and rows["B2"]["value"] == 3


def _b1_table(p_bottom_left: float, n: int = 1600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    quad = rng.integers(0, 4, n).astype(float)
    p = np.select([quad == QUADRANTS.index(q) for q in QUADRANTS], [p_bottom_left, 0.1, 0.1, 0.6])
    far = np.where(quad == QUADRANTS.index("top_right"), 3.0, 20.0)  # size 25: "far" means > 24/√2 ≈ 17
    df = pd.DataFrame({"maze": np.arange(n), "cheese_quadrant": quad, "maze_size": 25, "euclid_cheese_top_right": far,
                       "cheese_row": 0, "cheese_col": 0})
    return _outcomes(df, rng.random(n) < p)


@pytest.mark.parametrize("p_bottom_left,expected", [(0.9, INCONCLUSIVE), (0.1, SUPPORTED)])
def test_b1_resolves_only_when_the_three_readings_agree(tmp_path, p_bottom_left, expected):
    rep = Report(tmp_path)
    res = behaviour.b1(_b1_table(p_bottom_left), rep).results
    row = {r["id"]: r for r in rep.rows}["B1"]
    assert res["reading_verdicts"]["two_quadrants"] == SUPPORTED  # the one reading the old rule used
    assert row["verdict"] == expected
    if expected == INCONCLUSIVE:
        assert res["reading_verdicts"]["three_quadrants"] == CONTRADICTED


def test_u1_covers_every_decision_square_with_a_known_success_rate(tmp_path):
    """A fake agent that takes the value-maximising move in mazes with index % 3 != 0 and another move otherwise:
    U1 must equal that share over *all* mazes with a decision square, not over the small U2/U3 sample."""
    from mazeagent.experiments.policies import group_logits
    from mazeagent.env.mazes import generate_mazes
    from mazeagent.maze.paths import next_step_towards, step_distances
    from mazeagent.nets import GROUP_NAMES

    mazes = generate_mazes(80, seed=3)
    dist = step_distances(mazes.batch.walls, mazes.cheese).astype(float)
    move = next_step_towards(mazes.batch, mazes.cheese)
    table = np.stack([group_logits({g: 1.0}) for g in GROUP_NAMES])

    def query(m_idx, squares):
        best = move[m_idx, squares[:, 0], squares[:, 1]]
        chosen = np.where(m_idx % 3 != 0, best, (best + 1) % 4)
        return table[chosen], -dist[m_idx, squares[:, 0], squares[:, 1]]

    rep = Report(tmp_path)
    sample = np.array([0, 1])
    res = conformity.section(None, mazes, sample, rep, None, query=query, n_boot=500).results
    ds = np.nonzero(mazes.geometry.decision_square[:, 0] >= 0)[0]
    u1 = res["U1"]["conformity"]
    assert u1["n"] == u1["clusters"] == len(ds) > 20
    assert u1["rate"] == pytest.approx(np.mean(ds % 3 != 0))
    assert u1["ci"][0] < u1["rate"] < u1["ci"][1]
    u2 = res["U2"]["conformity"]  # maze 0 never conforms, maze 1 always does
    assert u2["clusters"] == 2 and u2["ci"][0] == 0.0 and u2["ci"][1] == 1.0
    rows = {r["id"]: r for r in rep.rows}
    assert rows["U1"]["value"] == u1["rate"] and rows["U1"]["verdict"] == verdicts.NO_FORECAST


def test_existence_rule_and_agreement():
    assert verdicts.existence_verdict(True) == SUPPORTED
    assert verdicts.existence_verdict(False) == NOT_DEMONSTRATED
    assert verdicts.existence_verdict(False, exhaustive=True) == CONTRADICTED
    assert verdicts.brier(0.8, NOT_DEMONSTRATED) is None
    assert verdicts.agreed([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert verdicts.agreed([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert verdicts.agreed([]) == INCONCLUSIVE


def test_published_file_has_sources_and_feeds_the_scorecard():
    entries = published.load()
    assert {"factor_subset_count", "regression_accuracy", "cheese_vector", "cheese_channels",
            "channel55_retargeting", "probe_accuracy"} <= set(entries)
    for p in entries.values():
        assert p.source and p.setup and p.value
        assert set(p.predictions) <= set(verdicts.BY_ID), p.key
    assert entries["regression_accuracy"].number == 0.833 and entries["cheese_channels"].number == 11
    row = verdicts.scorecard_row("F3", "coef", -1.0, (-1.2, -0.8), SUPPORTED)
    assert row["published"] == entries["coef_f3"].value and "Understanding" in row["published_source"]
    assert verdicts.scorecard_row("U1", "rate", 0.5, (0.4, 0.6), verdicts.NO_FORECAST)["published"] is None
