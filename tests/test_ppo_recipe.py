"""The CPU recipe's pieces: behaviour-cloning data and resume, ``init_from``, and resume past a damaged checkpoint."""
from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.maze.level import WALL
from mazeagent.nets import ACTION_GROUPS, GROUP_DELTAS, GROUP_NAMES, group_probs
from mazeagent.ppo import bc
from mazeagent.ppo.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from mazeagent.ppo.config import preset
from mazeagent.ppo.logging import read_metrics

BC_ENV = preset("cpu").replace(max_maze_size=7, net_widths=(4, 8, 8), wandb_mode="disabled")
BC_SMALL = bc.BCConfig(steps=4, batch=16, mazes_per_chunk=8, chunk_steps=2, checkpoint_every=2, eval_every=0,
                       eval_episodes=4)
TINY = preset("tiny").replace(total_timesteps=preset("tiny").batch_size * 3, checkpoint_every=1, keep_checkpoints=3,
                              wandb_mode="disabled")


def _bfs_dist(grid: np.ndarray, target: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Plain-Python BFS over open squares: an independent reference for the cloned labels."""
    dist, todo = {target: 0}, deque([target])
    while todo:
        r, c = todo.popleft()
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            n = (r + dr, c + dc)
            if 0 <= n[0] < grid.shape[0] and 0 <= n[1] < grid.shape[1] and grid[n] != WALL and n not in dist:
                dist[n] = dist[(r, c)] + 1
                todo.append(n)
    return dist


def test_demonstrations_are_env_frames_labelled_with_a_shortest_path_move():
    """Each frame is what the env shows with the mouse on that square and facing; each label moves one step closer
    to the cheese by a BFS written here; the square is open and not the cheese; maze sizes obey max_maze_size."""
    from mazeagent.env.levelgen import generate_batch

    d = bc.demonstrations(BC_ENV, 6, 120, np.random.default_rng(5))
    assert d.obs.shape == (120, 64, 64, 3) and d.obs.dtype == np.uint8
    assert set(np.unique(d.label)) <= {0, 1, 2, 3} and len(np.unique(d.label)) >= 3
    assert (generate_batch(np.unique(d.level_seed), rand_region=BC_ENV.rand_region).size <= 7).all()
    _check_samples(d, range(0, 120, 7))


def _check_samples(d, rows) -> None:
    """Each chosen sample: an open square that is not the cheese, a label one step closer by an independent BFS,
    and the env's own frame of that state."""
    from mazeagent.env.core import EnvParams, observe, state_from_level
    from mazeagent.env.levelgen import generate_batch

    g = generate_batch(np.unique(d.level_seed), rand_region=BC_ENV.rand_region)
    levels, params = g.levels(), EnvParams(rand_region=BC_ENV.rand_region)
    for j in rows:
        i = int(np.flatnonzero(g.seed == d.level_seed[j])[0])
        grid, sq = g.grid[i], tuple(int(v) for v in d.square[j])
        dist = _bfs_dist(grid, tuple(g.cheese[i]))
        assert grid[sq] != WALL and dist[sq] > 0
        dr, dc = GROUP_DELTAS[GROUP_NAMES[d.label[j]]]
        assert dist[(sq[0] + dr, sq[1] + dc)] == dist[sq] - 1
        st = state_from_level(levels[i], params, background=int(g.background[i]))
        st = st.replace(mouse=jnp.asarray(sq, jnp.int32), reflected=jnp.asarray(bool(d.reflected[j])))
        assert np.array_equal(np.asarray(observe(st, params)), d.obs[j])


def test_demonstration_squares_and_labels_match_an_independent_bfs():
    """Every (square, label) drawn is an open non-cheese square whose labelled move goes one step closer."""
    from mazeagent.env.levelgen import generate_batch
    from mazeagent.maze.paths import next_step_towards

    rng = np.random.default_rng(1)
    g = generate_batch(bc.training_seeds(BC_ENV, 5, rng), rand_region=BC_ENV.rand_region)
    moves = next_step_towards(g.batch(), g.batch().cheese)
    for i in range(5):
        dist = _bfs_dist(g.grid[i], tuple(g.cheese[i]))
        for (r, c), d in dist.items():
            m = moves[i, r, c]
            if d == 0:
                assert m == -1
                continue
            dr, dc = GROUP_DELTAS[GROUP_NAMES[m]]
            assert dist[(r + dr, c + dc)] == d - 1


def test_chunks_are_a_pure_function_of_seed_and_index():
    a, b = bc.chunk(BC_ENV, BC_SMALL, 3), bc.chunk(BC_ENV, BC_SMALL, 3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = bc.chunk(BC_ENV, BC_SMALL, 4)
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape[0] == BC_SMALL.chunk_steps * BC_SMALL.batch


def test_group_log_probs_are_the_log_of_grouped_probabilities():
    logits = jax.random.normal(jax.random.PRNGKey(0), (7, 15)) * 3
    assert np.allclose(np.exp(bc.group_log_probs(logits)), group_probs(logits), atol=1e-6)
    assert sorted(sum(ACTION_GROUPS.values(), ())) == list(range(15))


def test_bc_stopped_and_resumed_is_bitwise_an_uninterrupted_run(tmp_path):
    assert bc.run(BC_ENV, BC_SMALL, tmp_path / "ref", progress=False) == 0
    assert bc.run(BC_ENV, BC_SMALL, tmp_path / "cut", progress=False, until=2) == 0
    assert load_checkpoint(tmp_path / "cut").step == 2
    with pytest.raises(ValueError, match="settings differ"):  # a different command line cannot resume
        bc.run(BC_ENV, BC_SMALL.__class__(**{**BC_SMALL.__dict__, "lr": 0.5}), tmp_path / "cut", resume=True,
               progress=False)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        bc.run(BC_ENV, BC_SMALL, tmp_path / "cut", progress=False)
    assert bc.run(BC_ENV, BC_SMALL, tmp_path / "cut", resume=True, progress=False) == 0
    ref = load_checkpoint(tmp_path / "ref" / "checkpoints").state
    got = load_checkpoint(tmp_path / "cut" / "checkpoints").state
    for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(got), strict=True):
        assert np.array_equal(a, b)
    rows = [r["step"] for r in read_metrics(tmp_path / "cut")]
    assert rows == [1, 2, 3, 4]
    assert load_checkpoint(tmp_path / "ref").meta["extra"]["recipe"] == "bc"


def test_bc_refuses_easy_mode_and_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="hard-mode"):
        bc.run(BC_ENV.replace(distribution_mode="easy", max_maze_size=None), BC_SMALL, tmp_path, progress=False)
    with pytest.raises(ValueError, match="multiple of chunk_steps"):
        bc.BCConfig(checkpoint_every=3, chunk_steps=2).validate()
    with pytest.raises(ValueError, match="batch must be > 0"):
        bc.BCConfig(batch=0).validate()


def test_init_from_copies_params_and_checks_the_architecture(tmp_path):
    from mazeagent.ppo.runner import init_params_from
    from mazeagent.ppo.train import make_train

    src = make_train(TINY)
    src_state = src.init(jax.random.PRNGKey(7))
    save_checkpoint(tmp_path / "src", {"params": src_state.params}, TINY, 1)
    trainer = make_train(TINY.replace(init_from=str(tmp_path / "src")))
    fresh = trainer.init(jax.random.PRNGKey(0))
    state = init_params_from(fresh, str(tmp_path / "src"), trainer.optimizer)
    for a, b in zip(jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(src_state.params), strict=True):
        assert np.array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(fresh.params),
                                                          jax.tree_util.tree_leaves(src_state.params), strict=True))
    wide = make_train(TINY.replace(net_widths=(8, 8, 8)))
    with pytest.raises(ValueError, match="does not match this config"):
        init_params_from(wide.init(jax.random.PRNGKey(0)), str(tmp_path / "src"), wide.optimizer)


def test_train_init_from_starts_at_the_given_params(tmp_path):
    from mazeagent.ppo.runner import run
    from mazeagent.ppo.train import make_train

    one = TINY.replace(total_timesteps=TINY.batch_size)
    trainer = make_train(one)
    a = trainer.init(jax.random.PRNGKey(5)).params  # the source: params unlike seed 1's own init
    save_checkpoint(tmp_path / "a", {"params": a}, one, 1)
    assert run(one.replace(init_from=str(tmp_path / "a"), seed=1), tmp_path / "b", progress=False) == 0
    b = load_checkpoint(tmp_path / "b").state["params"]
    c = trainer.init(jax.random.PRNGKey(1)).params  # where seed 1 would have started without init_from
    # one PPO update from a's params stays near a's params, far from the run's own fresh init
    diff = lambda x, y: max(float(np.abs(np.asarray(u) - np.asarray(v)).max())  # noqa: E731
                            for u, v in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y), strict=True))
    assert diff(b, a) < 0.1 * diff(c, a)


def test_resume_skips_a_damaged_newest_checkpoint_with_a_warning(tmp_path, capsys):
    from mazeagent.ppo.runner import run

    import shutil

    assert run(TINY, tmp_path / "ref", progress=False) == 0
    shutil.copytree(tmp_path / "ref", tmp_path / "hurt")  # the same finished run, then damaged
    newest = list_checkpoints(tmp_path / "hurt" / "checkpoints")[-1]
    data = bytearray((newest / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / "arrays.npz").write_bytes(bytes(data))
    capsys.readouterr()
    assert run(TINY, tmp_path / "hurt", resume=True, progress=False) == 0
    err = capsys.readouterr().err
    assert "WARNING: skipping a damaged checkpoint" in err and "step_00000002" in err
    ref = load_checkpoint(tmp_path / "ref").state
    got = load_checkpoint(tmp_path / "hurt").state
    for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(got), strict=True):
        assert np.array_equal(a, b)
    steps = [r["step"] for r in read_metrics(tmp_path / "hurt")]
    assert steps == [r["step"] for r in read_metrics(tmp_path / "ref")]
    # every checkpoint damaged: a clear error, nothing overwritten
    for p in list_checkpoints(tmp_path / "hurt" / "checkpoints"):
        (p / "meta.json").write_text('{"format": "mazeagent-checkpoint-v1", "st')
    with pytest.raises(ValueError, match="no valid checkpoint"):
        run(TINY, tmp_path / "hurt", resume=True, progress=False)


# ---- the torch learner and DAgger ----------------------------------------------------------------------------------

def _init_params(cfg):
    from mazeagent.ppo.train import make_net

    return make_net(cfg).init(jax.random.PRNGKey(3), jnp.zeros((1, 64, 64, 3), jnp.uint8))


def test_torch_learner_matches_the_jax_learner_step_for_step():
    """Same params, same batch: equal logits, losses and accuracies, and params that stay within Adam's rounding."""
    from mazeagent.ppo.bc_torch import TorchLearner, cosine_lr
    from mazeagent.ppo.torch_learn import from_flax, to_flax

    import optax

    p = _init_params(BC_ENV)
    back = to_flax(from_flax(p, BC_ENV.net_widths), p)
    for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(back), strict=True):
        assert np.array_equal(a, b)
    sched = optax.cosine_decay_schedule(1e-3, 40, alpha=0.05)
    cfg_bc = bc.BCConfig(steps=40, lr=1e-3)
    assert all(abs(cosine_lr(cfg_bc, t) - float(sched(t))) < 1e-9 for t in (0, 1, 17, 39, 40, 55))
    small = BC_SMALL
    obs, label = bc.chunk(BC_ENV, small, 0)
    j, t = bc.JaxLearner(BC_ENV, small, p), TorchLearner(BC_ENV, small, p)
    assert np.abs(j.logits(obs) - t.logits(obs)).max() < 1e-5
    for k in range(small.chunk_steps):
        sl = slice(k * small.batch, (k + 1) * small.batch)
        (lj, aj), (lt, at) = j.step(obs[sl], label[sl]), t.step(obs[sl], label[sl])
        assert abs(lj - lt) < 1e-4 * abs(lj) and aj == at
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(j.params()), strict=True))
    gap = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree_util.tree_leaves(j.params()), jax.tree_util.tree_leaves(t.params()),
                              strict=True))
    assert moved > 1e-3 and gap < 1e-3 * moved


def _constant_policy(action: int):
    def policy(obs):
        logits = np.full((len(obs), 15), -30.0, np.float32)
        logits[:, action] = 30.0
        return logits
    return policy


def test_dagger_samples_are_the_policys_own_states_labelled_by_the_expert():
    """A policy that never moves visits only its start squares (half of them the maze's start, facing left); one
    that always goes right ends up facing right; every sample's label moves one step closer (independent BFS) and
    its frame is the env's frame; a sample is never the cheese."""
    from mazeagent.env.levelgen import generate_batch

    still = bc.rollout_demonstrations(BC_ENV, _constant_policy(4), 8, 200, 6, np.random.default_rng(2))
    pairs = {(int(s), int(r), int(c)) for s, (r, c) in zip(still.level_seed, still.square, strict=True)}
    assert len(pairs) <= 8
    g = generate_batch(np.unique(still.level_seed), rand_region=BC_ENV.rand_region)
    at_start = [tuple(sq) == tuple(g.mouse[np.flatnonzero(g.seed == s)[0]])
                for s, sq in zip(still.level_seed, still.square, strict=True)]
    assert 0 < np.mean(at_start) < 1 and not still.reflected[np.asarray(at_start)].any()

    right = bc.rollout_demonstrations(BC_ENV, _constant_policy(7), 8, 400, 6, np.random.default_rng(2))
    assert right.reflected.mean() > 0.75
    _check_samples(right, range(0, 400, 23))


def test_dagger_chunks_mix_in_the_policys_states_deterministically():
    mixed = BC_SMALL.__class__(**{**BC_SMALL.__dict__, "dagger": 0.5, "dagger_steps": 4})
    a = bc.chunk(BC_ENV, mixed, 1, _constant_policy(4))
    b = bc.chunk(BC_ENV, mixed, 1, _constant_policy(4))
    c = bc.chunk(BC_ENV, mixed, 1, _constant_policy(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])
    plain = bc.chunk(BC_ENV, BC_SMALL, 1)
    assert a[0].shape == plain[0].shape
    with pytest.raises(ValueError, match="dagger must be in"):
        bc.BCConfig(dagger=1.0).validate()
    with pytest.raises(ValueError, match="backend must be one of"):
        bc.BCConfig(backend="tf").validate()


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_bc_with_dagger_stopped_and_resumed_is_bitwise_an_uninterrupted_run(tmp_path, backend):
    cfg = BC_SMALL.__class__(**{**BC_SMALL.__dict__, "backend": backend, "dagger": 0.5, "dagger_steps": 3})
    assert bc.run(BC_ENV, cfg, tmp_path / "ref", progress=False) == 0
    assert bc.run(BC_ENV, cfg, tmp_path / "cut", progress=False, until=1) == 0  # mid-chunk: runs to its end
    assert load_checkpoint(tmp_path / "cut").step == 2
    assert bc.run(BC_ENV, cfg, tmp_path / "cut", resume=True, progress=False) == 0
    ref, got = (load_checkpoint(tmp_path / d / "checkpoints") for d in ("ref", "cut"))
    assert ref.meta["extra"]["bc"]["backend"] == backend and "DAgger" in ref.meta["extra"]["description"]
    for a, b in zip(jax.tree_util.tree_leaves(ref.state), jax.tree_util.tree_leaves(got.state), strict=True):
        assert np.array_equal(a, b)
    if backend == "torch":  # the checkpoint's params are the flax net's, readable by every --checkpoint option
        from mazeagent.ppo.checkpoint import load_policy

        net, params, _ = load_policy(tmp_path / "ref")
        assert net.apply(params, jnp.zeros((2, 64, 64, 3), jnp.uint8))[0].shape == (2, 15)


def test_bc_init_from_continues_a_clone_and_old_checkpoints_still_resume(tmp_path):
    assert bc.run(BC_ENV, BC_SMALL, tmp_path / "a", progress=False, until=2) == 0
    a = load_checkpoint(tmp_path / "a")
    # a checkpoint written before the backend/DAgger settings existed resumes as the defaults
    meta_path = a.path / "meta.json"
    import json

    meta = json.loads(meta_path.read_text())
    for k in ("backend", "dagger", "dagger_steps"):
        meta["extra"]["bc"].pop(k)
    meta_path.write_text(json.dumps(meta))
    assert bc.run(BC_ENV, BC_SMALL, tmp_path / "a", resume=True, progress=False) == 0
    cont = BC_ENV.replace(init_from=str(tmp_path / "a"))
    assert bc._initial_params(cont) is not None
    src = load_checkpoint(tmp_path / "a").state["params"]
    for x, y in zip(jax.tree_util.tree_leaves(src), jax.tree_util.tree_leaves(bc._initial_params(cont)), strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="differs from this run's .* whole multiples"):
        bc._initial_params(cont.replace(net_widths=(4, 8, 12)))
    wide = bc._initial_params(cont.replace(net_widths=(8, 16, 16)))  # twice as wide: the same function
    from mazeagent.ppo.train import make_net

    obs = bc.chunk(BC_ENV, BC_SMALL, 0)[0][:16]
    small, big = make_net(BC_ENV).apply(src, obs)[0], make_net(BC_ENV.replace(net_widths=(8, 16, 16))).apply(wide, obs)[0]
    assert 0 < float(jnp.abs(small - big).max()) < 0.05 * float(jnp.abs(small).max())


def test_default_bc_config_is_valid():
    assert bc.BCConfig().validate() == bc.BCConfig()


def test_widening_is_exact_without_noise_and_refuses_non_multiples():
    from mazeagent.nets.widen import widen
    from mazeagent.ppo.train import make_net

    p = _init_params(BC_ENV)
    obs = bc.chunk(BC_ENV, BC_SMALL, 0)[0][:16]
    ref_logits, ref_value = make_net(BC_ENV).apply(p, obs)
    for new in ((8, 16, 16), (4, 24, 8), (12, 8, 16)):
        w = widen(p, (4, 8, 8), new, noise=0.0)
        net = make_net(BC_ENV.replace(net_widths=new))
        shapes = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), obs[:1]))
        assert jax.tree.structure(shapes) == jax.tree.structure(w)
        logits, value = net.apply(w, obs)
        np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
        np.testing.assert_allclose(value, ref_value, atol=1e-5)
    with pytest.raises(ValueError, match="whole multiples"):
        widen(p, (4, 8, 8), (6, 8, 8))


def test_the_init_from_option_reaches_the_config_of_train_and_bc():
    from mazeagent.cli import build_parser
    from mazeagent.ppo.cli import _config

    for cmd in ("train", "bc"):
        args = build_parser().parse_args([cmd, "--out", "x", "--preset", "cpu", "--init-from", "runs/a=b",
                                          "--set", "lr=1e-4", "--seed", "3"])
        cfg = _config(args)
        assert (cfg.init_from, cfg.lr, cfg.seed) == ("runs/a=b", 1e-4, 3)
        assert _config(build_parser().parse_args([cmd, "--out", "x", "--preset", "cpu"])).init_from is None


def test_size_power_tilts_the_training_mazes_towards_large_ones():
    from mazeagent.env.levelgen import maze_sizes

    cfg = preset("cpu")  # mazes up to 13x13
    plain = bc.training_seeds(cfg, 3000, np.random.default_rng(0))
    assert np.array_equal(plain, bc.training_seeds(cfg, 3000, np.random.default_rng(0), 0.0))  # 0 = as before
    tilted = bc.training_seeds(cfg, 3000, np.random.default_rng(0), 2.0)
    s0, s2 = maze_sizes(plain, 25), maze_sizes(tilted, 25)
    assert s0.max() <= 13 and s2.max() <= 13 and set(np.unique(s2)) <= set(range(3, 14, 2))
    # keep-probability (s/13)^2: 13x13 mazes become (169/9) times as common relative to 3x3 ones as before
    share = lambda s, m: np.mean(s == m)  # noqa: E731
    assert abs(share(s0, 13) - 1 / 6) < 0.03 and share(s2, 13) > 0.3 and share(s2, 3) < 0.04
    ratio = (share(s2, 13) / share(s2, 11)) / (share(s0, 13) / share(s0, 11))
    assert abs(ratio - (13 / 11) ** 2) < 0.25
    with pytest.raises(ValueError, match="size_power"):
        bc.BCConfig(size_power=-1).validate()
