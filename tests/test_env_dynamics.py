"""Dynamics, auto-reset, info and observations vs the real procgen 0.10.7 package (docs/maze-spec.md §4-§5), plus
the API's edges."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.env import EnvParams, level_from_state, make_vec_env, reset, state_from_level
from mazeagent.env import step as eager_step
from mazeagent.env import core
from mazeagent.env.levelgen import env_seed_words, generate_batch, maze_sizes, procgen_level_seeds
from mazeagent.env.mt19937 import np_outputs
from mazeagent.maze.level import Level, inner_to_world, world_to_pixel_box
from mazeagent.procgen.state import parse_state
from required import require_module

procgen = require_module("procgen", "real procgen is the reference for the dynamics")

PARAMS = EnvParams()
step = jax.jit(eager_step, static_argnums=3)  # one compile for the whole module
observe = jax.jit(core.observe, static_argnums=1)
N_ENVS, N_STEPS, RAND_SEED = 32, 640, 4242  # 20,480 env-steps
SINGLE_STEPS = 100  # the vmapped single-env API runs alongside for this many steps (it regenerates every step)


@pytest.fixture(scope="module")
def rollout():
    """Both envs with the same random actions; ours with a small refill chunk so forced refills happen too."""
    vec = make_vec_env(PARAMS, N_ENVS, chunk=5)
    pg = procgen.ProcgenGym3Env(num=N_ENVS, env_name="maze", distribution_mode="hard", rand_seed=RAND_SEED,
                                num_threads=0)
    step_fn = jax.jit(vec.step)
    single_step = jax.jit(jax.vmap(lambda s, a: eager_step(None, s, a, PARAMS)))
    obs, state = vec.reset_procgen(RAND_SEED)
    single_obs, single = jax.vmap(lambda w: core.reset_from_word(w, PARAMS))(
        jnp.asarray(env_seed_words(RAND_SEED, N_ENVS)))
    _, pg_obs, pg_first = pg.observe()
    rec = dict(obs_bad=int((np.asarray(obs) != pg_obs["rgb"]).any(axis=(1, 2, 3)).sum()), mismatch=[],
               dones=0, cheese=0, frames=N_ENVS, seeds=[np.asarray(state.level_seed)], single_bad=[],
               single_cheese=0)
    rec["single_bad"] += ["obs"] * int((np.asarray(single_obs) != pg_obs["rgb"]).any(axis=(1, 2, 3)).sum())
    assert pg_first.all()
    rng = np.random.default_rng(RAND_SEED)
    key = jax.random.PRNGKey(0)
    for t in range(N_STEPS):
        actions = rng.integers(0, 15, size=N_ENVS, dtype=np.int32)
        obs, state, reward, done, info = step_fn(key, state, jnp.asarray(actions))
        pg.act(actions)
        pg_rew, pg_obs, pg_first = pg.observe()
        pg_info = pg.get_info()
        states = [parse_state(b) for b in pg.callmethod("get_state")]
        ours = dict(reward=np.asarray(reward), done=np.asarray(done), mouse=np.asarray(state.mouse),
                    reflected=np.asarray(state.reflected), time=np.asarray(state.time),
                    **{k: np.asarray(v) for k, v in info.items()})
        theirs = dict(reward=pg_rew, done=pg_first, mouse=np.array([s.mouse for s in states]),
                      reflected=np.array([s.reflected for s in states]), time=np.array([s.time for s in states]),
                      **{k: np.array([i[k] for i in pg_info]) for k in info})
        for k in ours:
            bad = np.flatnonzero(ours[k].reshape(N_ENVS, -1).astype(np.int64)
                                 != theirs[k].reshape(N_ENVS, -1).astype(np.int64))
            rec["mismatch"] += [(t, k, int(i)) for i in bad]
        rec["obs_bad"] += int((np.asarray(obs) != pg_obs["rgb"]).any(axis=(1, 2, 3)).sum())
        if t < SINGLE_STEPS:
            single_obs, single, s_rew, s_done, s_info = single_step(single, jnp.asarray(actions))
            rec["single_cheese"] += int(np.asarray(s_rew).sum() > 0)
            for name, a, b in [("obs", single_obs, pg_obs["rgb"]), ("reward", s_rew, pg_rew),
                               ("done", s_done, pg_first), ("mouse", single.mouse, theirs["mouse"]),
                               *[(k, s_info[k], theirs[k]) for k in s_info]]:
                if not np.array_equal(np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)):
                    rec["single_bad"].append((t, name))
        rec["frames"] += N_ENVS
        rec["dones"] += int(pg_first.sum())
        rec["cheese"] += int((pg_rew > 0).sum())
        rec["seeds"].append(np.asarray(info["level_seed"]))
    pg.close()
    rec["refills"] = int(state.refills)
    return rec


def test_dynamics_match_procgen(rollout):
    assert rollout["mismatch"] == [], f"first (step, field, env) mismatches: {rollout['mismatch'][:10]}"
    assert rollout["dones"] > 20 and rollout["cheese"] > 5  # episodes ended both ways and were checked


def test_frames_match_procgen(rollout):
    assert rollout["frames"] == N_ENVS * (N_STEPS + 1)
    assert rollout["obs_bad"] == 0


def test_level_seed_sequence_is_procgens(rollout):
    seen = np.stack(rollout["seeds"])  # (T+1, N)
    expected = procgen_level_seeds(RAND_SEED, N_ENVS, 12)
    for n in range(N_ENVS):
        distinct = seen[np.r_[True, seen[1:, n] != seen[:-1, n]], n]
        np.testing.assert_array_equal(distinct, expected[n, :len(distinct)])


def test_refills_are_amortised(rollout):
    # each refill pass serves up to `chunk` finished envs; it must not run on every step
    assert 0 < rollout["refills"] < N_STEPS // 2


# ---- single-env API (gymnax style) ----

def test_single_env_api_matches_procgen(rollout):
    """``jax.vmap`` of the gymnax-style ``reset``/``step`` (auto-reset inside ``step``) is the same env."""
    assert rollout["single_bad"] == []
    assert rollout["single_cheese"] > 0  # an auto-reset after a cheese was among the compared steps


def test_reset_is_seeded():
    o1, a = jax.jit(reset, static_argnums=1)(jax.random.PRNGKey(3), PARAMS)
    o2, b = jax.jit(reset, static_argnums=1)(jax.random.PRNGKey(3), PARAMS)
    _, c = jax.jit(reset, static_argnums=1)(jax.random.PRNGKey(4), PARAMS)
    np.testing.assert_array_equal(o1, o2)
    assert int(a.level_seed) == int(b.level_seed) != int(c.level_seed)
    lv = generate_batch(np.array([int(a.level_seed)]))
    np.testing.assert_array_equal(a.grid, lv.grid[0])
    assert o1.shape == (64, 64, 3) and o1.dtype == jnp.uint8


CORRIDOR = np.array([[0, 0, 0], [1, 1, 0], [0, 0, 0]], bool)  # row 0 = bottom: mouse (0,0) -> right, then up


def corridor_level(cheese=(1, 2)):
    return Level(walls=CORRIDOR, mouse=(0, 0), cheese=cheese, seed=None)


def test_coordinates_state_level_frame():
    """UP raises the row, RIGHT raises the col and turns the mouse right; the frame changes in the moved squares'
    pixel boxes (row 0 = bottom of the world = bottom of the image)."""
    state = state_from_level(corridor_level(None), PARAMS, background=3)
    assert level_from_state(state) == corridor_level(None)
    start = np.asarray(observe(state, PARAMS))
    _, s_up, _, _, _ = step(None, state, 5, PARAMS)  # UP into a wall: blocked
    assert tuple(np.asarray(s_up.mouse)) == inner_to_world((0, 0), 3)
    _, s_r, _, _, _ = step(None, state, 7, PARAMS)  # RIGHT
    assert tuple(np.asarray(s_r.mouse)) == inner_to_world((0, 1), 3) and bool(s_r.reflected)
    _, s_rr, _, _, _ = step(None, s_r, 8, PARAMS)  # RIGHT+UP acts as RIGHT (diagonal suppression)
    _, s_u, _, _, _ = step(None, s_rr, 5, PARAMS)  # UP
    assert tuple(np.asarray(s_rr.mouse)) == inner_to_world((0, 2), 3)
    assert tuple(np.asarray(s_u.mouse)) == inner_to_world((1, 2), 3)
    assert level_from_state(s_u).mouse == (1, 2)
    _, s_l, _, _, _ = step(None, s_rr, 2, PARAMS)  # LEFT+UP acts as LEFT, turns left
    assert tuple(np.asarray(s_l.mouse)) == inner_to_world((0, 1), 3) and not bool(s_l.reflected)
    _, s_noop, _, _, _ = step(None, s_r, 12, PARAMS)  # actions 9..14 are no-ops, keep the facing
    assert tuple(np.asarray(s_noop.mouse)) == tuple(np.asarray(s_r.mouse)) and bool(s_noop.reflected)
    # the mouse's move changes pixels only inside the two squares' pixel boxes
    moved = np.asarray(observe(s_r, PARAMS))
    changed = np.argwhere((moved != start).any(-1))
    boxes = [world_to_pixel_box(inner_to_world(sq, 3)) for sq in ((0, 0), (0, 1))]
    assert len(changed) > 0
    assert all(any(t <= r < b and le <= c < ri for t, b, le, ri in boxes) for r, c in changed)
    # the cheese shows inside its own square's pixel box
    with_cheese = state_from_level(corridor_level(), PARAMS, background=3)
    assert level_from_state(with_cheese) == corridor_level()
    start, no_cheese = np.asarray(observe(with_cheese, PARAMS)), start
    t, b, le, ri = world_to_pixel_box(inner_to_world((1, 2), 3))
    diff = np.argwhere((start != no_cheese).any(-1))
    assert len(diff) > 0 and all(t <= r < b and le <= c < ri for r, c in diff)


def test_cheese_ends_episode_and_resets_to_next_seed():
    state = state_from_level(corridor_level(cheese=(0, 1)), PARAMS, seed_word=99)
    obs, s, reward, done, info = step(None, state, 7, PARAMS)
    assert float(reward) == 10.0 and bool(done) and int(info["prev_level_complete"]) == 1
    assert int(info["prev_level_seed"]) == -1
    expected = int(np_outputs(99, 1)[0] % np.uint32(2**31 - 1))  # level_seed_rand_gen's first randint
    assert int(info["level_seed"]) == int(s.level_seed) == expected
    assert int(s.time) == 0 and not bool(s.reflected)
    np.testing.assert_array_equal(obs, observe(s, PARAMS))  # obs is the new level's first frame
    _, s2, reward2, done2, info2 = step(None, s, 4, PARAMS)
    assert float(reward2) == 0 and not bool(done2) and int(info2["prev_level_seed"]) == expected


def test_timeout_without_cheese():
    params = EnvParams(timeout=500)
    state = state_from_level(corridor_level(cheese=None), params)

    def body(s, _):
        _, s, r, d, info = eager_step(None, s, 4, params)
        return s, (r, d, info["prev_level_complete"])

    _, (r, d, complete) = jax.jit(lambda s: jax.lax.scan(body, s, None, length=501))(state)
    assert np.flatnonzero(np.asarray(d)).tolist() == [499]  # done on the 500th step
    assert float(np.asarray(r).sum()) == 0 and int(np.asarray(complete).sum()) == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(distribution_mode="memory"), "distribution_mode"),
    (dict(rand_region=30), "rand_region"),
    (dict(rand_region="5"), "rand_region"),
    (dict(num_levels=-1), "num_levels"),
    (dict(start_level=2**31 - 10, num_levels=100), "start_level"),
    (dict(timeout=0), "timeout"),
    (dict(use_backgrounds="no"), "use_backgrounds"),
    (dict(max_maze_size=4), "max_maze_size"),
    (dict(distribution_mode="easy", max_maze_size=17), "max_maze_size"),
    (dict(max_maze_size=1), "max_maze_size"),
])
def test_bad_params_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EnvParams(**kwargs)


def test_bad_vec_env_and_level_io_rejected():
    with pytest.raises(ValueError, match="num_envs"):
        make_vec_env(PARAMS, 0)
    with pytest.raises(ValueError, match="chunk"):
        make_vec_env(PARAMS, 4, chunk=5)
    with pytest.raises(ValueError, match="EnvParams"):
        make_vec_env({"distribution_mode": "hard"}, 4)
    with pytest.raises(ValueError, match="hard-mode"):
        state_from_level(corridor_level(), EnvParams(distribution_mode="easy"))
    with pytest.raises(ValueError, match="background"):
        state_from_level(corridor_level(), PARAMS, background=9)
    assert EnvParams(rand_region=5) == EnvParams(rand_region=5) and hash(EnvParams()) == hash(EnvParams())


def test_max_maze_size_plays_procgens_small_levels_in_stream_order():
    """``max_maze_size`` skips the level seeds with larger mazes: each env plays, in order, exactly the seeds of its
    procgen sequence whose maze is small enough, and each level is procgen's level for that seed."""
    params = EnvParams(distribution_mode="easy", max_maze_size=5, timeout=4)
    n_envs, n_steps = 8, 40  # timeout 4 -> about 10 levels per env
    env = make_vec_env(params, n_envs)
    _, state = env.reset_procgen(RAND_SEED)

    def body(s, k):
        _, s, _, _, info = env.step(k, s, jnp.full(n_envs, 4))  # stand still: every episode times out
        return s, (info["level_seed"], s.grid)

    _, (seeds, grids) = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(0), n_steps)))(
        state)
    seeds, grids = np.asarray(seeds), np.asarray(grids)
    stream = procgen_level_seeds(RAND_SEED, n_envs, 200)
    sizes = maze_sizes(stream.ravel(), 15).reshape(stream.shape)
    assert (sizes > 5).any() and (sizes <= 5).any()  # the filter has something to do
    for n in range(n_envs):
        played = seeds[np.r_[True, seeds[1:, n] != seeds[:-1, n]], n]
        small = stream[n][sizes[n] <= 5]
        np.testing.assert_array_equal(played, small[:len(played)])
        assert len(played) >= 8
    first = np.r_[True, seeds[1:, 0] != seeds[:-1, 0]]
    expected = generate_batch(seeds[first, 0], distribution_mode="easy")
    assert (expected.size <= 5).all()
    np.testing.assert_array_equal(grids[first, 0], expected.grid)
