"""Level edits: every good edit gives the intended level, every bad one a clear ValueError (and no new level)."""
import numpy as np
import pytest

from mazeagent.env.levelgen import generate_batch
from mazeagent.maze import edit as E
from mazeagent.maze.level import Level

# A 5x5 procgen-shaped spanning tree: rooms at (even, even), pillars at (odd, odd).
TREE = """
. . . . .
. # # # .
. # . . .
. # # # .
. . . # .
"""


def tree(cheese=(4, 4)) -> Level:
    rows = [r.replace(" ", "") for r in TREE.strip().splitlines()][::-1]
    return Level(walls=np.array([[ch == "#" for ch in r] for r in rows]), mouse=(0, 0), cheese=cheese)


def test_tree_fixture_is_on_distribution():
    lv = tree()
    assert E.distribution_violations(lv) == [] and E.is_on_distribution(lv)
    assert E.is_simply_connected(lv) and E.is_connected(lv)


def test_move_and_remove_cheese_and_move_mouse():
    lv = tree()
    moved = E.move_cheese(lv, (2, 2))
    assert moved.cheese == (2, 2) and moved.walls is not lv.walls and np.array_equal(moved.walls, lv.walls)
    assert lv.cheese == (4, 4)  # the original is untouched
    assert E.remove_cheese(lv).cheese is None
    assert E.move_cheese(E.remove_cheese(lv), (0, 4)).cheese == (0, 4)  # adds a cheese back
    assert E.move_mouse(lv, (2, 4)).mouse == (2, 4)
    assert E.move_cheese(lv, np.array([2, 2])).cheese == (2, 2)  # numpy ints are fine
    assert E.move_cheese(lv, (0, 0), allow_on_mouse=True).cheese == (0, 0)


@pytest.mark.parametrize("edit, match", [
    (lambda lv: E.move_cheese(lv, (1, 1)), r"cheese square \(1, 1\) is on a wall"),
    (lambda lv: E.move_cheese(lv, (5, 0)), r"outside the 5x5 maze"),
    (lambda lv: E.move_cheese(lv, (-1, 0)), r"outside the 5x5 maze"),
    (lambda lv: E.move_cheese(lv, (0, 0)), r"mouse's square"),
    (lambda lv: E.move_cheese(lv, (1.0, 2)), r"pair of ints"),
    (lambda lv: E.move_cheese(lv, (True, 2)), r"pair of ints"),
    (lambda lv: E.move_cheese(lv, 3), r"pair of ints"),
    (lambda lv: E.move_mouse(lv, (3, 3)), r"mouse square \(3, 3\) is on a wall"),
    (lambda lv: E.move_mouse(lv, (0, 7)), r"outside the 5x5 maze"),
    (lambda lv: E.move_mouse(lv, (4, 4)), r"holds the cheese"),
    (lambda lv: E.close_walls(lv, (0, 0)), r"mouse stands there"),
    (lambda lv: E.close_walls(lv, (4, 4)), r"cheese is there"),
    (lambda lv: E.close_walls(lv, (9, 9)), r"outside"),
    (lambda lv: E.close_walls(lv, []), r"no squares"),
    (lambda lv: E.open_walls(lv, 5), r"pair or an iterable"),
    # connectivity requirements
    (lambda lv: E.close_walls(lv, (2, 0), require_connected=True), r"not connected: .* cannot be reached"),
    (lambda lv: E.open_walls(lv, (1, 1), require_simply_connected=True), r"not simply connected: .*1 independent"),
    (lambda lv: E.open_walls(lv, [(1, 1), (3, 1)], require_simply_connected=True), r"2 independent cycle"),
    (lambda lv: E.close_walls(lv, (2, 0), require_simply_connected=True), r"not connected"),
    (lambda lv: E.move_mouse(E.close_walls(lv, (2, 0)), (2, 2), require_connected=True), r"not connected"),
])
def test_bad_edits_raise_clear_errors(edit, match):
    lv = tree()
    before = (lv.walls.copy(), lv.mouse, lv.cheese)
    with pytest.raises(ValueError, match=match):
        edit(lv)
    assert np.array_equal(lv.walls, before[0]) and (lv.mouse, lv.cheese) == before[1:]  # nothing changed


def test_wall_edits():
    lv = tree()
    opened = E.open_walls(lv, (1, 1))
    assert not opened.walls[1, 1] and lv.walls[1, 1]
    assert E.is_connected(opened) and not E.is_simply_connected(opened)
    assert E.open_walls(opened, (1, 1), require_connected=True) == opened  # already open: unchanged
    cut = E.close_walls(lv, (2, 0))  # allowed without requirements ...
    assert cut.walls[2, 0] and not E.is_connected(cut)
    assert (4, 0) in E.unreachable_squares(cut)
    both = E.close_walls(E.open_walls(lv, [(1, 1), (3, 1)]), [(1, 0)], require_simply_connected=False)
    assert both.walls[1, 0] and not both.walls[1, 1] and not both.walls[3, 1]
    # edits that keep a tree pass the strictest check: close a dead end; re-route by opening then closing
    assert E.close_walls(lv, (0, 2), require_simply_connected=True).walls[0, 2]
    rerouted = E.close_walls(E.open_walls(lv, (1, 2)), (0, 1), require_simply_connected=True)
    assert E.is_on_distribution(rerouted)  # still a spanning tree over the rooms


def test_distribution_violations_name_each_problem():
    lv = tree()
    assert any("both coordinates odd are open" in p for p in E.distribution_violations(E.open_walls(lv, (1, 1))))
    closed_room = E.close_walls(lv, (2, 2))
    assert any("both coordinates even are walls" in p for p in E.distribution_violations(closed_room))
    assert any("spanning tree" in p for p in E.distribution_violations(E.close_walls(lv, (2, 0))))
    assert any("not at the start" in p for p in E.distribution_violations(E.move_mouse(lv, (2, 4))))
    assert E.is_on_distribution(E.move_mouse(lv, (2, 4)), check_mouse=False)
    assert any("no cheese" in p for p in E.distribution_violations(E.remove_cheese(lv)))
    assert E.is_on_distribution(E.remove_cheese(lv), check_cheese=False)


def test_generated_levels_are_on_distribution():
    for lv in generate_batch(np.arange(8)).levels():
        assert E.distribution_violations(lv) == [], lv.seed
