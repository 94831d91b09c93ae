"""The regression pipeline recovers known effects on synthetic data; intervals and verdict rules at their boundaries."""
import math

import numpy as np
import pytest

from mazeagent.experiments import stats, verdicts
from mazeagent.experiments.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED

FAST = stats.StatsConfig(n_splits=20, n_boot=40, seed=3)


def synthetic(n=3000, seed=0):
    """y ~ Bernoulli(sigmoid(1.5 − 2 a + 1 b + 0 c)) with a, b, c independent standard normals, plus d = a + noise."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n))
    d = a + 0.3 * rng.normal(size=n)
    logit = 1.5 - 2.0 * a + 1.0 * b
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return np.column_stack([a, b, c, d]), y


def test_multi_factor_recovers_signs_magnitudes_and_null():
    X, y = synthetic()
    res = stats.logistic_splits(X[:, :3], y, ["a", "b", "c"], FAST)
    # a, b, c are already ~unit variance, so z-scored coefficients ≈ the true ones (L1 shrinks a little)
    assert res.coef["a"] == pytest.approx(-2.0, abs=0.3)
    assert res.coef["b"] == pytest.approx(1.0, abs=0.2)
    assert abs(res.coef["c"]) < 0.15
    assert res.coef_ci["a"][1] < 0 and res.coef_ci["b"][0] > 0
    assert res.coef_ci["c"][0] <= 0 <= res.coef_ci["c"][1]
    assert res.sign_flip["a"] == 0.0 and res.sign_flip["b"] == 0.0
    assert res.intercept == pytest.approx(1.5, abs=0.3)
    assert res.accuracy > res.baseline + 0.05
    assert verdicts.sign_verdict(res.coef_ci["a"], -1) == SUPPORTED
    assert verdicts.sign_verdict(res.coef_ci["b"], -1) == CONTRADICTED
    assert verdicts.sign_verdict(res.coef_ci["c"], -1) == INCONCLUSIVE


def test_single_factor_drop_one_and_vif():
    X, y = synthetic()
    names = ["a", "b", "c", "d"]
    single = stats.single_factor(X, y, names, FAST)
    assert single["a"].accuracy > single["a"].baseline + 0.05
    assert single["c"].accuracy <= single["c"].baseline + 0.01  # noise factor: no better than the majority class
    drops = stats.drop_one(X[:, :3], y, names[:3], FAST)
    assert drops["a"]["delta"] > 0.05 and drops["a"]["delta_ci"][0] > 0
    assert abs(drops["c"]["delta"]) < 0.01
    v = stats.vif(X, names)
    assert v["a"] > 5 and v["d"] > 5  # d ≈ a: collinear
    assert v["b"] == pytest.approx(1.0, abs=0.1) and v["c"] == pytest.approx(1.0, abs=0.1)
    corr = stats.correlation(X, names)
    assert corr["a"]["d"] > 0.9 and abs(corr["a"]["b"]) < 0.1


def test_regression_is_deterministic_for_a_seed_and_rejects_bad_input():
    X, y = synthetic(n=500)
    r1 = stats.logistic_splits(X, y, list("abcd"), FAST)
    r2 = stats.logistic_splits(X, y, list("abcd"), FAST)
    assert r1.to_dict() == r2.to_dict()
    with pytest.raises(ValueError, match="both outcomes"):
        stats.logistic_splits(X, np.ones(len(y), bool), list("abcd"), FAST)
    with pytest.raises(ValueError, match="NaN"):
        Xn = X.copy()
        Xn[0, 1] = np.nan
        stats.logistic_splits(Xn, y, list("abcd"), FAST)
    with pytest.raises(ValueError, match="names"):
        stats.logistic_splits(X, y, ["a"], FAST)
    with pytest.raises(ValueError, match="test_frac"):
        stats.StatsConfig(test_frac=1.0)


def test_wilson_and_bootstrap_intervals():
    lo, hi = stats.wilson_ci(0, 10)
    assert lo == 0.0 and 0.25 < hi < 0.32  # Wilson upper bound for 0/10 is 0.2775
    lo, hi = stats.wilson_ci(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert all(math.isnan(v) for v in stats.wilson_ci(0, 0))
    with pytest.raises(ValueError):
        stats.wilson_ci(5, 3)
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 1.0, size=2000)
    lo, hi = stats.bootstrap_ci(x, n_boot=300)
    assert lo < 2.0 < hi and hi - lo < 0.15
    p = stats.proportion(np.array([1, 1, 0, 0]))
    assert p["rate"] == 0.5 and p["k"] == 2 and p["n"] == 4


@pytest.mark.parametrize("ci,expected", [
    ((-0.5, -0.01), SUPPORTED), ((-0.5, 0.0), INCONCLUSIVE), ((0.0, 0.3), INCONCLUSIVE),
    ((0.01, 0.3), CONTRADICTED), ((-0.1, 0.1), INCONCLUSIVE), ((math.nan, math.nan), INCONCLUSIVE)])
def test_sign_verdict_boundaries(ci, expected):
    assert verdicts.sign_verdict(ci, -1) == expected
    flipped = {SUPPORTED: CONTRADICTED, CONTRADICTED: SUPPORTED, INCONCLUSIVE: INCONCLUSIVE}[expected]
    assert verdicts.sign_verdict(ci, +1) == flipped


@pytest.mark.parametrize("ci,expected", [
    ((0.1, 0.2999), SUPPORTED), ((0.1, 0.30), INCONCLUSIVE), ((0.2999, 0.4), INCONCLUSIVE),
    ((0.30, 0.4), CONTRADICTED)])
def test_threshold_verdict_boundaries(ci, expected):
    assert verdicts.below_verdict(ci, 0.30) == expected


@pytest.mark.parametrize("ci,baseline,expected", [
    ((-0.2, -0.001), 0.5, CONTRADICTED), ((-0.019, 0.019), 0.5, SUPPORTED), ((-0.05, 0.01), 0.5, INCONCLUSIVE),
    ((-0.01, 0.2), 0.5, INCONCLUSIVE),
    # the margin is 10% of the unedited P(cheese move); a fixed ±0.02 got both of these wrong
    ((-0.015, 0.015), 0.05, INCONCLUSIVE), ((-0.05, 0.05), 0.9, SUPPORTED)])
def test_artifact_verdict_margin_is_relative_to_the_baseline(ci, baseline, expected):
    assert verdicts.artifact_verdict(ci, baseline) == expected
    assert verdicts.artifact_verdict((math.nan, math.nan), baseline) == INCONCLUSIVE
    with pytest.raises(ValueError):
        verdicts.artifact_verdict(ci, 1.5)


def test_brier_scores_only_resolved_credences():
    assert verdicts.brier(0.9, SUPPORTED) == pytest.approx(0.01)
    assert verdicts.brier(0.9, CONTRADICTED) == pytest.approx(0.81)
    assert verdicts.brier(0.9, INCONCLUSIVE) is None
    assert verdicts.brier(None, SUPPORTED) is None
    with pytest.raises(ValueError):
        verdicts.brier(1.2, SUPPORTED)
    rows = [verdicts.scorecard_row("F3", "coef", -1.0, (-1.2, -0.8), SUPPORTED),
            verdicts.scorecard_row("F5", "coef", 0.5, (0.2, 0.8), CONTRADICTED),
            verdicts.scorecard_row("F6", "coef", 0.0, (-0.1, 0.1), INCONCLUSIVE)]
    s = verdicts.brier_summary(rows)
    assert s["n_resolved"] == 2 and s["n_with_credence"] == 3
    assert s["mean"] == pytest.approx((0.01 + 0.35 ** 2) / 2)
    assert rows[0]["question"].endswith("Euclidean") and rows[0]["credence"] == 0.90


@pytest.mark.parametrize("n", [1, 3, 7, 10, 49, 1000, 123457])
def test_wilson_ci_is_exactly_clamped_at_the_edges(n):
    lo0, hi0 = stats.wilson_ci(0, n)
    lon, hin = stats.wilson_ci(n, n)
    assert lo0 == 0.0 and hin == 1.0  # exactly, not 1e-17 / 0.9999999999999999
    assert 0.0 < hi0 < 1.0 and 0.0 < lon < 1.0
    assert lon == pytest.approx(1.0 - hi0, abs=1e-12)  # symmetric
    for k in range(0, n + 1, max(1, n // 5)):
        lo, hi = stats.wilson_ci(k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_batched_l1_fit_is_liblinears_estimator():
    """Same optimum as sklearn's liblinear (run to a tight tolerance) for splits and count-weighted resamples."""
    import warnings

    from mazeagent.experiments.l1logit import fit_l1_logistic

    rng = np.random.default_rng(3)
    n = 600
    X = rng.normal(size=(n, 4))
    X[:, 3] = 0.95 * X[:, 1] + 0.1 * rng.normal(size=n)  # strongly correlated, as steps vs Euclidean distances
    y = rng.random(n) < 1 / (1 + np.exp(-(0.3 - 1.2 * X[:, 0] + 0.5 * X[:, 1])))
    X = stats.zscore(X)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(3)]).astype(float)
    split = (rng.random((2, n)) < 0.8).astype(float)
    for C in (1.0, 0.02):
        W = np.concatenate([counts, split])
        coef, icpt, ok = fit_l1_logistic(X, y, W, C)
        assert ok.all()
        for b in range(len(W)):
            rows = np.repeat(np.arange(n), W[b].astype(int))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = stats.liblinear_l1(C, tol=1e-10, max_iter=100_000)
                ref.fit(X[rows], y[rows])
            np.testing.assert_allclose(coef[b], ref.coef_[0], atol=2e-5)
            assert icpt[b] == pytest.approx(ref.intercept_[0], abs=2e-5)
        if C == 0.02:
            assert (coef == 0).any()  # the L1 penalty zeroes some weights at this strength
    with pytest.raises(ValueError, match="disagree"):
        fit_l1_logistic(X, y, np.ones((1, n - 1)))


def test_exactly_collinear_factor_is_excluded_and_reported():
    rng = np.random.default_rng(4)
    n = 800
    a, b, c = rng.integers(0, 20, (3, n)).astype(float)
    X = np.column_stack([a, b, a + b, c])  # like F2, F6, F4 = F2 + F6, and an independent factor
    names = ["f2", "f6", "f4", "other"]
    y = rng.random(n) < 1 / (1 + np.exp(-(0.2 * (a - 10))))
    assert stats.collinear_columns(X, names) == {"f4": ["f2", "f6"]}
    assert stats.collinear_columns(X[:, [0, 1, 3]], ["f2", "f6", "other"]) == {}
    r = stats.logistic_splits(X, y, names, FAST)
    assert r.excluded == {"f4": ["f2", "f6"]}
    assert math.isnan(r.coef["f4"]) and all(math.isnan(v) for v in r.coef_ci["f4"])
    assert r.coef["f2"] > 0 and r.coef_ci["f2"][0] > 0  # the planted effect, identifiable once f4 is out
    d = stats.drop_one(X, y, names, FAST, full=r)
    assert "f2, f6" in d["f4"]["excluded"] and "delta" not in d["f4"] and math.isfinite(d["other"]["delta"])


def test_drop_one_never_brings_an_excluded_column_back():
    """Dropping f2 from a fit that excluded f4 = f2 + f6 must not refit on f4: that restores f2 (Δacc ≈ 0)."""
    rng = np.random.default_rng(5)
    n = 1500
    a, b, c = rng.normal(size=(3, n))
    X = np.column_stack([a, b, a + b, c])
    names = ["f2", "f6", "f4", "other"]
    y = rng.random(n) < 1 / (1 + np.exp(-2.0 * a))
    full = stats.logistic_splits(X, y, names, FAST)
    d = stats.drop_one(X, y, names, FAST, full=full)
    assert d["f2"]["delta"] > 0.1 and d["f2"]["delta_ci"][0] > 0
    assert abs(d["other"]["delta"]) < 0.02


def test_liblinear_solver_option_agrees_with_the_batched_solver():
    X, y = synthetic(n=800)
    names = ["a", "b", "c", "d"]
    cfg = stats.StatsConfig(n_splits=6, n_boot=12, seed=1)
    fast = stats.logistic_splits(X, y, names, cfg)
    slow = stats.logistic_splits(X, y, names, stats.StatsConfig(n_splits=6, n_boot=12, seed=1, solver="liblinear"))
    for n in names:
        assert slow.coef[n] == pytest.approx(fast.coef[n], abs=0.02)
        np.testing.assert_allclose(slow.coef_ci[n], fast.coef_ci[n], atol=0.05)
        assert verdicts.sign_verdict(slow.coef_ci[n]) == verdicts.sign_verdict(fast.coef_ci[n])
    assert slow.accuracy == pytest.approx(fast.accuracy, abs=0.01)
    with pytest.raises(ValueError, match="solver"):
        stats.StatsConfig(solver="newton")


def test_clustered_interval_counts_mazes_not_squares():
    """50 mazes of 40 squares, all conforming or none: the squares are one draw per maze, so the interval must be
    as wide as for 50 coin flips, not 2,000 (a Wilson interval over squares is ~6x too narrow)."""
    rng = np.random.default_rng(0)
    per_maze = rng.random(50) < 0.6
    success, clusters = np.repeat(per_maze, 40), np.repeat(np.arange(50), 40)
    r = stats.clustered_proportion(success, clusters, n_boot=1000, seed=0)
    wilson = stats.wilson_ci(int(success.sum()), success.size)
    assert r["n"] == 2000 and r["clusters"] == 50 and r["rate"] == pytest.approx(per_maze.mean())
    assert r["ci"][0] < r["rate"] < r["ci"][1]
    assert (r["ci"][1] - r["ci"][0]) > 4 * (wilson[1] - wilson[0])
    assert math.isnan(stats.clustered_proportion(np.zeros(0), np.zeros(0))["rate"])
