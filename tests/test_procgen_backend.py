"""The procgen backend against real procgen: levels read, edits written and then played, rand_region, bad edits."""
import copy
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from mazeagent.maze.level import Level, inner_to_world, world_to_pixel_box
from mazeagent.maze import edit
from mazeagent.procgen import InvalidStateError, ProcgenMaze
from required import require_module

require_module("procgen", "the procgen backend drives real procgen")

NOOP, LEFT, DOWN, UP, RIGHT = 4, 1, 3, 5, 7
SEED = 2024
N_REGION_ENVS = 300


# ---------------------------------------------------------------- an independent reference of the level rule
class _Draws:
    """procgen's RandGen stream for one level seed: std::mt19937 == numpy's MT19937 with legacy seeding."""

    def __init__(self, seed):
        self.bitgen = np.random.MT19937()
        self.bitgen._legacy_seeding(seed & 0xFFFFFFFF)
        self.block = self.bitgen.random_raw(624)
        self.key = self.bitgen.state["state"]["key"].tolist()  # the words after the first twist
        self.out, self.k = list(self.block), 0

    def __call__(self, n):
        if self.k == len(self.out):
            self.out += list(self.bitgen.random_raw(624))
        self.k += 1
        return int(self.out[self.k - 1]) % n

    def fork(self):
        """An independent copy that continues from the same position."""
        d = copy.copy(self)
        d.out, d.bitgen = list(self.out), np.random.MT19937()
        d.bitgen.state = self.bitgen.state
        return d


def reference_maze(seed):
    """(draws after Kruskal, n, background, free cells in the order they opened) for a hard-mode seed."""
    d = _Draws(seed)
    d(1)  # bg_pct_x
    background = d(9)
    n = d(12) * 2 + 3
    links = [((i - 1, j), (i + 1, j)) for i in range(1, n - 1, 2) for j in range(0, n, 2)]
    links += [((i, j - 1), (i, j + 1)) for i in range(0, n, 2) for j in range(1, n - 1, 2)]
    parent = {}

    def root(c):
        while parent.get(c, c) != c:
            c = parent[c]
        return c

    free = []
    while links:
        a, b = links.pop(d(len(links)))
        if root(a) != root(b):
            mid = ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2)
            free += [n * y + x for x, y in (a, mid, b) if n * y + x not in free]
            parent[root(a)] = root(b)
    return d, n, background, free


def reference_cheese(maze, rand_region):
    """Inner (row, col) cheese: stock ``place_objects`` (None) or procgenAISC ``deterministic_place`` (int)."""
    d0, n, _, free = maze
    d = d0.fork()
    if rand_region is None:
        cell = free[d(len(free))]
        while cell == 0:
            cell = free[d(len(free))]
    elif min(rand_region, n) == 0:
        cell = n * n - 1
    else:
        rr = min(rand_region, n)
        d(len(free))
        cell = next((c for c in (free[d(len(free))] for _ in range(n * 100))
                     if c != 0 and c % n >= n - rr and c // n >= n - rr), None)
    return None if cell is None else (cell // n, cell % n), d


_MAZES = {}


def maze_of(seed):
    if seed not in _MAZES:
        _MAZES[seed] = reference_maze(seed)
    return _MAZES[seed]


def reference_walls(maze):
    _, n, _, free = maze
    walls = np.ones((n, n), bool)
    for c in free:
        walls[c // n, c % n] = False
    return walls


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def stock():
    with ProcgenMaze(N_REGION_ENVS, SEED) as env:
        yield env


def fresh_env(seed=7, **kw):
    return ProcgenMaze(2, seed, **kw)


def custom_level(n=5, closed=(), mouse=(0, 0), cheese=None):
    walls = np.zeros((n, n), bool)
    for sq in closed:
        walls[sq] = True
    return Level(walls=walls, mouse=mouse, cheese=cheese)


def step0(env, action):
    """Step env 0 with ``action`` (env 1 idles); return (reward, done, info) of env 0."""
    obs, rew, done, info = env.step(np.array([action, NOOP]))
    return float(rew[0]), bool(done[0]), {k: int(v[0]) for k, v in info.items()}


# ---------------------------------------------------------------- reading
def test_reference_rule_matches_stock_procgen(stock):
    """The test's own re-derivation reproduces procgen exactly (grid, cheese, background, rng state)."""
    for i in range(N_REGION_ENVS):
        st = stock.get_state(i)
        lv = stock.read_level(i)
        maze = maze_of(lv.level_seed)
        cheese, d = reference_cheese(maze, None)
        assert lv.maze_size == maze[1] and lv.background == maze[2] == st.background
        assert np.array_equal(lv.level.walls, reference_walls(maze)) and lv.level.cheese == cheese
        assert st.mt_words("rg_state") == d.key + [d.k]


def test_read_levels_match_procgen_info(stock):
    info = stock.get_info()
    levels = stock.read_levels()
    assert [lv.level_seed for lv in levels] == info["level_seed"].tolist()
    assert all(lv.level.mouse == (0, 0) and lv.time == 0 and not lv.reflected for lv in levels)
    assert {lv.maze_size for lv in levels} == set(range(3, 26, 2))


# ---------------------------------------------------------------- edits that procgen then plays
def test_cheese_moved_next_to_mouse_is_eaten():
    env = fresh_env()
    lv = env.read_level(0)
    old_seed = lv.level_seed
    nb, action = ((0, 1), RIGHT) if not lv.level.walls[0, 1] else ((1, 0), UP)
    edited = edit.move_cheese(lv.level, nb)
    env.write_level(0, edited, time=0)
    assert env.read_level(0).level == edited
    rew, done, info = step0(env, action)
    assert (rew, done, info["prev_level_complete"], info["prev_level_seed"]) == (10.0, True, 1, old_seed)
    assert info["level_seed"] != old_seed and env.read_level(0).time == 0
    env.close()


def test_rendered_cheese_is_where_it_was_written():
    env = fresh_env(seed=8)
    base = edit.remove_cheese(env.read_level(0).level)
    env.write_level(0, base)
    frame0 = env.observe()[1][0].astype(int)
    for sq in [(base.size - 1, base.size - 1), (0, base.size - 1), (base.size - 1, 0)]:
        env.write_level(0, edit.move_cheese(base, sq))
        diff = np.argwhere((env.observe()[1][0].astype(int) != frame0).any(-1))
        top, bot, left, right = world_to_pixel_box(inner_to_world(sq, base.size))
        assert len(diff) >= 1  # the cheese is visible (a cell is 2-3 px wide)...
        assert diff[:, 0].min() >= top - 1 and diff[:, 0].max() <= bot and diff[:, 1].min() >= left - 1 \
            and diff[:, 1].max() <= right  # ...and only in its own cell (walls bleed at most one pixel)
    env.close()


def test_walls_opened_and_closed_block_as_written_and_mouse_moves():
    env = fresh_env()
    env.write_level(0, custom_level(closed=[(0, 1), (2, 1)], cheese=(4, 4)), time=0)
    assert step0(env, RIGHT)[:2] == (0.0, False)
    lv = env.read_level(0)
    assert lv.level.mouse == (0, 0) and lv.reflected and lv.time == 1  # blocked, but it turned right
    step0(env, UP)
    step0(env, RIGHT)
    assert env.read_level(0).level.mouse == (1, 1)  # (1, 1) is open in this custom level
    step0(env, UP)
    assert env.read_level(0).level.mouse == (1, 1)  # (2, 1) is closed
    env.write_level(0, custom_level(closed=[(0, 1)], mouse=(2, 2), cheese=(4, 4)))  # open (2, 1), move the mouse
    step0(env, LEFT)
    lv = env.read_level(0)
    assert lv.level.mouse == (2, 1) and not lv.reflected
    for action in (DOWN, DOWN, LEFT, DOWN):  # the second DOWN is blocked by (0, 1)
        step0(env, action)
    assert env.read_level(0).level.mouse == (0, 0)
    env.close()


def test_background_facing_and_clock_are_written():
    env = fresh_env()
    lv = env.read_level(0)
    frame = env.observe()[1][0].copy()
    env.write_level(0, edit.remove_cheese(lv.level), background=(lv.background + 1) % 9,
                    reflected=True, time=498)
    back = env.read_level(0)
    assert (back.background, back.reflected, back.time) == ((lv.background + 1) % 9, True, 498)
    assert not np.array_equal(env.observe()[1][0], frame)
    assert step0(env, NOOP)[1] is False
    rew, done, info = step0(env, NOOP)
    assert (rew, done, info["prev_level_complete"]) == (0.0, True, 0)  # timeout at 500 without cheese
    env.close()


def test_easy_mode_levels_and_size():
    env = ProcgenMaze(4, 3, distribution_mode="easy")
    for i, lv in enumerate(env.read_levels()):
        assert lv.distribution_mode == "easy" and 3 <= lv.maze_size <= 15 and lv.level.mouse == (0, 0)
        env.write_level(i, lv.level)
        assert env.read_level(i) == lv
    with pytest.raises(ValueError, match="does not fit"):
        env.write_level(0, custom_level(n=17))
    env.close()


# ---------------------------------------------------------------- bad edits: clear errors, procgen alive
def assert_alive_and_unchanged(env, before):
    assert env.read_level(0) == before
    obs, rew, done, info = env.step(np.array([NOOP, NOOP]))
    assert obs.shape == (2, 64, 64, 3) and env.read_level(0).time == before.time + 1


def test_bad_edits_raise_and_leave_procgen_alive():
    env = fresh_env(seed=9)
    before = env.read_level(0)
    lv = before.level
    wall = tuple(int(v) for v in np.argwhere(lv.walls)[0])
    raw = env.get_state_bytes(0)
    bad = [
        (lambda: env.write_level(0, edit.move_cheese(lv, wall)), ValueError, "on a wall"),
        (lambda: env.write_level(0, dataclasses.replace(lv, cheese=wall)), ValueError, "on a wall"),
        (lambda: env.write_level(0, edit.move_mouse(lv, (lv.size, 0))), ValueError, "outside"),
        (lambda: env.write_level(0, dataclasses.replace(lv, mouse=(lv.size, 0))), ValueError, "outside"),
        (lambda: env.set_state(0, raw[:-4]), InvalidStateError, "truncated"),
        (lambda: env.set_state(0, raw[:5000] + b"x" + raw[5001:]), InvalidStateError, "mt19937"),
        (lambda: env.set_state(0, raw[:8] + b"mize" + raw[12:]), InvalidStateError, "game name"),
        (lambda: env.set_state(0, raw[:48] + bytes(20) + raw[48:]), InvalidStateError, "aisc"),
        (lambda: env.set_state(0, _edited(env, lambda st: st.set_mouse((40, 3)))), InvalidStateError, "outside"),
        (lambda: env.write_level(0, custom_level(closed=[(0, 1), (1, 0)])), None, None),  # allowed unless asked
        (lambda: env.write_level(0, custom_level(closed=[(0, 1), (1, 0)]), require_simply_connected=True),
         ValueError, "not connected"),
        (lambda: env.write_level(0, custom_level(), require_simply_connected=True), ValueError, "cycle"),
        (lambda: env.write_level(0, lv, background=9), ValueError, "background"),
        (lambda: env.write_level(0, "maze"), ValueError, "Level"),
        (lambda: env.write_level(5, lv), ValueError, "env index"),
        (lambda: env.act(np.array([20, 4])), ValueError, "actions"),
    ]
    for fn, exc, match in bad:
        if exc is None:
            fn()
            env.set_state(0, raw)  # undo the allowed edit
            continue
        with pytest.raises(exc, match=match):
            fn()
        assert_alive_and_unchanged(env, before)
        env.set_state(0, raw)  # reset the clock the check advanced
    env.close()


def _edited(env, edit):
    st = env.get_state(0)
    edit(st)
    return st


def test_unvalidated_truncated_state_really_kills_procgen():
    """Why the validation exists: the same bytes sent straight to procgen end the whole process."""
    code = ("import numpy as np; from mazeagent.procgen import ProcgenMaze;"
            "e = ProcgenMaze(1, 0); b = e.get_state_bytes(0)[:-4];"
            "e.env.call_c_func('set_state', 0, b, len(b)); print('survived')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "survived" not in p.stdout and "fassert" in p.stdout


# ---------------------------------------------------------------- rand_region on stock procgen
@pytest.mark.slow  # one JAX compile of the level generator per region size (rand_region is static there)
@pytest.mark.parametrize("rand_region", [1, 2, 5, 13, 25])
def test_rand_region_matches_aisc_rule(rand_region):
    """>= 300 levels per region size: the first levels and four forced resets of 60 envs."""
    env = ProcgenMaze(N_REGION_ENVS // 5, SEED, rand_region=rand_region)
    checked = set()
    for reset in range(5):
        if reset:
            env.act(np.full(env.num_envs, -1))  # force every env onto its next level (edited on the way)
        rew, obs, first = env.observe()
        assert first.all()
        for lv in env.read_levels():
            maze = maze_of(lv.level_seed)
            cheese, _ = reference_cheese(maze, rand_region)
            n, rr = lv.maze_size, min(rand_region, lv.maze_size)
            assert np.array_equal(lv.level.walls, reference_walls(maze)), "the maze itself is stock procgen's"
            assert cheese is not None and lv.level.cheese == cheese, (lv.level_seed, rand_region)
            assert cheese != (0, 0) and cheese[0] >= n - rr and cheese[1] >= n - rr
            checked.add(lv.level_seed)
    assert len(checked) >= N_REGION_ENVS - 3
    env.close()


@pytest.mark.slow
def test_rand_region_zero_is_the_top_right_corner_and_new_episodes_are_edited():
    env = ProcgenMaze(8, SEED + 1, rand_region=0)
    lv = env.read_level(0).level
    nb, action = ((0, 1), RIGHT) if not lv.walls[0, 1] else ((1, 0), UP)
    env.write_level(0, edit.move_cheese(lv, nb))
    obs, rew, done, info = env.step(np.array([action] + [NOOP] * 7))
    # the re-edit of the new level keeps what the finished episode reported
    assert (rew[0], done[0], info["prev_level_complete"][0], info["prev_level_seed"][0]) == (10.0, True, 1, lv.seed)
    new = env.read_level(0)
    assert new.level_seed == info["level_seed"][0] and new.level.cheese == (new.maze_size - 1, new.maze_size - 1)
    rng = np.random.default_rng(0)
    seen = 0
    for t in range(40):
        env.act(np.where(rng.random(8) < 0.1, -1, rng.integers(0, 15, 8)))
        for i in np.flatnonzero(env.observe()[2]):
            lv = env.read_level(int(i))
            assert lv.time == 0 and lv.level.cheese == (lv.maze_size - 1, lv.maze_size - 1)
            seen += 1
    assert seen >= 10
    env.close()


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_envs=0, seed=1), "num_envs"), (dict(num_envs=2, seed=-1), "seed"),
    (dict(num_envs=2, seed=1, rand_region=26), "rand_region"),
    (dict(num_envs=2, seed=1, rand_region=2.5), "rand_region"),
    (dict(num_envs=2, seed=1, distribution_mode="memory"), "distribution_mode"),
    (dict(num_envs=2, seed=1, num_levels=-3), "num_levels"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProcgenMaze(**kwargs)
