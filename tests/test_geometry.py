"""Geometry: hand-built mazes with known answers, and property tests on random spanning-tree mazes."""
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mazeagent.maze import geometry as G, landmarks as L, paths as P
from mazeagent.maze.level import Level, LevelBatch, inner_to_world, margin


def parse(art: str) -> Level:
    """Top row first; '#' wall, '.' open, 'M' mouse, 'C' cheese (one char per square, spaces ignored)."""
    rows = [r.replace(" ", "") for r in art.strip().splitlines()][::-1]
    grid = np.array([list(r) for r in rows])

    def find(ch):
        hits = np.argwhere(grid == ch)
        return tuple(int(v) for v in hits[0]) if len(hits) else None

    return Level(walls=grid == "#", mouse=find("M"), cheese=find("C"))


def one(level: Level, region_size: int = 5) -> dict:
    return {k: v[0] for k, v in G.factors(LevelBatch.stack([level]), region_size).items()}


def inner(level: Level, sq) -> tuple:
    m = margin(level.size)
    return None if sq[0] < 0 else (int(sq[0]) - m, int(sq[1]) - m)


L_MAZE = """
. . . . . . .
. # # # # # #
. . C . # # #
. # # # # # #
. # # # # # #
. # # # # # #
M # # # # # #
"""


def test_known_answers_l_maze():
    lv = parse(L_MAZE)
    f = one(lv, region_size=3)
    assert (f["decision_square_row"], f["decision_square_col"]) == (4, 0)
    expected = {
        "steps_cheese_decision_square": 2, "euclid_cheese_decision_square": 2,
        "steps_cheese_top_right": 10, "euclid_cheese_top_right": np.hypot(2, 4),
        "steps_decision_square_top_right": 8, "euclid_decision_square_top_right": np.hypot(2, 6),
        "steps_cheese_top_right_region": 8, "euclid_cheese_top_right_region": np.hypot(2, 2),  # (4, 4) is a wall
        "steps_decision_square_top_right_region": 6, "euclid_decision_square_top_right_region": np.hypot(2, 4),
        "taxi_cheese_top_right": 6, "steps_mouse_cheese": 6, "steps_mouse_top_right": 12,
        "cheese_path_divergence": 2, "cheese_up_right_reachable": 1, "mouse_dist_left_wall": 0,
        "cheese_quadrant": L.QUADRANTS.index("top_left"), "euclid_cheese_top_right_quadrant": 2,
        "cheese_in_top_right_region": 0, "cheese_coord_norm": np.hypot(13, 11), "maze_size": 7,
    }
    for k, v in expected.items():
        assert f[k] == pytest.approx(v), k
    # default 5x5 region: rows/cols >= 2, so the cheese is inside it
    f5 = one(lv)
    assert f5["cheese_in_top_right_region"] == 1 and f5["steps_cheese_top_right_region"] == 0
    assert set(G.PREDICTION_FACTORS.values()) <= set(f) and set(G.B2_FACTORS) <= set(f)


def test_no_decision_square_when_a_target_is_on_the_other_path():
    on_tr_path = parse(L_MAZE.replace("C", ".").replace(". . . . . . .", ". . . C . . .", 1))
    f = one(on_tr_path)
    assert np.isnan(f["decision_square_row"]) and f["has_decision_square"] == 0
    assert np.isnan(f["euclid_cheese_decision_square"]) and np.isnan(f["steps_decision_square_top_right_region"])
    assert not np.isnan(f["euclid_cheese_top_right"])  # the rest stays defined
    b = LevelBatch.stack([on_tr_path])
    for variant in G.DECISION_VARIANTS:
        assert inner(on_tr_path, G.decision_square(b, variant)[0]) is None


def test_graph_variant_when_top_right_is_on_the_way():
    lv = parse("""
    . . .
    . # .
    M # C
    """)
    b = LevelBatch.stack([lv])
    assert inner(lv, G.decision_square(b, "canonical")[0]) is None
    assert inner(lv, G.decision_square(b, "graph")[0]) == (1, 2)  # the cheese-path square after the top-right
    assert inner(lv, G.decision_square(b, "at_mouse")[0]) is None


def test_at_mouse_variant_and_decision_point_map():
    lv = parse("""
    . . .
    . # #
    M . C
    """)
    b = LevelBatch.stack([lv])
    for variant in G.DECISION_VARIANTS:
        assert inner(lv, G.decision_square(b, variant)[0]) == (0, 0)
    points = G.decision_point_map(b)[0]
    # every open square but the two targets: off the paths the two first steps differ too
    assert [inner(lv, sq) for sq in np.argwhere(points)] == [(0, 0), (0, 1), (1, 0), (2, 0), (2, 1)]
    later = LevelBatch.stack([parse(L_MAZE)])  # paths part at (4, 0), not at the mouse
    assert G.decision_square(later, "at_mouse")[0, 0] == -1 and G.decision_square(later)[0, 0] >= 0


def test_tie_breaking_in_a_maze_with_a_cycle():
    lv = parse("""
    . . .
    . # .
    M . C
    """)
    b = LevelBatch.stack([lv])
    tr = L.top_right_square(b)
    paths, lengths = P.shortest_paths(b.walls, b.mouse, tr)
    assert lengths[0] == 4
    # walking back from the top-right square, the predecessor is the first closer neighbour in MOVES order: left
    assert [inner(lv, sq) for sq in paths[0, :5]] == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]
    moves = P.next_step_towards(b, tr)[0]
    m = margin(3)
    assert P.MOVES[moves[m, m]] == "up"  # up and right both help; "up" comes first in MOVES
    assert moves[m + 2, m + 2] == -1 and moves[m + 1, m + 1] == -1  # target and wall
    assert inner(lv, G.decision_square(b)[0]) == (0, 0)  # cheese path goes right, top-right path goes up


def test_unreachable_cheese_and_closed_top_right():
    lv = parse("""
    C . .
    # # #
    M . .
    """)
    f = one(lv)
    assert np.isnan(f["steps_mouse_cheese"]) and np.isnan(f["decision_square_row"])
    assert f["euclid_mouse_cheese"] == 2  # spatial distances need no path
    closed = Level(walls=parse(L_MAZE).walls | (np.arange(7)[:, None] == 6) & (np.arange(7) == 6),
                   mouse=(0, 0), cheese=(4, 2))
    fc = one(closed)
    assert np.isnan(fc["euclid_cheese_top_right"]) and np.isnan(fc["steps_mouse_top_right"])
    assert L.top_right_square(LevelBatch.stack([closed]))[0, 0] == -1


def test_region_is_clipped_for_small_mazes():
    lv = parse("""
    . . .
    . # .
    M . C
    """)
    region = L.top_right_region(LevelBatch.stack([lv]), 5)[0]
    assert region.sum() == 9  # the whole 3x3 maze, no wrap-around
    with pytest.raises(ValueError, match="region size"):
        L.top_right_region(LevelBatch.stack([lv]), 0)


def test_path_divergence_map_and_stepwise_consistency():
    lv = parse(L_MAZE)
    g = G.analyse(LevelBatch.stack([lv]))
    div = g.path_divergence_map()[0]
    m = margin(7)
    assert div[m + 4, m + 2] == 2 and div[m + 4, m + 3] == 3  # cheese, and the dead end beyond it
    assert div[m + 6, m + 6] == 0 and div[m, m] == 0  # on the top-right path
    assert np.isnan(div[m + 1, m + 1])  # wall


# ---------------------------------------------------------------------------------------- property tests

def random_tree_maze(rng: np.random.Generator, n: int, extra_openings: int) -> Level:
    """A random spanning tree over the (even, even) rooms (procgen's shape), optionally with extra openings."""
    walls = np.ones((n, n), bool)
    walls[0::2, 0::2] = False
    c = (n + 1) // 2
    parent = list(range(c * c))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = [((r, col), (r, col + 2)) for r in range(0, n, 2) for col in range(0, n - 2, 2)]
    links += [((r, col), (r + 2, col)) for r in range(0, n - 2, 2) for col in range(0, n, 2)]
    for k in rng.permutation(len(links)):
        a, b = links[k]
        ra, rb = root(a[0] // 2 * c + a[1] // 2), root(b[0] // 2 * c + b[1] // 2)
        if ra != rb:
            parent[ra] = rb
            walls[(a[0] + b[0]) // 2, (a[1] + b[1]) // 2] = False
    closed = np.argwhere(walls)
    for sq in closed[rng.permutation(len(closed))[:extra_openings]]:
        walls[tuple(sq)] = False
    open_sq = np.argwhere(~walls)
    open_sq = open_sq[(open_sq != 0).any(axis=1)]
    cheese = tuple(int(v) for v in open_sq[rng.integers(len(open_sq))])
    return Level(walls=walls, mouse=(0, 0), cheese=cheese)


def bfs(walls: np.ndarray, src) -> dict:
    """Plain BFS over a 2-D grid, independent of the vectorised one under test."""
    dist, todo = {tuple(src): 0}, deque([tuple(src)])
    while todo:
        r, c = todo.popleft()
        for dr, dc in ((0, -1), (-1, 0), (1, 0), (0, 1)):
            q = (r + dr, c + dc)
            if 0 <= q[0] < walls.shape[0] and 0 <= q[1] < walls.shape[1] and not walls[q] and q not in dist:
                dist[q] = dist[(r, c)] + 1
                todo.append(q)
    return dist


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), extra=st.sampled_from([0, 0, 2, 6]))
def test_properties_on_random_mazes(seed, extra):
    rng = np.random.default_rng(seed)
    levels = [random_tree_maze(rng, int(rng.choice([3, 5, 7, 9, 11, 13, 25])), extra) for _ in range(6)]
    b = LevelBatch.stack(levels)
    f = G.factors(b)
    g = G.analyse(b)
    ds = g.decision_square
    tr = L.top_right_square(b)
    paths_c, len_c = P.shortest_paths(b.walls, b.mouse, b.cheese)
    paths_t, len_t = P.shortest_paths(b.walls, b.mouse, tr)
    for i, lv in enumerate(levels):
        walls = b.walls[i]
        d_mouse = bfs(walls, b.mouse[i])
        d_tr = bfs(walls, tr[i])
        # BFS distances agree with the plain BFS everywhere
        dm = P.step_distances(b.walls[i:i + 1], b.mouse[i:i + 1])[0]
        assert {tuple(int(v) for v in sq): int(dm[tuple(sq)]) for sq in np.argwhere(dm >= 0)} == d_mouse
        # paths are valid: start at the mouse, end at the target, adjacent open squares, BFS length
        for paths, lengths, target in ((paths_c, len_c, b.cheese[i]), (paths_t, len_t, tr[i])):
            p = paths[i, :lengths[i] + 1]
            assert lengths[i] == d_mouse[tuple(target)]
            assert tuple(p[0]) == tuple(b.mouse[i]) and tuple(p[-1]) == tuple(target)
            assert (np.abs(np.diff(p, axis=0)).sum(axis=1) == 1).all() and not walls[tuple(p.T)].any()
        # step >= taxicab >= Euclidean
        assert f["steps_mouse_cheese"][i] >= f["euclid_mouse_cheese"][i]
        assert f["steps_cheese_top_right"][i] >= f["taxi_cheese_top_right"][i] >= f["euclid_cheese_top_right"][i]
        assert f["steps_cheese_top_right"][i] == d_tr[tuple(b.cheese[i])]
        assert f["euclid_cheese_top_right_region"][i] <= f["euclid_cheese_top_right"][i]
        assert f["steps_cheese_top_right_region"][i] <= f["steps_cheese_top_right"][i]
        has_ds = ds[i, 0] >= 0
        cheese_on_tr = any((paths_t[i, :len_t[i] + 1] == b.cheese[i]).all(axis=1))
        tr_on_cheese = any((paths_c[i, :len_c[i] + 1] == tr[i]).all(axis=1))
        assert has_ds == (not cheese_on_tr and not tr_on_cheese)
        if has_ds:  # the decision square lies on both paths, where they part
            k = d_mouse[tuple(ds[i])]
            assert tuple(paths_c[i, k]) == tuple(ds[i]) == tuple(paths_t[i, k])
            assert tuple(paths_c[i, k + 1]) != tuple(paths_t[i, k + 1])
            assert f["steps_cheese_decision_square"][i] >= f["euclid_cheese_decision_square"][i]
            if extra == 0:  # in a tree the cheese -> top-right path runs through the decision square
                total = f["steps_cheese_decision_square"][i] + f["steps_decision_square_top_right"][i]
                assert total == f["steps_cheese_top_right"][i]
        else:
            assert np.isnan(f["steps_cheese_decision_square"][i])
        # divergence = squares of the cheese path off the top-right path
        off = len({tuple(s) for s in paths_c[i, :len_c[i] + 1]} - {tuple(s) for s in paths_t[i, :len_t[i] + 1]})
        assert f["cheese_path_divergence"][i] == off == g.path_divergence_map()[i][tuple(b.cheese[i])]
        # next_step_towards: one move closer to the cheese from every reachable square
        moves = P.next_step_towards(b, b.cheese)[i]
        d_c = bfs(walls, b.cheese[i])
        for sq, d in d_c.items():
            if d > 0:
                nxt = tuple(np.array(sq) + P.DELTAS[moves[sq]])
                assert d_c[nxt] == d - 1
        # up/right reachability matches a monotone-path search
        ur = L.up_right_reachable(b.walls[i:i + 1], b.mouse[i:i + 1])[0]
        cr, cc = b.cheese[i]
        mr, mc = b.mouse[i]
        sub = ~walls[mr:cr + 1, mc:cc + 1] if cr >= mr and cc >= mc else np.zeros((0, 0), bool)
        mono = bfs_monotone(sub)
        assert bool(ur[cr, cc]) == mono == bool(f["cheese_up_right_reachable"][i])


def bfs_monotone(open_sub: np.ndarray) -> bool:
    """Is the top-right corner of ``open_sub`` reachable from its bottom-left by up/right moves?"""
    if open_sub.size == 0 or not open_sub[0, 0]:
        return False
    reach = np.zeros_like(open_sub)
    for r in range(open_sub.shape[0]):
        for c in range(open_sub.shape[1]):
            reach[r, c] = open_sub[r, c] and ((r == 0 and c == 0) or (r > 0 and reach[r - 1, c])
                                              or (c > 0 and reach[r, c - 1]))
    return bool(reach[-1, -1])


def test_batch_shapes_and_world_coordinates():
    lv = parse(L_MAZE)
    b = LevelBatch.stack([lv, lv])
    ds = G.decision_square(b)
    assert ds.shape == (2, 2) and tuple(ds[0]) == inner_to_world((4, 0), 7)
    f = G.factors(b)
    assert all(v.shape == (2,) and v.dtype == float for v in f.values())
    with pytest.raises(ValueError, match="variant"):
        G.analyse(b).decision("nope")
