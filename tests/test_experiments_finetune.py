"""ME5's judge: frames counted from checkpoint metadata, the checkpoint fixed by the budget (not the best one), and
the verdict from planted agents of known competence (the bundled agent vs a uniform policy)."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import pytest

from mazeagent.experiments import verdicts as V
from mazeagent.experiments.finetune import me5, me5_verdict, training_frames, within_budget
from mazeagent.experiments.study import bundled_checkpoint
from mazeagent.ppo.checkpoint import load_policy, save_checkpoint


def test_training_frames_prefers_the_whole_lineage_and_flags_an_undercount():
    assert training_frames({"extra": {"total_frames": 900, "samples": 100}, "config": {"init_from": "x"}}) == (900, True)
    assert training_frames({"extra": {"samples": 100}, "config": {"init_from": None}}) == (100, True)
    assert training_frames({"extra": {"env_steps": 64}, "config": {"init_from": "/runs/a"}}) == (64, False)
    with pytest.raises(ValueError, match="records no training frames"):
        training_frames({"extra": {"wandb_id": "x"}, "config": {}})


def test_me5_verdict_bar_and_margin():
    assert me5_verdict((0.86, 0.90), bar=0.90) == V.SUPPORTED  # 0.86 >= 0.95 * 0.90 = 0.855
    assert me5_verdict((0.80, 0.85), bar=0.90) == V.CONTRADICTED  # wholly below 0.855
    assert me5_verdict((0.84, 0.88), bar=0.90) == V.INCONCLUSIVE
    with pytest.raises(ValueError, match="bar must be a rate"):
        me5_verdict((0.1, 0.2), bar=1.5)


def _agents(tmp_path):
    """A competent agent (the bundled one) and a uniform policy (its params zeroed), on small stock mazes."""
    _, params, cfg = load_policy(bundled_checkpoint())
    cfg = cfg.replace(rand_region=None, max_maze_size=9, timeout=60, init_from=None)
    return cfg, params, jax.tree.map(jnp.zeros_like, params)


def test_the_budget_fixes_the_checkpoint_and_the_verdict_follows_the_planted_agents(tmp_path):
    cfg, good, uniform = _agents(tmp_path)
    # original: uniform, 1,000 frames; finetune: good within 10% (80 frames), uniform past it (500 frames)
    orig = save_checkpoint(tmp_path / "orig", {"params": uniform}, cfg, 5, extra={"total_frames": 1000})
    ft = tmp_path / "ft" / "checkpoints"
    save_checkpoint(ft, {"params": good}, cfg, 1, extra={"samples": 80})
    save_checkpoint(ft, {"params": uniform}, cfg, 2, extra={"samples": 500})
    judged, seen = within_budget(tmp_path / "ft", 100)
    assert judged.frames == 80 and [j.frames for j in seen] == [80, 500]
    paths = me5(orig, tmp_path / "ft", tmp_path / "rep", episodes=128, seed=0)
    res = json.loads(paths["results"].read_text())["sections"]["me5"]
    assert res["finetune_frames"] == 80 and res["fraction"] == 0.08 and res["whole_lineage"]
    assert [c["fraction"] for c in res["curve"]] == [0.0, 0.08]  # before (the original on stock), then the judged
    assert res["curve"][0]["cheese"] == res["original_stock"]["cheese"]
    assert res["finetuned_stock"]["cheese"] > res["original_train"]["cheese"] + 0.2, res
    assert res["verdict"] == V.SUPPORTED
    assert "| ME5 |" in paths["markdown"].read_text()
    # the other way round: a competent original, a uniform finetune within the budget -> contradicted
    orig2 = save_checkpoint(tmp_path / "orig2", {"params": good}, cfg, 5, extra={"total_frames": 1000})
    ft2 = tmp_path / "ft2" / "checkpoints"
    save_checkpoint(ft2, {"params": uniform}, cfg, 1, extra={"samples": 100})
    res2 = json.loads(me5(orig2, tmp_path / "ft2", tmp_path / "rep2", episodes=128)["results"].read_text())
    assert res2["sections"]["me5"]["verdict"] == V.CONTRADICTED and res2["sections"]["me5"]["budget_exhausted"]
    # the same miss by a finetune stopped at 2% of the original (no checkpoint near or past 10%): inconclusive
    save_checkpoint(tmp_path / "ft3" / "checkpoints", {"params": uniform}, cfg, 1, extra={"samples": 20})
    res3 = json.loads(me5(orig2, tmp_path / "ft3", tmp_path / "rep3", episodes=128)["results"].read_text())
    assert res3["sections"]["me5"]["verdict"] == V.INCONCLUSIVE and not res3["sections"]["me5"]["budget_exhausted"]


def test_bad_finetunes_are_refused_clearly(tmp_path):
    cfg, good, _ = _agents(tmp_path)
    orig = save_checkpoint(tmp_path / "orig", {"params": good}, cfg, 5, extra={"total_frames": 1000})
    with pytest.raises(ValueError, match="no checkpoints"):
        me5(orig, tmp_path / "nothing", tmp_path / "rep")
    save_checkpoint(tmp_path / "late" / "checkpoints", {"params": good}, cfg, 1, extra={"samples": 200})
    with pytest.raises(ValueError, match="past the budget of 100 frames"):
        me5(orig, tmp_path / "late", tmp_path / "rep")
    save_checkpoint(tmp_path / "region" / "checkpoints", {"params": good}, cfg.replace(rand_region=5), 1,
                    extra={"samples": 50})
    with pytest.raises(ValueError, match="needs the cheese anywhere"):
        me5(orig, tmp_path / "region", tmp_path / "rep")
    assert not (tmp_path / "rep").exists()  # every refusal comes before any evaluation or report
