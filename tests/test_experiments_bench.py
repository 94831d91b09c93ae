"""The factor-stage benchmark table: real maze geometry, so F6 = F4 − F2 exactly and the study fits one
reparameterisation per member of that dependence."""
from mazeagent.experiments.bench import bench_factors, synthetic_table
from mazeagent.experiments.behaviour import factor_subset


def test_factor_stage_on_real_geometry_fits_each_reparameterisation():
    out = bench_factors(rows=300, n_splits=5, n_boot=10, seed=0)
    assert out["rows_factor_subset"] == 300 and out["seconds"] > 0
    assert out["left_out_per_fit"] == ["steps_cheese_decision_square", "steps_cheese_top_right",
                                       "steps_decision_square_top_right"]  # F2, F4, F6 in turn
    assert out["scorecard"]["F6"] != "supported"  # only F2 and F3 are planted
    df = synthetic_table(300, seed=0)
    sub = factor_subset(df)
    assert (sub["steps_cheese_top_right"] == sub["steps_cheese_decision_square"]
            + sub["steps_decision_square_top_right"]).all()
    assert sub["cheese_256"].any() and not sub["cheese_256"].all()
