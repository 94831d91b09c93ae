"""The report end to end: verdicts from synthetic episodes with planted effects, every figure present, every
number of report.md in results.json, wandb offline holding the same numbers; plus a small real study."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mazeagent.experiments import behaviour, stats, verdicts
from mazeagent.experiments.report import Report, Section, fmt
from mazeagent.maze.geometry import PREDICTION_FACTORS

FAST = stats.StatsConfig(n_splits=15, n_boot=40, seed=0)


def synthetic_episodes(n=1500, seed=0):
    """Episodes whose cheese attainment depends on F3 (−, as forecast) and F5 (+, against the forecast) only."""
    rng = np.random.default_rng(seed)
    cols = {name: rng.normal(5, 2, n) for name in PREDICTION_FACTORS.values()}
    logit = -1.0 - 1.5 * (cols["euclid_cheese_top_right"] - 5) / 2 + 1.2 * (cols["euclid_decision_square_top_right"] - 5) / 2
    got = rng.random(n) < 1 / (1 + np.exp(-logit))
    size = rng.choice(np.arange(3, 26, 2), n)
    df = pd.DataFrame({"maze": np.arange(n), **cols, "maze_size": size,
                       "cheese_quadrant": rng.integers(0, 4, n).astype(float),
                       "cheese_row": rng.integers(0, 3, n), "cheese_col": rng.integers(0, 3, n), "mouse_col": 0.0,
                       "has_decision_square": 1.0, "cheese_in_top_right_region": 0.0, "has_cheese": 1.0,
                       "cheese_coord_norm": rng.normal(10, 3, n),
                       "euclid_cheese_top_right_quadrant": rng.normal(3, 1, n),
                       "cheese_up_right_reachable": (rng.random(n) < 0.3).astype(float)})
    for h in (256, 500):
        df[f"cheese_{h}"] = got
        df[f"top_right_{h}"] = ~got & (rng.random(n) < 0.5)
        df[f"region_{h}"] = df[f"top_right_{h}"]
        df[f"neither_{h}"] = ~got & ~df[f"top_right_{h}"]
    return df


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    df = synthetic_episodes()
    rep = Report(out, meta={"mazes": len(df), "seconds": {"rollouts": 1.25}})
    rep.add(behaviour.b1(df, rep))
    rep.add(behaviour.factors(df, rep, FAST))
    extra = rep.add(Section("later", "A later experiment's section", results={"probe_accuracy": 0.8125}))
    extra.text(f"Probe accuracy {fmt(0.8125)}.").table(["Layer", "Accuracy"], [["block2", 0.8125]])
    paths = rep.write(wandb_mode="offline")
    return out, paths, json.loads(paths["results"].read_text())


def test_planted_effects_resolve_as_the_rules_say(written):
    _, _, res = written
    rows = {r["id"]: r for r in res["scorecard"]}
    assert rows["F3"]["verdict"] == verdicts.SUPPORTED and rows["F3"]["brier"] == pytest.approx(0.01)
    assert rows["F5"]["verdict"] == verdicts.CONTRADICTED and rows["F5"]["brier"] == pytest.approx(0.35 ** 2)
    assert rows["F9"]["verdict"] == verdicts.INCONCLUSIVE and rows["F9"]["brier"] is None
    assert rows["F11"]["verdict"] == verdicts.NOT_MEASURED  # no policy in this test
    resolved = [r["brier"] for r in res["scorecard"] if r["brier"] is not None]
    assert res["brier"]["n_resolved"] == len(resolved) >= 2
    assert res["brier"]["mean"] == pytest.approx(np.mean(resolved))
    b1 = res["sections"]["b1"]["readings"]["256"]
    assert rows["B1"]["value"] == pytest.approx(b1["two_quadrants"]["cheese"]["rate"])
    assert rows["B1"]["verdict"] == verdicts.agreed([verdicts.below_verdict(tuple(r["cheese"]["ci"]), 0.30)
                                                     for r in b1.values()])
    assert res["sections"]["later"]["probe_accuracy"] == 0.8125


def test_every_figure_exists_and_html_shows_it(written):
    out, paths, _ = written
    html = paths["html"].read_text()
    md = paths["markdown"].read_text()
    figs = re.findall(r'<img src="([^"]+)"', html)
    assert len(figs) >= 3 and set(figs) == set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    for f in figs:
        data = (out / f).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert 'id="later"' in html  # a later issue's section renders like the built-in ones


def test_scorecard_is_compact_with_published_values_folded_questions_and_calibration(written):
    out, paths, res = written
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    card = md[md.index("## Prediction scorecard"):md.index("## Settings")]
    assert "| ID | Claim | Credence | Measured [95% CI] | Published | Verdict | Brier |" in card
    assert "In a large batch of random mazes" not in card  # the long question texts are folded below
    assert md.index("## Prediction questions") > md.index("## B1")
    assert "<details><summary>Questions" in html and html.count("In a large batch of random mazes") == 10
    assert "−2.786 (4 factors)" in card  # F3's published coefficient, from published.toml
    cal = res["calibration"]
    assert {p["id"] for p in cal["points"]} >= {"F3", "F5"} and (out / "figures" / "calibration.png").exists()
    assert "figures/calibration.png" in card
    pub = res["sections"]["factors"]["published"]
    assert pub["regression_accuracy"]["ours"] == pytest.approx(res["sections"]["factors"]["multi"]["accuracy"])
    assert "83.3%" in pub["regression_accuracy"]["published"] and "Published counterparts" in md


def _numbers(x, out):
    if isinstance(x, dict):
        for k, v in x.items():
            out.update(re.findall(r"^-?\d+$", k))  # e.g. horizons and maze sizes are keys
            _numbers(v, out)
    elif isinstance(x, list):
        for v in x:
            _numbers(v, out)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        out.update({fmt(x), fmt(x, 2), fmt(float(x))})
    elif isinstance(x, str):
        out.update(re.findall(r"-?\d+\.\d+", x))
    return out


def test_every_number_in_the_report_is_in_results_json(written):
    _, paths, res = written
    allowed = _numbers(res, set())
    md = paths["markdown"].read_text()
    decimals = re.findall(r"-?\d+\.\d+", md)
    assert len(decimals) > 50
    missing = sorted(set(decimals) - allowed)
    assert not missing, missing[:10]
    for line in md.splitlines():  # integers in table cells (counts, sizes, horizons) too
        if line.startswith("| ") and not line.startswith("| ID") and "---" not in line:
            for cell in line.strip("|").split("|"):
                cell = cell.strip()
                if re.fullmatch(r"-?\d+", cell):
                    assert cell in allowed, (cell, line)


def test_wandb_offline_run_holds_the_same_numbers(written):
    from wandb_files import read_segment

    out, _, res = written
    logs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1
    seg = read_segment(logs[0])
    assert seg["exit_code"] == 0  # complete when log_wandb returned
    summary = seg["summary"]
    key = "factors/multi/accuracy"
    assert summary[key] == pytest.approx(res["sections"]["factors"]["multi"]["accuracy"])
    assert summary["later/probe_accuracy"] == 0.8125


def test_small_real_study_and_cli_errors(tmp_path):
    import jax

    from mazeagent.experiments.policies import NetPolicy
    from mazeagent.experiments.study import StudyConfig, run_study
    from mazeagent.cli import main
    from mazeagent.nets import ImpalaCNN

    net = ImpalaCNN(scale=1)
    params = net.init(jax.random.PRNGKey(0), np.zeros((1, 64, 64, 3), np.uint8))
    cfg = StudyConfig(mazes=48, chunk=64, f11_mazes=4, conformity_mazes=2, n_splits=5, n_boot=10, wandb_mode="disabled")
    paths = run_study(NetPolicy(net, params), tmp_path / "study", cfg, progress=False)
    res = json.loads(paths["results"].read_text())
    eps = pd.read_csv(paths["episodes"])
    assert len(eps) == 48 and {"level_seed", "cheese_256", "cheese_500", "t_top_right", "actions"} <= set(eps)
    assert res["meta"]["mazes"] == 48 and "b1" in res["sections"] and "conformity" in res["sections"]
    conf = res["sections"]["conformity"]
    u2 = next(r for r in res["scorecard"] if r["id"] == "U2")
    assert u2["verdict"] == verdicts.NO_FORECAST and u2["value"] == pytest.approx(conf["U2"]["conformity"]["rate"])
    # U2 counts every open square but the cheese's in the 2 sampled mazes: 2c^2 - 2 in a maze of c x c rooms
    per_maze = [2 * ((int(n) + 1) // 2) ** 2 - 2 for n in eps["maze_size"]]
    pairs = {a + b for i, a in enumerate(per_maze) for b in per_maze[i + 1:]}
    assert conf["U2"]["conformity"]["n"] == conf["n_sample_squares"] in pairs
    assert main(["study", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    with pytest.raises(ValueError, match="mazes"):
        StudyConfig(mazes=0)
