"""`make demo`'s agent and command: the bundled checkpoint loads, says what it is, beats a uniform policy on the
distribution it was trained on, and the demo study names it in the report."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp

from mazeagent.experiments.study import bundled_checkpoint, demo_policy
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
    # its model card (docs/agents.md) measured >= 0.90 over 1,000 episodes, and a uniform policy gets ~0.30 on this
    # distribution; 64 fresh episodes (another seed) land far from both ends
    recorded = meta["extra"]["eval_1000"]["eval/train/cheese_rate"]
    assert recorded >= 0.90
    ev = make_evaluator(cfg, episodes=64, distributions=("train",))
    trained = ev(params, jax.random.PRNGKey(123))["eval/train/cheese_rate"]
    assert trained >= 0.8, trained
    uniform = ev(jax.tree.map(jnp.zeros_like, params), jax.random.PRNGKey(123))["eval/train/cheese_rate"]
    assert uniform <= 0.5, uniform  # the check can fail: a params-blind policy does not pass it


def test_demo_plays_the_bundled_agent_and_says_so(tmp_path, capsys):
    from mazeagent.cli import main

    _, name = demo_policy(tmp_path, seed=0)
    assert name.startswith(str(bundled_checkpoint())) and "NOT the published agent" in name
    out = tmp_path / "demo"
    assert main(["demo", "--mazes", "24", "--out", str(out), "--wandb", "disabled", "--no-progress"]) == 0
    assert "report:" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["checkpoint"] == name
    report = (out / "report.md").read_text()
    assert "NOT the published agent" in report
    # the scorecard puts the published value beside ours (demo reports included)
    assert "| ID | Claim | Credence | Measured [95% CI] | Published | Verdict | Brier |" in report
    # a section's published counterpart (experiments/published.toml): P(cheese move) at the decision square, .81
    assert "*Published counterparts*" in report and "| .81 | Understanding post |" in report
    _check_episodes_replay(out / "episodes.csv")


def _check_episodes_replay(csv) -> None:
    """Each recorded episode, replayed move by move by an independent walker on its regenerated level, reaches
    the cheese and the top-right corner exactly when the table says, and ends where an episode must end."""
    import numpy as np
    import pandas as pd

    from mazeagent.env.levelgen import generate_batch
    from mazeagent.maze.level import WALL
    from mazewalk import first_visit, walk

    eps = pd.read_csv(csv, keep_default_na=False)
    assert len(eps) == 24
    grid = generate_batch(eps["level_seed"].to_numpy()).grid  # the maze (walls) does not depend on the cheese rule
    got = 0
    for i, ep in eps.iterrows():
        n, m = int(ep["maze_size"]), (25 - int(ep["maze_size"])) // 2
        cheese = (int(ep["cheese_row"]) + m, int(ep["cheese_col"]) + m)
        seen = walk(grid[i] != WALL, (m, m), str(ep["actions"]))
        assert int(ep["t_cheese"]) == first_visit(seen, cheese), i
        assert int(ep["t_top_right"]) == first_visit(seen, (m + n - 1, m + n - 1)), i
        # an episode ends on the cheese, or runs to procgen's 500-step timeout
        assert len(ep["actions"]) == (int(ep["t_cheese"]) if ep["t_cheese"] >= 0 else 500), i
        assert bool(ep["cheese_500"]) == (ep["t_cheese"] >= 0)
        got += ep["t_cheese"] >= 0
    assert 0 < got  # the trained agent gets some cheese (and the check above is not vacuous)
    assert np.array_equal(eps["neither_500"].astype(bool), ~eps["cheese_500"].astype(bool) & ~eps["top_right_500"]
                          .astype(bool))
