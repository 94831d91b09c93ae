"""probes/: ground-truth checks for probes (planted signals, shuffled labels), interventions (identity, clamp,
resample donors), vector fields (vs one env state per square) and activation datasets (round trip, streaming)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.env.mazes import generate_mazes, observations
from mazeagent.maze.level import world_to_activation
from mazeagent.nets import HookedImpala, HookPoint, ImpalaCNN, run_with_cache
from mazeagent.probes import channels as CH
from mazeagent.probes import dataset as D
from mazeagent.probes import interventions as I
from mazeagent.probes import linear as L
from mazeagent.probes import vfield as V

LAYER = "embedder.block2.res1.resadd_out"


@pytest.fixture(scope="module")
def net_params():
    net = ImpalaCNN(scale=1)
    return net, net.init(jax.random.PRNGKey(3), jnp.zeros((1, 64, 64, 3), jnp.uint8))


@pytest.fixture(scope="module")
def mazes():
    return generate_mazes(6, seed=11)


# ------------------------------------------------------------------------------------------------- probes

def test_logistic_probe_recovers_planted_signal_and_shuffled_labels_are_chance():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 40)).astype(np.float32)
    w = rng.standard_normal(40)
    y = (X @ w > 0).astype(int)
    res = L.fit_probe(X, y, "logistic", groups=np.arange(600) // 3, seed=1)
    assert res.score > 0.9 and res.beats_chance
    assert res.shuffled < 0.65 and abs(res.chance - 0.5) < 0.1
    shuffled = L.fit_probe(X, rng.permutation(y), "logistic", groups=np.arange(600) // 3, seed=1)
    assert shuffled.ci[0] < 0.55 and not shuffled.beats_chance


def test_sparse_ridge_probe_finds_the_planted_features():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 200)).astype(np.float32)
    y = 3 * X[:, 7] - 2 * X[:, 150] + 0.1 * rng.standard_normal(500)
    res = L.fit_probe(X, y, "ridge", top_k=2, seed=0)
    assert sorted(res.features) == [7, 150] and res.score > 0.95 and res.metric == "r2"
    assert res.shuffled < 0.1 and abs(res.chance) < 0.1


def test_conv_probe_and_cheese_position_probe_on_a_planted_map():
    rng = np.random.default_rng(2)
    n, h, c = 300, 8, 6
    acts = rng.standard_normal((n, h, h, c)).astype(np.float32) * 0.3
    cells = rng.integers(0, h, size=(n, 2))
    acts[np.arange(n), cells[:, 0], cells[:, 1], 4] += 3.0  # channel 4 lights up at the cheese
    res = L.conv_probe(acts, cells, groups=np.arange(n), top_k=1)
    assert res.features == [4] and res.score > 0.95 and abs(res.chance - 0.5) < 0.1
    pos = L.cheese_position_probe(acts[..., 4], cells, groups=np.arange(n))
    assert pos["accuracy"] > 0.7 and pos["chance"] < 0.1 and pos["ci"][0] > pos["chance"]
    with pytest.raises(ValueError, match="probe kind"):
        L.fit_probe(acts.reshape(n, -1), cells[:, 0], "svm")


# ------------------------------------------------------------------------------------------ interventions

def test_identity_and_zero_coefficient_change_nothing(net_params, mazes):
    net, params = net_params
    obs = observations(mazes, np.arange(len(mazes)))
    logits, value = net.apply(params, obs)
    shape = I.layer_shape(net, LAYER)
    for hooks in ({LAYER: I.Identity()}, {LAYER: I.AddVector(np.ones(shape), 0.0)},
                  {name: I.Identity() for name in ("embedder.block1.conv_out", "fc_policy_out")}):
        lg, v = HookedImpala(net, params, pad=False).run_with_hooks(obs, hooks)  # same batch: bitwise
        np.testing.assert_array_equal(np.asarray(lg), np.asarray(logits))
        np.testing.assert_array_equal(np.asarray(v), np.asarray(value))


def test_clamp_sets_exactly_the_intended_entries(net_params, mazes):
    net, params = net_params
    obs = observations(mazes, np.arange(3))
    _, base = run_with_cache(net, params, obs, [LAYER])
    base = np.asarray(base[LAYER])
    shape = base.shape[1:]
    _, got = run_with_cache(net, params, obs, [LAYER], hooks={LAYER: I.clamp([5, 9], (3, 12), 5.5, shape)})
    got = np.asarray(got[LAYER])
    changed = np.argwhere(got != base)
    assert {tuple(x[1:]) for x in changed} <= {(3, 12, 5), (3, 12, 9)}
    assert (got[:, 3, 12, [5, 9]] == 5.5).all()
    _, filled = run_with_cache(net, params, obs, [LAYER], hooks={LAYER: I.clamp(5, (0, 0), 2.0, shape, fill=-0.2)})
    f = np.asarray(filled[LAYER])
    assert f[:, 0, 0, 5].tolist() == [2.0] * 3 and np.allclose(f[:, 1:, :, 5], -0.2)
    np.testing.assert_array_equal(np.delete(f, 5, axis=-1), np.delete(base, 5, axis=-1))
    with pytest.raises(ValueError, match="inside the 16x16"):
        I.clamp(5, (16, 0), 1.0, shape)


def test_ablations_multiply_budget_and_composition(net_params, mazes):
    net, params = net_params
    obs = observations(mazes, np.arange(4))
    _, base = run_with_cache(net, params, obs, [LAYER])
    x = np.asarray(base[LAYER])
    shape = x.shape[1:]
    at = HookPoint(LAYER)
    z = np.asarray(I.zero_ablation([1, 2], shape)(jnp.asarray(x), at))
    assert (z[..., [1, 2]] == 0).all() and (z[..., 0] == x[..., 0]).all()
    m = np.asarray(I.mean_ablation([3], x)(jnp.asarray(x), at))
    np.testing.assert_allclose(m[..., 3], np.broadcast_to(x[..., 3].mean(0), m[..., 3].shape), rtol=1e-6)
    donors = x[::-1]
    r = np.asarray(I.resample_ablation([0], donors)(jnp.asarray(x), at))
    np.testing.assert_array_equal(r[..., 0], donors[..., 0])
    mul = np.asarray(I.multiply([2], shape[-1], pos=2.0, neg=0.0)(jnp.asarray(x), at))
    np.testing.assert_allclose(mul[..., 2], np.where(x[..., 2] > 0, 2 * x[..., 2], 0), rtol=1e-6)
    both = I.compose_hooks({LAYER: I.AddVector(np.ones(shape), 1.0)}, {LAYER: I.zero_ablation([0], shape)})
    y = np.asarray(both[LAYER](jnp.asarray(x), at))
    assert (y[..., 0] == 0).all() and np.allclose(y[..., 1], x[..., 1] + 1)
    mask = I.budget_mask(np.array([7, 3]), (5, 5), 3, shape)
    assert mask.sum() == 3 and mask[5, 5, 7] and mask[5, 5, 3]
    assert abs(I.SetMasked(jnp.asarray(mask), 0.0).edited_fraction - 3 / mask.size) < 1e-12
    rv = I.random_like(np.ones(shape), seed=0)
    assert abs(np.linalg.norm(rv) - np.linalg.norm(np.ones(shape))) < 1e-3
    assert not set(I.random_channels([1, 2], 32, 5, seed=0)) & {1, 2}


def test_resample_donors_respect_the_cheese_constraint():
    cheese = np.array([[1, 1], [1, 1], [2, 3], [4, 4], [2, 3], [9, 9]])
    same = I.resample_donors(cheese, same=True, seed=0)
    diff = I.resample_donors(cheese, same=False, seed=0)
    for i, d in enumerate(same):
        if d >= 0:
            assert d != i and (cheese[d] == cheese[i]).all()
    assert same[3] == -1 and same[5] == -1 and same[0] == 1 and same[2] == 4
    assert all(d != i and (cheese[d] != cheese[i]).any() for i, d in enumerate(diff))


# ------------------------------------------------------------------------------------------ vector fields

def test_vector_field_matches_one_env_state_per_square(net_params, mazes):
    from mazeagent.env.core import EnvParams, observe, state_from_level
    from mazeagent.maze.edit import move_mouse
    from mazeagent.maze.level import world_to_inner
    from mazeagent.nets import group_probs

    net, params = net_params
    i = int(np.argmin(mazes.size))
    vf = V.vector_field(net, params, mazes, i)
    level, n = mazes.level(i), int(mazes.size[i])
    assert len(vf.squares) == int((~level.walls).sum()) - (level.cheese is not None)
    frames = []
    for sq in vf.squares:
        lv = move_mouse(level, world_to_inner(tuple(sq), n))
        frames.append(observe(state_from_level(lv, EnvParams(), background=int(mazes.background[i])), EnvParams()))
    single = np.stack([np.asarray(group_probs(net.apply(params, f)[0])) for f in frames])
    np.testing.assert_allclose(vf.probs, single, atol=1e-5)
    np.testing.assert_allclose(vf.probs.sum(1), 1, atol=1e-5)
    assert np.allclose(V.diff(vf, vf).probs, 0) and V.total_variation(vf, vf) == 0


# --------------------------------------------------------------------------------------------- datasets

def test_dataset_labels_round_trip_and_streaming(net_params, mazes, tmp_path):
    net, params = net_params
    names = [LAYER, "embedder.block1.res2.resadd_out"]
    ds = D.collect(net, params, mazes, names, "all", chunk=64, got_cheese=np.arange(len(mazes)) % 2 == 0,
                   progress=False)
    free = sum(len(V.open_squares(mazes, i)) for i in range(len(mazes)))
    assert len(ds) == free and ds.acts[LAYER].shape == (free, 16, 16, 32)
    k = 5
    m = int(ds.labels["maze"][k])
    assert tuple(ds.labels["cheese_cell_16"][k]) == world_to_activation(tuple(mazes.cheese[m]), 16)
    assert tuple(ds.labels["cheese_inner"][k]) == mazes.level(m).cheese
    assert ds.labels["got_cheese"][k] == (m % 2 == 0)
    streamed = D.load(D.collect(net, params, mazes, names, "all", chunk=64, out_dir=tmp_path / "parts",
                                float16=True, got_cheese=np.arange(len(mazes)) % 2 == 0, progress=False))
    np.testing.assert_allclose(streamed.acts[LAYER], ds.acts[LAYER], atol=2e-2, rtol=1e-2)
    for key in ds.labels:
        np.testing.assert_array_equal(streamed.labels[key], ds.labels[key])
    path = ds.save(tmp_path / "one.npz")
    back = D.load(path, names=[LAYER])
    np.testing.assert_array_equal(back.acts[LAYER], ds.acts[LAYER])
    dec = D.collect(net, params, mazes, [LAYER], "decision", progress=False)
    assert dec.labels["at_decision"].all() and len(dec) == int((mazes.geometry.decision_square[:, 0] >= 0).sum())
    with pytest.raises(ValueError, match="positions must be one of"):
        D.collect(net, params, mazes, [LAYER], "corner", progress=False)
    with pytest.raises(ValueError, match="no activations"):
        D.load(path, names=["embedder.fc_out"])


def test_tracking_hits_find_a_planted_equivariant_channel():
    rng = np.random.default_rng(0)
    k, h, c = 20, 16, 8
    cells = rng.integers(0, h, size=(k, 2))
    acts = rng.standard_normal((k, h, h, c)).astype(np.float32) * 0.1
    acts[np.arange(k), cells[:, 0], cells[:, 1], 6] += 4.0
    scores = CH.tracking_hits(acts, cells).mean(0)
    assert scores[6] == 1.0 and np.delete(scores, 6).max() < 0.5
    assert CH.ranking(scores)[0] == 6 and CH.o2_count(scores) == 1


def test_per_maze_policy_applies_each_mazes_own_patch(net_params, mazes):
    from mazeagent.experiments.rollouts import evaluate

    net, params = net_params
    shape = I.layer_shape(net, LAYER)
    vecs = np.random.default_rng(0).standard_normal((len(mazes), *shape)).astype(np.float32)
    pol = I.HookedPolicy(net, params, {LAYER: I.AddVector(vecs, np.full((len(mazes), 1, 1, 1), 3.0))}, per_maze=True)
    idx = np.array([2, 0, 2, 5])
    sq = mazes.mouse[idx]
    got, _ = evaluate(pol, mazes, idx, sq, np.zeros(4, bool), jax.random.PRNGKey(0))
    model = HookedImpala(net, params)
    for k, i in enumerate(idx):
        want = model.run_with_hooks(observations(mazes, [i]), {LAYER: I.AddVector(vecs[i], 3.0)})[0]
        np.testing.assert_allclose(got[k], want[0], atol=1e-5)
    plain, _ = evaluate(I.HookedPolicy(net, params, {}), mazes, idx, sq, np.zeros(4, bool), jax.random.PRNGKey(0))
    assert np.abs(got - plain).max() > 1e-3  # the patch does something
    with pytest.raises(ValueError, match="leading axis"):
        evaluate(I.HookedPolicy(net, params, {LAYER: I.AddVector(vecs[:2], 1.0)}, per_maze=True), mazes, idx, sq,
                 np.zeros(4, bool), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="maze 5 was queried"):
        evaluate(I.HookedPolicy(net, params, {LAYER: I.AddVector(vecs[:2], np.ones((2, 1, 1, 1)))}, per_maze=True),
                 mazes, idx, sq, np.zeros(4, bool), jax.random.PRNGKey(0))


def test_equal_mazes_get_their_own_per_maze_patch(net_params, mazes):
    """Patches follow the maze index, not the maze's contents: copies of one maze may carry different patches."""
    from mazeagent.experiments.rollouts import evaluate

    net, params = net_params
    dup = mazes.take(np.array([0, 1, 0, 2, 0]))
    vecs = np.zeros((5, *I.layer_shape(net, LAYER)), np.float32)
    vecs[2] = 5.0
    pol = I.HookedPolicy(net, params, {LAYER: I.AddVector(vecs, np.ones((5, 1, 1, 1), np.float32))}, per_maze=True)
    idx = np.array([0, 2, 4])
    got, _ = evaluate(pol, dup, idx, dup.mouse[idx], np.zeros(3, bool), jax.random.PRNGKey(0))
    plain, _ = evaluate(I.HookedPolicy(net, params, {}), dup, idx, dup.mouse[idx], np.zeros(3, bool),
                        jax.random.PRNGKey(0))
    np.testing.assert_array_equal(got[[0, 2]], plain[[0, 2]])
    assert np.abs(got[1] - plain[1]).max() > 1e-3
