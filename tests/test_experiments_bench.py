"""The factor-stage benchmark table: real maze geometry, so F6 = F4 − F2 exactly and the study excludes it."""
from experiments.bench import bench_factors, synthetic_table
from experiments.behaviour import factor_subset


def test_factor_stage_on_real_geometry_excludes_the_collinear_factor():
    out = bench_factors(rows=300, n_splits=5, n_boot=10, seed=0)
    assert out["rows_factor_subset"] == 300 and out["seconds"] > 0
    assert list(out["excluded"]) == ["steps_decision_square_top_right"]  # F6, a combination of F2 and F4
    assert "steps_cheese_decision_square" in out["excluded"]["steps_decision_square_top_right"]
    assert out["scorecard"]["F6"] == "inconclusive"
    df = synthetic_table(300, seed=0)
    sub = factor_subset(df)
    assert (sub["steps_cheese_top_right"] == sub["steps_cheese_decision_square"]
            + sub["steps_decision_square_top_right"]).all()
    assert sub["cheese_256"].any() and not sub["cheese_256"].all()
