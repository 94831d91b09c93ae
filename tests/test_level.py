import numpy as np
import pytest

from mazeagent.maze.level import (CELL_EDGES, Level, LevelBatch, WALL, pixel_to_world, world_to_activation,
                                  world_to_pixel_box, inner_to_world, world_to_inner)


def open_level(n=5):
    walls = np.zeros((n, n), bool)
    walls[1::2, 1::2] = True
    return Level(walls=walls, mouse=(0, 0), cheese=(n - 1, 0))


def test_cell_edges_match_procgen_hard_columns():
    # docs/maze-spec.md §5.3: widths 3,2,3,2,3,2,3,2,3,3,2,3,2,3,2,3,3,2,3,2,3,2,3,2,3
    assert list(np.diff(CELL_EDGES)) == [3, 2, 3, 2, 3, 2, 3, 2, 3, 3, 2, 3, 2, 3, 2, 3, 3, 2, 3, 2, 3, 2, 3, 2, 3]


def test_pixel_world_round_trip_and_y_flip():
    assert world_to_pixel_box((0, 0)) == (61, 64, 0, 3)  # world y=0 is the bottom rows
    assert world_to_pixel_box((24, 24)) == (0, 3, 61, 64)
    for r in range(25):
        for c in range(25):
            top, bot, left, right = world_to_pixel_box((r, c))
            assert pixel_to_world(top, left) == (r, c)
            assert pixel_to_world(bot - 1, right - 1) == (r, c)


def test_activation_cells():
    assert world_to_activation((24, 0), 16) == (0, 0)
    assert world_to_activation((0, 24), 16) == (15, 15)
    assert world_to_activation((0, 24), 8) == (7, 7)


def test_inner_world_round_trip():
    for n in (3, 15, 25):
        assert world_to_inner(inner_to_world((1, 2), n), n) == (1, 2)
    assert inner_to_world((0, 0), 3) == (11, 11)


def test_level_validation():
    lv = open_level()
    with pytest.raises(ValueError, match="on a wall"):
        Level(walls=lv.walls, mouse=(1, 1))
    with pytest.raises(ValueError, match="outside"):
        Level(walls=lv.walls, mouse=(5, 0))
    with pytest.raises(ValueError, match="odd"):
        Level(walls=np.zeros((4, 4), bool))


def test_world_codes_and_batch_round_trip():
    lv = open_level(7)
    world = lv.world_codes()
    assert world.shape == (25, 25) and world[0, 0] == WALL
    assert Level.from_world(world, 7, inner_to_world(lv.mouse, 7)) == lv
    batch = LevelBatch.stack([lv, open_level(3)])
    assert batch.level(0) == lv and batch.level(1) == open_level(3)


def test_level_rejects_non_int_squares():
    lv = open_level()
    for bad in [(0.5, 0), (True, 0), (0,), "ab", None]:
        with pytest.raises(ValueError, match="pair of ints"):
            Level(walls=lv.walls, mouse=bad)
