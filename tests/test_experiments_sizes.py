"""Maze sizes: generated mazes keep to a size range without changing the unfiltered maze sets, the study and the
probes default to the sizes the checkpoint was trained on, and the study plays the sizes it never saw apart."""
import json

import numpy as np
import pytest

from mazeagent.experiments.sizes import resolve_max_size, training_max_size
from mazeagent.experiments.study import bundled_checkpoint
from mazeagent.env.levelgen import INT32_MAX, maze_sizes
from mazeagent.env.mazes import generate_mazes, level_seeds


def test_size_ranges_filter_and_the_unfiltered_seeds_are_unchanged():
    legacy = np.random.default_rng(5).choice(INT32_MAX, size=50, replace=False).astype(np.int32)
    np.testing.assert_array_equal(level_seeds(50, 5), legacy)
    small = level_seeds(300, 5, max_size=9)
    big = level_seeds(300, 5, min_size=13)
    assert len(set(small.tolist())) == 300 and (maze_sizes(small, 25) <= 9).all()
    assert (maze_sizes(big, 25) >= 13).all()
    np.testing.assert_array_equal(level_seeds(300, 5, max_size=9), small)  # deterministic
    mz = generate_mazes(20, seed=2, max_size=7)
    assert (mz.size <= 7).all() and len(mz) == 20
    with pytest.raises(ValueError, match="odd int"):
        level_seeds(5, 0, max_size=8)
    with pytest.raises(ValueError, match="empty maze-size range"):
        level_seeds(5, 0, min_size=15, max_size=9)


def test_max_maze_size_defaults_to_the_checkpoints_training_sizes():
    ckpt = bundled_checkpoint()
    from mazeagent.ppo.checkpoint import read_meta, resolve

    trained = read_meta(resolve(ckpt))["config"]["max_maze_size"]
    assert training_max_size(ckpt) == trained and resolve_max_size(None, ckpt) == trained
    assert resolve_max_size("all", ckpt) is None and resolve_max_size("13", ckpt) == 13
    assert resolve_max_size("25") is None and resolve_max_size(None) is None
    with pytest.raises(ValueError, match="or 'all'"):
        resolve_max_size("big")


def test_study_keeps_to_the_trained_sizes_and_reports_unseen_ones_apart(tmp_path):
    from mazeagent.cli import main

    ckpt = bundled_checkpoint()
    top = training_max_size(ckpt)
    out = tmp_path / "study"
    assert main(["study", "--checkpoint", str(ckpt), "--out", str(out), "--mazes", "40", "--unseen-mazes", "16",
                 "--f11-mazes", "0", "--conformity-mazes", "0", "--splits", "2", "--boot", "2",
                 "--wandb", "disabled", "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["meta"]["max_maze_size"] == top and "training sizes" in res["meta"]["maze_sizes"]
    import pandas as pd

    assert (pd.read_csv(out / "episodes.csv")["maze_size"] <= top).all()
    unseen = res["sections"]["unseen_sizes"]
    assert unseen["unseen_sizes"]["n"] == 16 and min(int(n) for n in unseen["by_size"]) > top
    assert unseen["trained_sizes"]["n"] == 40
    assert "never saw" in (out / "report.md").read_text()
