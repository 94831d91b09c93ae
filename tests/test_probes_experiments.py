"""`mazeagent probes` end to end on an untrained tiny net: every section, figure, scorecard row and the wandb run
appear, numbers are in range and consistent, and bad input is a clear error."""
import json

import numpy as np
import pytest

from mazeagent.cli import main

TINY = ["--random-init", "1", "--me1-mazes", "3", "--probe-mazes", "8", "--retarget-mazes", "3", "--targets", "1",
        "--channel-mazes", "2", "--placements", "4", "--horizon", "24", "--no-progress"]


def test_all_experiments_write_sections_scorecard_figures_and_wandb(tmp_path):
    out = tmp_path / "rep"
    assert main(["probes", "--out", str(out), *TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    sections = res["sections"]
    assert set(sections) == {f"probes_{e}" for e in ("o2", "me2", "me1", "me6", "o1", "o3", "me3")}
    rows = {r["id"]: r for r in res["scorecard"]}
    for pid in ("ME1@50", "ME1@99", "ME2", "ME3", "ME6@0.01", "ME6@10", "ME6@impossible", "O1", "O2", "O3"):
        assert rows[pid]["verdict"] in ("supported", "contradicted", "inconclusive"), pid
    me6 = sections["probes_me6"]
    assert [b["entries"] for b in me6["budgets"]] == [1, 8, 82, 819]  # of 16*16*32 = 8192 activations
    for b in me6["budgets"]:
        lo, hi = b["maze_share"]["ci"]
        assert 0 <= lo <= b["maze_share"]["rate"] + 1e-12 and b["maze_share"]["rate"] <= hi <= 1
    assert sum(b["n"] for b in me6["by_divergence"]) == 3
    me1 = sections["probes_me1"]
    assert me1["n_mazes"] == 3 and {p["kind"] for p in me1["patches"]} == {"patch", "control"}
    assert all(0 <= v <= 1 for p in me1["decision_square_probs"].values() for v in p.values())
    conv = sections["probes_me2"]["conv_probe_top2"]["embedder.block2.res1.resadd_out"]
    assert len(conv["features"]) == 2 and 0 <= conv["score"] <= 1
    me3 = sections["probes_me3"]  # coefficient 0 is the unpatched policy
    for name in ("cheese vector", "top-right vector"):
        for k in ("cheese", "top_right"):
            assert abs(me3["sweeps"][name]["0.0"][k] - me3["steering"]["original"][k]) < 1e-5
    o2 = sections["probes_o2"]
    assert o2["n_channels"] == 32 and o2["count_cheese"] == rows["O2"]["value"]
    for fig in ("o2_channels", "me2_curve", "me1_patches", "me6_budget", "o1_vfield", "me3_sweeps"):
        assert (out / "figures" / f"probes_{fig}.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "ME6 — retargeting" in md and "O1 — a single" in md
    assert list((out / "wandb").glob("offline-run-*"))
    again = tmp_path / "again"  # same seed, same numbers
    assert main(["probes", "--out", str(again), *TINY, "--experiments", "o2", "--wandb", "disabled"]) == 0
    o2b = json.loads((again / "results.json").read_text())["sections"]["probes_o2"]
    np.testing.assert_array_equal(o2b["top_cheese_scores"], o2["top_cheese_scores"])


@pytest.mark.parametrize("args, msg", [
    (["--experiments", "me1,me9"], "--experiments must list"),
    (["--layer", "embedder.fc_out"], "spatial"),
    (["--layer", "embedder.block2.res1.resad_out"], "did you mean"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, msg):
    assert main(["probes", "--out", str(tmp_path / "x"), *TINY, *args]) == 2
    assert msg in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["probes", "--out", str(tmp_path / "x"), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
