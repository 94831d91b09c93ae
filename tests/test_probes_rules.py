"""The probes' resolution rules on synthetic outcomes whose right answer is known: existence claims are not
contradicted by a failed search unless it is exhaustive (O2), ME6 budgets mean "at most" and resolve monotonically, ME1 chooses on one half and
scores on the other with the top-right drop's upper bound, ME3 can be falsified, ME2 resolves in world coordinates,
O2's count has an interval, and the net's width sizes the channel counts."""
import numpy as np
import pytest

from mazeagent.experiments import verdicts as V
from mazeagent.probes import exp_channels as O2
from mazeagent.probes import exp_me3 as ME3
from mazeagent.probes import exp_patch as ME1
from mazeagent.probes import exp_probe as ME2
from mazeagent.probes import exp_retarget as R
from mazeagent.probes.channels import count_interval
from mazeagent.probes.common import channel_count


def _ok(rate: float, n: int = 100) -> np.ndarray:
    return np.arange(n) < round(rate * n)


# ---------------------------------------------------------------------------------------------------- ME6

def test_budgets_mean_at_most_and_resolve_monotonically():
    caps = R.budget_caps((1e-4, 1e-3, 1e-2, 1e-1), 16 * 16 * 16)
    assert caps == {1e-4: 0, 1e-3: 4, 1e-2: 40, 1e-1: 409}  # rounded down: 0.41 entries allow none
    assert R.tried_sizes(caps, 2) == [1, 2, 4, 40, 409]
    # success is not monotone in the edit size: 4 entries retarget 90% of mazes, 40 only 50%
    maze_ok = {1: _ok(0.2), 2: _ok(0.3), 4: _ok(0.9), 40: _ok(0.5), 409: _ok(0.1)}
    res = R.resolve_budgets(caps, maze_ok)
    assert res[1e-4]["entries"] is None and res[1e-4]["verdict"] == V.INCONCLUSIVE
    assert [res[b]["entries"] for b in (1e-3, 1e-2, 1e-1)] == [4, 4, 4]
    assert [res[b]["verdict"] for b in (1e-3, 1e-2, 1e-1)] == [V.SUPPORTED] * 3
    lows = [res[b]["maze_share"]["ci"][0] for b in (1e-3, 1e-2, 1e-1)]
    assert lows == sorted(lows)
    assert R.impossible_verdict(res) == V.CONTRADICTED


def test_a_failed_retargeting_search_is_not_demonstrated_never_contradicted():
    caps = {1e-3: 4, 1e-1: 409}
    res = R.resolve_budgets(caps, {4: _ok(0.0), 409: _ok(0.1)})
    assert all(r["verdict"] == V.INCONCLUSIVE and r["note"] == "not demonstrated" for r in res.values())
    assert R.impossible_verdict(res) == V.INCONCLUSIVE  # a failed search cannot show impossibility


def test_a_maze_counts_only_when_the_edit_beats_the_unedited_agent():
    unedited = np.zeros((3, 2, 2), bool)
    unedited[0] = True  # maze 0: the agent reaches both destinations unaided, so an edit that does too proves nothing
    unedited[1, 0, 0] = True
    edited = np.ones((3, 2, 2), bool)
    edited[2, 1] = False  # maze 2: half the destination episodes, against none unedited
    assert R.retargeted_mazes(edited, unedited).tolist() == [False, True, True]
    edited[2, 0, 0] = False  # below half
    assert R.retargeted_mazes(edited, unedited).tolist() == [False, True, False]


def test_o1_clears_both_controls_or_is_contradicted_only_by_doing_worse():
    assert R.o1_verdict((0.6, 0.8), (0.2, 0.4), (0.3, 0.5))[0] == V.SUPPORTED
    assert R.o1_verdict((0.3, 0.6), (0.2, 0.4), (0.3, 0.5))[0] == V.INCONCLUSIVE
    assert R.o1_verdict((0.0, 0.1), (0.2, 0.4), (0.0, 0.1))[0] == V.CONTRADICTED


# ---------------------------------------------------------------------------------------------------- ME1

def _half(cut: float, cut_ci: tuple, drop: float, drop_ci: tuple) -> dict:
    return {"cheese_cut": cut, "cheese_cut_ci": cut_ci, "top_right_drop": drop, "top_right_drop_ci": drop_ci}


def test_me1_needs_the_drops_upper_bound_within_25_percent():
    good_cut = (0.6, 0.8)
    assert ME1.me1_verdict(_half(0.7, good_cut, 0.10, (0.0, 0.2)), 0.5) == (V.SUPPORTED, "demonstrated")
    # point estimate feasible (0.20) but the CI reaches 0.35: not demonstrated
    assert ME1.me1_verdict(_half(0.7, good_cut, 0.20, (0.05, 0.35)), 0.5)[0] == V.INCONCLUSIVE
    # a cut wholly below X is "not demonstrated", not a contradiction: other patches may exist
    assert ME1.me1_verdict(_half(0.2, (0.1, 0.3), 0.0, (0.0, 0.1)), 0.5) == (V.INCONCLUSIVE, "not demonstrated")
    assert ME1.me1_verdict(None, 0.5)[0] == V.INCONCLUSIVE


def test_me1_chooses_on_one_half_and_scores_on_the_other():
    choose, score = ME1.halves(101, seed=3)
    assert not set(choose) & set(score) and len(choose) + len(score) == 101 and abs(len(choose) - len(score)) <= 1
    rows = [{"patch": "lucky", "kind": "patch", "choose": _half(0.9, (0.8, 1.0), 0.0, (0, 0.1)),
             "score": _half(0.1, (0.0, 0.3), 0.0, (0, 0.1))},
            {"patch": "steady", "kind": "patch", "choose": _half(0.6, (0.5, 0.7), 0.1, (0, 0.2)),
             "score": _half(0.6, (0.5, 0.7), 0.1, (0, 0.2))},
            {"patch": "random", "kind": "control", "choose": _half(0.99, (0.9, 1), 0.0, (0, 0.1)),
             "score": _half(0.99, (0.9, 1), 0.0, (0, 0.1))},
            {"patch": "breaks top-right", "kind": "patch", "choose": _half(0.95, (0.9, 1), 0.5, (0.4, 0.6)),
             "score": _half(0.95, (0.9, 1), 0.5, (0.4, 0.6))},
            {"patch": "drop CI too wide", "kind": "patch", "choose": _half(0.97, (0.9, 1), 0.1, (0.0, 0.3)),
             "score": _half(0.97, (0.9, 1), 0.1, (0.0, 0.1))}]
    best = ME1.choose_patch(rows)
    assert rows[best]["patch"] == "lucky"  # the choosing half's winner, never a control or an infeasible patch
    assert ME1.me1_verdict(rows[best]["score"], 0.5)[0] == V.INCONCLUSIVE  # its luck does not carry over


def test_cheese_vector_seed_lists():
    assert ME1.seed_list("0-3,7, 9-9") == (0, 1, 2, 3, 7, 9)
    with pytest.raises(ValueError, match="level seeds"):
        ME1.seed_list("0-x")


# ---------------------------------------------------------------------------------------------------- ME3

def test_me3_is_falsified_by_a_cheese_pull_far_from_the_top_right():
    rng = np.random.default_rng(0)
    near = np.arange(200) < 100
    confined = np.where(near, 0.6, 0.1) + 0.05 * rng.standard_normal(200)
    everywhere = 0.6 + 0.05 * rng.standard_normal(200)
    fn_confined, fn_everywhere = ME3.far_minus_near(confined, near), ME3.far_minus_near(everywhere, near)
    assert fn_confined[1][1] < -0.4 and fn_everywhere[1][0] < 0 < fn_everywhere[1][1]
    stronger_far = ME3.far_minus_near(np.where(near, 0.3, 0.6), near)
    edit_works = ((-0.4, -0.2), (0.1, 0.3))  # cheese vector: P(cheese) down, P(top-right) up
    assert ME3.me3_verdict(*edit_works, fn_confined[1]) == V.SUPPORTED
    assert ME3.me3_verdict(*edit_works, stronger_far[1]) == V.CONTRADICTED  # the condition in the text fails
    assert ME3.me3_verdict((-0.4, -0.2), (-0.1, 0.3), fn_confined[1]) == V.INCONCLUSIVE  # top-right not shown
    assert ME3.me3_verdict(*edit_works, ME3.far_minus_near(confined, np.ones(200, bool))[1]) == V.SUPPORTED


# ---------------------------------------------------------------------------------------------------- ME2

def test_me2_resolves_on_world_coordinates():
    """The net sees world squares: a planted map of the world cell is read perfectly in world coordinates, while
    inner coordinates shift with the maze size (a different label for the same image position)."""
    rng = np.random.default_rng(0)
    n, w = 600, 25
    size = rng.choice([5, 9, 13], n)
    margin = (w - size) // 2
    inner = np.stack([rng.integers(0, s, 2) for s in size])
    world = inner + margin[:, None]
    acts = np.zeros((n, 2, w), np.float32)  # the world row and column light up one unit each
    acts[np.arange(n), 0, world[:, 0]] = acts[np.arange(n), 1, world[:, 1]] = 1.0
    acts += 0.01 * rng.standard_normal(acts.shape).astype(np.float32)
    labels = {"cheese": world, "cheese_inner": inner, "maze": np.arange(n)}
    probes = ME2.position_probes(acts, labels, seed=0)
    assert probes["world"]["accuracy"] > 0.9 > probes["inner"]["accuracy"] + 0.2
    assert ME2.me2_verdict(probes) == V.SUPPORTED
    assert ME2.me2_verdict({"world": {**probes["world"], "ci": (0.1, 0.2)}, "inner": probes["world"]}) \
        == V.CONTRADICTED


# ---------------------------------------------------------------------------------------------------- O2

def test_o2_count_has_an_interval_and_too_few_channels_are_not_demonstrated():
    rng = np.random.default_rng(1)
    m, c, k = 30, 16, 8
    n = np.full(m, k)
    hits = rng.binomial(k, 0.05, size=(m, c))
    hits[:, :6] = k  # six channels track the cheese perfectly
    tr = np.zeros((m, c), bool)
    tr[:, 15] = True  # one tracks the top-right
    counts = count_interval(hits, n, tr, seed=0)
    assert counts["cheese"]["count"] == 6 and counts["cheese"]["ci"] == (6, 6)
    assert counts["top_right"]["count"] == 1 and counts["either"]["count"] == 7
    assert O2.o2_verdict({"a": counts})[0] == V.SUPPORTED
    few = count_interval(hits[:, 3:], n, tr[:, 3:], seed=0)
    assert few["either"]["count"] == 4 and few["either"]["ci"][1] < 5
    assert O2.o2_verdict({"a": few, "b": few})[0] == V.CONTRADICTED  # every channel scored: exhaustive
    assert O2.o2_verdict({"a": few, "b": counts}) == (V.SUPPORTED, "demonstrated", "b")
    straddle = {"either": {"count": 5, "ci": (3, 7)}}
    assert O2.o2_verdict({"a": few, "b": straddle})[0] == V.INCONCLUSIVE


def test_published_channels_are_scored_only_on_a_net_that_has_them():
    assert O2.published_check(np.zeros(16), "embedder.block2.res1.resadd_out") is None
    scores = np.zeros(128)
    scores[[55, 8]] = 0.9
    chk = O2.published_check(scores, "embedder.block2.res1.resadd_out")
    assert chk["meeting_threshold"] == 2 and chk["of"] == 11 and chk["scores"][55] == 0.9
    assert O2.published_check(scores, "embedder.block3.res1.resadd_out") is None


# ---------------------------------------------------------------------------------------------- sizing

@pytest.mark.parametrize("width, want", [(128, 11), (64, 6), (32, 3), (16, 2), (8, 1), (2, 1)])
def test_channel_counts_follow_the_width(width, want):
    n = channel_count(width)
    assert n == want and width - n >= n  # as many random control channels remain
