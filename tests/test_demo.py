"""`make demo`'s agent and command: the bundled checkpoint loads, says what it is, beats a uniform policy on the
distribution it was trained on, and the demo study names it in the report."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp

from experiments.study import bundled_checkpoint, demo_policy
from mazeagent.ppo.checkpoint import load_policy, read_meta, resolve


def test_bundled_agent_is_trained_and_described():
    from mazeagent.ppo.evaluate import make_evaluator

    ckpt = bundled_checkpoint()
    assert ckpt is not None, "no agent under mazeagent/assets/agent"
    meta = read_meta(resolve(ckpt))
    assert "NOT the published agent" in meta["extra"]["description"]
    assert set(meta["leaves"]) and all(k.startswith("params") for k in meta["leaves"])  # params only: small
    net, params, cfg = load_policy(ckpt)
    assert cfg.max_maze_size is not None and cfg.rand_region is not None
    # 256 episodes: the agent is weak (measured 0.465 vs 0.297 for a uniform policy), so 64 would be too noisy
    ev = make_evaluator(cfg, episodes=256, distributions=("train",))
    trained = ev(params, jax.random.PRNGKey(123))["eval/train/cheese_rate"]
    uniform = ev(jax.tree.map(jnp.zeros_like, params), jax.random.PRNGKey(123))["eval/train/cheese_rate"]
    assert trained >= uniform + 0.1, (trained, uniform)


def test_demo_plays_the_bundled_agent_and_says_so(tmp_path, capsys):
    from mazeagent.cli import main

    _, name = demo_policy(tmp_path, seed=0)
    assert name.startswith(str(bundled_checkpoint())) and "NOT the published agent" in name
    out = tmp_path / "demo"
    assert main(["demo", "--mazes", "24", "--out", str(out), "--wandb", "disabled", "--no-progress"]) == 0
    assert "report:" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["checkpoint"] == name
    assert "NOT the published agent" in (out / "report.md").read_text()
