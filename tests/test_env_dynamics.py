"""Dynamics, auto-reset, info and observations vs the real procgen 0.10.7 package (spec §2), plus the API's edges."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.env import EnvParams, level_from_state, make_vec_env, reset, state_from_level, step
from mazeagent.env import core
from mazeagent.env.levelgen import env_seed_words, generate_batch, procgen_level_seeds
from mazeagent.env.mt19937 import np_outputs
from mazeagent.maze.level import Level, inner_to_world, world_to_pixel_box

procgen = pytest.importorskip("procgen")
from mazeagent.procgen.state import parse_state  # noqa: E402

PARAMS = EnvParams()
N_ENVS, N_STEPS, RAND_SEED = 32, 640, 4242  # 20,480 env-steps


@pytest.fixture(scope="module")
def rollout():
    """Both envs with the same random actions; ours with a small refill chunk so forced refills happen too."""
    vec = make_vec_env(PARAMS, N_ENVS, chunk=5)
    pg = procgen.ProcgenGym3Env(num=N_ENVS, env_name="maze", distribution_mode="hard", rand_seed=RAND_SEED,
                                num_threads=0)
    step_fn = jax.jit(vec.step)
    obs, state = vec.reset_procgen(RAND_SEED)
    _, pg_obs, pg_first = pg.observe()
    rec = dict(obs_bad=int((np.asarray(obs) != pg_obs["rgb"]).any(axis=(1, 2, 3)).sum()), mismatch=[],
               dones=0, cheese=0, frames=N_ENVS, seeds=[np.asarray(state.level_seed)], actions=[])
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

def test_single_env_matches_vec_env():
    """vmap of the single-env reset/step == the batched env on the same levels and actions."""
    n, steps, params = 4, 120, EnvParams(timeout=40)  # short timeout: several auto-resets
    words = jnp.asarray(env_seed_words(7, n))
    obs1, s1 = jax.vmap(lambda w: core.reset_from_word(w, params))(words)
    vec = make_vec_env(params, n)
    obs2, s2 = vec.reset_from_words(words)
    np.testing.assert_array_equal(obs1, obs2)
    step1 = jax.jit(jax.vmap(lambda s, a: step(None, s, a, params)))
    step2 = jax.jit(vec.step)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        a = jnp.asarray(rng.integers(0, 15, n), jnp.int32)
        out1, out2 = step1(s1, a), step2(None, s2, a)
        s1, s2 = out1[1], out2[1]
        for x, y in zip(jax.tree.leaves((out1[0], out1[2:])), jax.tree.leaves((out2[0], out2[2:]))):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(s1.level_seed, s2.level_seed)
    assert len(np.unique(np.asarray(s1.level_seed))) == n


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
    state = state_from_level(corridor_level(), PARAMS, background=3)
    assert level_from_state(state) == corridor_level()
    start = np.asarray(core.observe(state, PARAMS))
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
    moved = np.asarray(core.observe(s_r, PARAMS))
    changed = np.argwhere((moved != start).any(-1))
    boxes = [world_to_pixel_box(inner_to_world(sq, 3)) for sq in ((0, 0), (0, 1))]
    assert len(changed) > 0
    assert all(any(t <= r < b and le <= c < ri for t, b, le, ri in boxes) for r, c in changed)
    # the cheese shows inside its own square's pixel box
    no_cheese = np.asarray(core.observe(state_from_level(corridor_level(None), PARAMS, background=3), PARAMS))
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
    np.testing.assert_array_equal(obs, core.observe(s, PARAMS))  # obs is the new level's first frame
    _, s2, reward2, done2, info2 = step(None, s, 4, PARAMS)
    assert float(reward2) == 0 and not bool(done2) and int(info2["prev_level_seed"]) == expected


def test_timeout_without_cheese():
    params = EnvParams(timeout=500)
    state = state_from_level(corridor_level(cheese=None), params)

    def body(s, _):
        _, s, r, d, info = step(None, s, 4, params)
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
