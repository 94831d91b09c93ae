"""procgenAISC's ``rand_region`` cheese rule (docs/rand-region.md) re-derived a second, independent way.

``tests/test_procgen_backend.py`` already has one re-derivation (numpy's MT19937, union-find) checked against real
procgen. This one shares nothing with it or with :mod:`mazeagent.env.levelgen` except the rule: Python's own
Mersenne Twister (the C one in ``random``, seeded as ``std::mt19937`` through ``setstate``), AISC's std::set
bookkeeping as plain set relabelling, and a breadth-first search over the level :mod:`mazeagent.env.levelgen`
returns to check that the free cells it opened are exactly the maze the mouse can walk. procgen is not needed.
"""
from __future__ import annotations

import random
from collections import deque

import numpy as np
import pytest

from mazeagent.env.levelgen import generate_batch
from mazeagent.maze.level import CHEESE, WALL

N_SEEDS = 1000
REGIONS = (0, 1, 2, 5, 13)  # 0: the corner, no draws; 1: only the corner qualifies; 13: clipped to n <= 13


def std_mt19937(seed: int) -> random.Random:
    """``std::mt19937(seed)`` as a ``random.Random``: std's ``init_genrand`` words loaded with ``setstate`` (index
    624: the first call twists), after which ``getrandbits(32)`` is std's tempered output."""
    words = [seed & 0xFFFFFFFF]
    for i in range(1, 624):
        words.append((1812433253 * (words[-1] ^ (words[-1] >> 30)) + i) & 0xFFFFFFFF)
    rng = random.Random()
    rng.setstate((3, (*words, 624), None))
    return rng


def test_python_twister_is_std_mt19937():
    """The C++ standard fixes the 10000th output of a default-seeded mt19937 ([rand.predef]): 4123659995."""
    rng = std_mt19937(5489)
    for _ in range(9999):
        rng.getrandbits(32)
    assert rng.getrandbits(32) == 4123659995


def aisc_level(seed: int, regions: tuple[int, ...], world: int = 25) -> tuple[int, int, list[tuple[int, int]], dict]:
    """(maze size n, background, free cells (x, y) in the order they opened, {rand_region: cheese (x, y) or None})
    for one level seed, following procgenAISC's maze_aisc reset draw by draw."""
    rng = std_mt19937(seed)

    def randn(k: int) -> int:
        return rng.getrandbits(32) % k

    rng.getrandbits(32)  # bg_pct_x: no visible effect
    background = randn(9)
    n = randn((world - 1) // 2) * 2 + 3
    links = [((x - 1, y), (x + 1, y)) for x in range(1, n - 1, 2) for y in range(0, n, 2)]
    links += [((x, y - 1), (x, y + 1)) for x in range(0, n, 2) for y in range(1, n - 1, 2)]
    owner = {(x, y): (x, y) for x in range(0, n, 2) for y in range(0, n, 2)}  # room -> the set it belongs to
    sets = {room: {room} for room in owner}
    opened: list[tuple[int, int]] = []
    while links:
        a, b = links.pop(randn(len(links)))  # std::vector::erase keeps the order of the rest
        if owner[a] == owner[b]:
            continue
        for cell in (a, ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2), b):
            if cell not in opened:
                opened.append(cell)
        keep, gone = owner[b], owner[a]  # a's set joins b's, as AISC's s1->insert(s0)
        for room in sets.pop(gone):
            owner[room] = keep
            sets[keep].add(room)
    after_maze = rng.getstate()
    cheese = {}
    for region in regions:
        rng.setstate(after_maze)
        rr = min(region, n)
        if rr == 0:
            cheese[region] = (n - 1, n - 1)
            continue
        randn(len(opened))  # drawn and thrown away
        cheese[region] = None
        for _ in range(100 * n):
            x, y = opened[randn(len(opened))]
            if (x, y) != (0, 0) and x >= n - rr and y >= n - rr:
                cheese[region] = (x, y)
                break
    return n, background, opened, cheese


def walkable(open_: np.ndarray, start: tuple[int, int]) -> set[tuple[int, int]]:
    """Squares (row, col) a 4-connected walk from ``start`` reaches over ``open_`` (breadth first)."""
    seen, todo = {start}, deque([start])
    while todo:
        r, c = todo.popleft()
        for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nb[0] < open_.shape[0] and 0 <= nb[1] < open_.shape[1] and open_[nb] and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return seen


@pytest.fixture(scope="module")
def reference():
    seeds = np.random.default_rng(1234).integers(0, 2**31 - 1, N_SEEDS)
    return seeds, [aisc_level(int(s), REGIONS) for s in seeds]


def test_levelgen_matches_the_independent_rule(reference):
    seeds, ref = reference
    sizes = np.array([r[0] for r in ref])
    assert set(sizes.tolist()) == set(range(3, 26, 2))  # every maze size is covered
    counts = {}
    for region in REGIONS:
        ours = generate_batch(seeds, rand_region=region)
        np.testing.assert_array_equal(ours.size, sizes)
        np.testing.assert_array_equal(ours.background, [r[1] for r in ref])
        missing = 0
        for i, (n, _, opened, cheese) in enumerate(ref):
            m = (25 - n) // 2
            mine = np.zeros((25, 25), bool)  # world [row = y, col = x]
            for x, y in opened:
                mine[y + m, x + m] = True
            assert np.array_equal(ours.grid[i] != WALL, mine), f"seed {seeds[i]}: maze differs"  # only cheese moves
            want = (-1, -1) if cheese[region] is None else (cheese[region][1] + m, cheese[region][0] + m)
            assert tuple(ours.cheese[i]) == want, f"seed {seeds[i]}, rand_region={region}"
            assert (ours.grid[i] == CHEESE).sum() == (cheese[region] is not None)
            missing += cheese[region] is None
            if region == REGIONS[0]:  # the maze itself, once: a spanning tree the mouse can walk all of
                assert len(opened) == 2 * ((n + 1) // 2) ** 2 - 1
                assert walkable(ours.grid[i] != WALL, tuple(ours.mouse[i])) == set(zip(*np.nonzero(mine)))
        counts[region] = missing
        if region == 1:  # only the corner square qualifies
            assert all(c[1] in (None, (n - 1, n - 1)) for n, _, _, c in ref)
    assert counts[0] == counts[13] == 0  # the corner, or (almost) the whole maze, qualifies
