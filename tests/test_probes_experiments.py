"""`mazeagent probes` end to end on the bundled agent (sizes read from its net) with its default maze sizes: every
experiment runs, sizes its controls from the net, keeps to the sizes the agent was trained on, writes its section,
figures and scorecard rows, and resolves existence claims without contradicting them by a failed search."""
import json

import numpy as np
import pytest

from mazeagent.experiments.sizes import training_max_size
from mazeagent.experiments.study import bundled_checkpoint
from mazeagent.cli import main
from mazeagent.env.levelgen import maze_sizes
from mazeagent.probes.cli import EXPERIMENTS
from mazeagent.probes.common import channel_count
from mazeagent.probes.exp_retarget import budget_caps, tried_sizes

SMALL = ["--me1-mazes", "6", "--probe-mazes", "30", "--retarget-mazes", "3", "--targets", "1", "--retarget-episodes",
         "1", "--channel-mazes", "3", "--placements", "4", "--horizon", "24", "--cv-seeds", "0-40", "--me3-mazes", "10",
         "--no-progress"]
EXISTENCE = ("ME1@50", "ME1@70", "ME1@90", "ME1@99", "ME6@0.01", "ME6@0.1", "ME6@1", "ME6@10")


@pytest.fixture(scope="module")
def agent():
    ckpt = bundled_checkpoint()
    assert ckpt is not None, "no agent under mazeagent/assets/agent"
    from mazeagent.ppo.checkpoint import load_policy

    net, _, _ = load_policy(ckpt)
    return ckpt, net


def test_every_experiment_runs_on_the_bundled_small_agent(tmp_path, agent):
    ckpt, net = agent
    out = tmp_path / "rep"
    assert main(["probes", "--checkpoint", str(ckpt), "--out", str(out), *SMALL]) == 0
    res = json.loads((out / "results.json").read_text())
    sections = res["sections"]
    assert set(sections) == {f"probes_{e}" for e in EXPERIMENTS}
    top = training_max_size(ckpt)
    assert res["meta"]["max_maze_size"] == top and "training sizes" in res["meta"]["maze_sizes"]
    rows = {r["id"]: r for r in res["scorecard"]}
    for pid in (*EXISTENCE, "ME2", "ME3", "ME6@impossible", "O1", "O2", "O3"):
        assert rows[pid]["verdict"] in ("supported", "contradicted", "inconclusive"), pid
    for pid in EXISTENCE:  # a failed search is "not demonstrated", never a contradiction
        assert rows[pid]["verdict"] != "contradicted", pid
    width = net.channel_widths[1]
    k = channel_count(width)
    me1 = sections["probes_me1"]
    assert me1["n_choose"] + me1["n_score"] == me1["n_mazes"] == 6 and len(me1["cheese_channels"]) == k
    assert f"zero-ablate {k} random channels" in {p["patch"] for p in me1["patches"]}
    me6 = sections["probes_me6"]
    caps = budget_caps((1e-4, 1e-3, 1e-2, 1e-1), 16 * 16 * width)
    assert [e["entries"] for e in me6["edits"]] == tried_sizes(caps, k)
    lows = [b["maze_share"]["ci"][0] for b in me6["budgets"] if b["maze_share"]]
    assert lows == sorted(lows)  # "at most X": never worse with a larger budget
    assert sum(b["n"] for b in me6["by_divergence"]) == 3
    cv = sections["probes_cv"]
    for c in ("-1", "-2"):
        assert {f"per-maze cheese vector × {c}", f"mean cheese vector × {c}", f"random vector × {c}"} \
            <= set(cv["conditions"])
    assert set(cv["level_seeds"]) <= set(range(41)) and (maze_sizes(np.array(cv["level_seeds"]), 25) <= top).all()
    assert sections["probes_me2"]["primary"] == "world"
    o2 = sections["probes_o2"]
    assert o2["n_channels"] == width and len(o2["counts"]) == 4 and o2["published_check"] is None
    paths = sections["probes_paths"]
    assert [len(c["channels"]) for c in paths["channel_lists"]] == [1, max(1, round(k * 7 / 11)), k]
    assert {"normal", "cheese at target"} <= set(paths["conditions"])
    for fig in ("o2_channels", "me2_curve", "me1_patches", "cv_distribution", "me6_budget", "paths_divergence",
                "o1_vfield", "me3_sweeps"):
        assert (out / "figures" / f"probes_{fig}.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "ME6 — retargeting" in md and "not demonstrated" in md
    assert list((out / "wandb").glob("offline-run-*"))
    again = tmp_path / "again"  # same seed, same numbers
    assert main(["probes", "--checkpoint", str(ckpt), "--out", str(again), *SMALL, "--experiments", "o2",
                 "--wandb", "disabled"]) == 0
    o2b = json.loads((again / "results.json").read_text())["sections"]["probes_o2"]
    np.testing.assert_array_equal(o2b["top_cheese_scores"], o2["top_cheese_scores"])


TINY = ["--random-init", "1", "--no-progress"]


@pytest.mark.parametrize("args, msg", [
    (["--experiments", "me1,me9"], "--experiments must list"),
    (["--layer", "embedder.fc_out"], "spatial"),
    (["--layer", "embedder.block2.res1.resad_out"], "did you mean"),
    (["--max-maze-size", "8"], "odd int"),
    (["--cv-seeds", "a-b"], "level seeds"),
    (["--retarget-channels", "55"], "channel lists"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, msg):
    assert main(["probes", "--out", str(tmp_path / "x"), *TINY, *args]) == 2
    assert msg in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["probes", "--out", str(tmp_path / "x"), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
