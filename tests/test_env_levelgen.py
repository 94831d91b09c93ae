"""Level generation and level-seed streams vs the real procgen 0.10.7 package (docs/maze-spec.md §1-§3)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.env import mt19937 as mt
from mazeagent.env.levelgen import generate_batch, procgen_level_seeds
from mazeagent.maze.level import CHEESE, SPACE, WALL, Level, margin
from mazeagent.procgen.state import parse_state
from required import require_module

procgen = require_module("procgen", "real procgen is the reference for level generation")

N_LEVELS = 560  # per mode; with the reset streams below: > 1,000 levels vs procgen


def procgen_levels(num: int, mode: str, rand_seed: int, resets: int = 1):
    """Real procgen's (seed, grid, mouse, size, background) for every env, over ``resets`` forced resets."""
    env = procgen.ProcgenGym3Env(num=num, env_name="maze", distribution_mode=mode, rand_seed=rand_seed,
                                 num_threads=0)
    out = []
    for _ in range(resets):
        out += [parse_state(b) for b in env.callmethod("get_state")]
        env.act(np.full(num, -1, np.int32))  # action -1: reset to the next level seed (docs/maze-spec.md §1.2)
    env.close()
    return out


def assert_same_levels(states, ours):
    seeds = np.array([s.level_seed for s in states])
    np.testing.assert_array_equal(ours.seed, seeds)
    bad = [int(s.level_seed) for i, s in enumerate(states) if not (
        np.array_equal(ours.grid[i], s.grid) and tuple(ours.mouse[i]) == s.mouse
        and ours.size[i] == s.maze_size and ours.background[i] == s.background
        and tuple(ours.cheese[i]) == s.cheese_squares()[0])]
    assert bad == [], f"{len(bad)} of {len(states)} levels differ from procgen, e.g. seeds {bad[:5]}"


@pytest.mark.parametrize("mode", ["hard", "easy"])
def test_levels_match_procgen(mode):
    states = procgen_levels(N_LEVELS, mode, rand_seed=2024)
    ours = generate_batch(np.array([s.level_seed for s in states]), distribution_mode=mode)
    W = 25 if mode == "hard" else 15
    assert ours.grid.shape == (N_LEVELS, W, W)
    assert_same_levels(states, ours)
    assert len(set(ours.size.tolist())) > 5  # many maze sizes were covered


def test_seed_sequence_matches_procgen_resets():
    num, resets, rand_seed = 24, 4, 31337
    states = procgen_levels(num, "hard", rand_seed, resets)
    seeds = procgen_level_seeds(rand_seed, num, resets)
    assert seeds.shape == (num, resets) and seeds.dtype == np.int32
    np.testing.assert_array_equal(seeds.T.reshape(-1), [s.level_seed for s in states])
    assert_same_levels(states, generate_batch(seeds.T.reshape(-1)))


def test_seed_range_matches_procgen():
    env = procgen.ProcgenGym3Env(num=16, env_name="maze", num_levels=200, start_level=1000, rand_seed=5,
                                 num_threads=0)
    got = [parse_state(b).level_seed for b in env.callmethod("get_state")]
    ours = procgen_level_seeds(5, 16, 3, num_levels=200, start_level=1000)
    np.testing.assert_array_equal(ours[:, 0], got)
    assert ((ours >= 1000) & (ours < 1200)).all()


def test_mt19937_matches_std_stream():
    """JAX stream == numpy's MT19937 (its legacy seeding is std::mt19937's), across a twist and for seeds >= 2**31
    (the uint32 % int32 pitfall would break those)."""
    draw = jax.jit(mt.draw)
    for seed in (0, 5489, 2**31 + 7, 2**32 - 1):
        ref = mt.np_outputs(seed, 700)
        np.testing.assert_array_equal(np.asarray(mt.first_outputs(jnp.uint32(seed))), ref[:624])
        s, got = mt.stream(jnp.uint32(seed)), []
        for _ in range(700):
            x, s = draw(s)
            got.append(int(x))
        np.testing.assert_array_equal(np.array(got, np.uint32), ref)
    big = jnp.uint32(0xFFFFFFF0)
    assert int(mt.randn(big, 9)) == 0xFFFFFFF0 % 9


def test_rand_region_moves_only_the_cheese():
    """procgenAISC's rule (docs/rand-region.md): same maze as stock, cheese in the top-right rr x rr block
    (rr = min(r, n))."""
    seeds = np.arange(300, 500)
    stock = generate_batch(seeds)
    for r in (1, 5):
        aisc = generate_batch(seeds, rand_region=r)
        np.testing.assert_array_equal(aisc.grid == WALL, stock.grid == WALL)
        for i in range(len(seeds)):
            n, m = int(aisc.size[i]), margin(int(aisc.size[i]))
            row, col = (int(v) - m for v in aisc.cheese[i])
            rr = min(r, n)
            if row >= 0:
                assert row >= n - rr and col >= n - rr and (row, col) != (0, 0)
            assert (aisc.grid[i] == CHEESE).sum() == (row >= 0)
    # r = 1: only the top-right square qualifies, so some levels end with no cheese (-1, -1) or a corner cheese
    one = generate_batch(seeds, rand_region=1)
    n_corner = sum(tuple(one.cheese[i]) == (int(one.size[i]) - 1 + margin(int(one.size[i])),) * 2
                   for i in range(len(seeds)))
    assert n_corner + int((one.cheese[:, 0] < 0).sum()) == len(seeds)


def test_levels_and_batch_use_the_level_convention():
    g = generate_batch(np.array([0, 1, 2, 99]))
    levels, batch = g.levels(), g.batch()
    for i, lv in enumerate(levels):
        assert isinstance(lv, Level) and lv.seed == int(g.seed[i]) and lv.mouse == (0, 0)
        np.testing.assert_array_equal(lv.world_codes(), g.grid[i])
        m = margin(lv.size)
        assert (lv.cheese[0] + m, lv.cheese[1] + m) == tuple(g.cheese[i])
        assert batch.level(i) == lv
        assert g.grid[i][m, m] == SPACE  # bottom-left maze square (row 0 = bottom) is the start
    np.testing.assert_array_equal(batch.size, g.size)
    with pytest.raises(ValueError, match="hard-mode"):
        generate_batch(np.array([0]), distribution_mode="easy").levels()


@pytest.mark.parametrize("kwargs, match", [
    (dict(distribution_mode="memory"), "distribution_mode"),
    (dict(rand_region=26), "rand_region"),
    (dict(rand_region=-1), "rand_region"),
    (dict(rand_region=True), "rand_region"),
    (dict(rand_region=2.5), "rand_region"),
])
def test_generate_batch_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_batch(np.array([1, 2]), **kwargs)


def test_bad_seeds_rejected():
    with pytest.raises(ValueError, match="1-D array of ints"):
        generate_batch(np.array([[1, 2]]))
    with pytest.raises(ValueError, match="1-D array of ints"):
        generate_batch(np.array([1.5]))
    with pytest.raises(ValueError, match="int32"):
        generate_batch(np.array([2**31]))
    with pytest.raises(ValueError, match="rand_seed"):
        procgen_level_seeds(-1, 2, 2)
    with pytest.raises(ValueError, match="num_levels"):
        procgen_level_seeds(0, 2, 2, num_levels=-3)
    assert len(generate_batch(np.array([], np.int64))) == 0
