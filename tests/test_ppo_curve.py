"""Learning curves chained over stages: offsets, eval points and clear errors."""
import json

import numpy as np
import pytest

from mazeagent.ppo.curve import chain, load_stage, plot_learning_curve


def _write(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_stages_chain_end_to_end_and_plot_their_evaluations(tmp_path):
    bc = _write(tmp_path / "bc", [{"step": i, "samples": 256 * i, "bc/accuracy": i / 10} for i in range(1, 11)]
                + [{"step": 10, "samples": 2560, "eval/train/cheese_rate": 0.5}])
    ppo = _write(tmp_path / "ppo", [{"step": 4096 * u, "rollout/cheese_rate": 0.6 + u / 100} for u in (1, 2, 3)]
                 + [{"step": 8192, "eval/train/cheese_rate": 0.8}])
    stages = [load_stage("BC", bc), load_stage("PPO", ppo / "metrics.jsonl")]
    assert stages[0].train_key == "bc/accuracy" and stages[1].train_key == "rollout/cheese_rate"
    assert [off for _, off in chain(stages)] == [0.0, 2560.0]
    fig = plot_learning_curve(stages, smooth=4)
    train_ax, eval_ax = fig.axes
    bc_line, ppo_line = train_ax.get_lines()
    np.testing.assert_allclose(bc_line.get_ydata(), np.convolve(np.arange(1, 11) / 10, np.ones(4) / 4, "valid"))
    np.testing.assert_allclose(ppo_line.get_xdata(), (2560 + np.array([3 * 4096])) / 1e6)  # 3 rows, window 3
    pts = [line for line in eval_ax.get_lines() if line.get_marker() == "o"]
    assert [list(p.get_xdata() * 1e6) for p in pts] == [[2560.0], [2560.0 + 8192]]
    assert [list(p.get_ydata()) for p in pts] == [[0.5], [0.8]]


def test_a_run_without_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        load_stage("x", tmp_path)
    _write(tmp_path / "r", [{"step": 1, "train/loss": 0.1}])
    with pytest.raises(ValueError, match="no training metric"):
        load_stage("x", tmp_path / "r")
    with pytest.raises(ValueError, match="no stages"):
        plot_learning_curve([])
