"""`mazeagent maze show|stats` end to end on levels from the real level generator."""
import json

import numpy as np
import pytest
from PIL import Image

from mazeagent.cli import main
from mazeagent.env import levelgen
from mazeagent.maze import geometry as G
from mazeagent.maze.cli import parse_seeds
from mazeagent.maze.level import WALL, LevelBatch
from mazewalk import distances


def test_show_marks_the_landmarks_and_writes_a_png(capsys, tmp_path):
    out = tmp_path / "seed0.png"
    assert main(["maze", "show", "--seed", "0", "--png", str(out), "--paths"]) == 0
    text = capsys.readouterr().out
    level = levelgen.generate_batch(np.array([0])).levels()[0]
    grid_lines = [ln for ln in text.splitlines() if ln[:2].strip().isdigit() and "##" in ln]
    assert len(grid_lines) == level.size
    row_of = {int(ln[:2]): ln[5:-2] for ln in grid_lines}  # inner row -> its squares, 2 chars each

    def mark(sq):
        return row_of[sq[0]][2 * sq[1]]

    assert mark(level.mouse) == "M" and mark(level.cheese) == "C"
    assert mark(level.top_right) == "T"
    ds = G.decision_square(LevelBatch.stack([level]))[0]
    m = (25 - level.size) // 2
    assert ds[0] >= 0  # seed 0 has a decision square
    assert mark((ds[0] - m, ds[1] - m)) == "D" and f"decision square ({ds[0] - m}, {ds[1] - m})" in text
    assert "legend:" in text and "F10" in text
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > 200
    rgb = np.asarray(img.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 40) & (rgb[..., 2] < 40)  # the decision-square marker
    assert red.sum() > 20


def test_show_rand_region_puts_the_cheese_in_the_region(capsys):
    assert main(["maze", "show", "--seed", "3", "--rand-region", "2"]) == 0
    text = capsys.readouterr().out
    level = levelgen.generate_batch(np.array([3]), rand_region=2).levels()[0]
    n = level.size
    assert level.cheese[0] >= n - 2 and level.cheese[1] >= n - 2
    assert f"cheese {level.cheese}" in text and "rand_region=2" in text


def test_stats_json_lines_match_the_geometry(capsys):
    assert main(["maze", "stats", "--seeds", "0:6", "--json"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["seed"] for r in rows] == list(range(6))
    assert all(r["rand_region"] is None and r["region_size"] == 5 for r in rows)
    f = G.factors(levelgen.generate_batch(np.arange(6)).batch())
    assert set(G.PREDICTION_FACTORS.values()) | set(G.B2_FACTORS) <= set(rows[0])
    for i, row in enumerate(rows):
        for k, v in f.items():
            assert (row[k] is None) if np.isnan(v[i]) else row[k] == pytest.approx(v[i], abs=1e-6), k
    assert all((r["decision_square_row"] is None) == (r["has_decision_square"] == 0) for r in rows)
    assert any(r["decision_square_row"] is None for r in rows)  # NaN is written as JSON null


def _walked_steps(seeds) -> list[dict[str, int]]:
    """Mouse-cheese, mouse-corner and cheese-corner step counts by a plain breadth-first walk (tests/mazewalk.py)."""
    g = levelgen.generate_batch(np.asarray(seeds))
    out = []
    for i in range(len(g)):
        open_, corner = g.grid[i] != WALL, (12 + int(g.size[i]) // 2,) * 2  # world square of inner (n-1, n-1)
        mouse, cheese = tuple(int(v) for v in g.mouse[i]), tuple(int(v) for v in g.cheese[i])
        from_mouse = distances(open_, mouse)
        out.append({"steps_mouse_cheese": from_mouse[cheese], "steps_mouse_top_right": from_mouse[corner],
                    "steps_cheese_top_right": distances(open_, cheese)[corner]})
    return out


def test_stats_step_counts_match_an_independent_walk(capsys):
    assert main(["maze", "stats", "--seeds", "0:12", "--json"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    walked = _walked_steps(range(12))
    assert [{k: r[k] for k in walked[0]} for r in rows] == walked
    assert len({w["steps_mouse_cheese"] for w in walked}) > 3  # not one value for all


def test_stats_summary_table(capsys):
    assert main(["maze", "stats", "--seeds", "0,1,2"]) == 0
    out = capsys.readouterr().out
    assert "3 levels (stock)" in out and "euclid_cheese_top_right (F3)" in out
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines()[2:] if ln.strip()}
    for key in ("steps_mouse_cheese", "steps_mouse_top_right"):  # defined, mean, min, max of the walked counts
        v = [w[key] for w in _walked_steps([0, 1, 2])]
        assert lines[key] == ["3", f"{np.mean(v):.3f}", f"{min(v):.2f}", f"{max(v):.2f}"], key


@pytest.mark.parametrize("argv, message", [
    (["maze", "stats", "--seeds", "5:3"], "empty seed range"),
    (["maze", "stats", "--seeds", "a:b"], "--seeds must be"),
])
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_bad_values_are_clean_errors(capsys):
    assert main(["maze", "show", "--seed", "0", "--rand-region", "99"]) == 2
    assert "rand_region" in capsys.readouterr().err
    assert main(["maze", "stats", "--seeds", "0:2", "--region-size", "0"]) == 2
    assert "region-size" in capsys.readouterr().err


def test_parse_seeds():
    assert parse_seeds("3:6").tolist() == [3, 4, 5]
    assert parse_seeds("7").tolist() == [7] and parse_seeds("1,9").tolist() == [1, 9]
