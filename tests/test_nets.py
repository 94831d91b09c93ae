"""ImpalaCNN: init, named activations (capture/replace inside jit and vmap), layouts, action grouping."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import struct

from mazeagent.nets import (ACTION_GROUPS, DEFAULT_LAYER, GROUP_NAMES, HOOK_NAMES, HookedImpala, HookPoint, ImpalaCNN,
                            group_probs, hook_shapes, nchw_hook, num_params, run_with_cache, run_with_hooks, to_nchw)
from mazeagent.nets.hooked import _compiled, _split
from mazeagent.nets.impala import HookContext, ImpalaBlock, ResidualBlock

zero_hook = lambda x, _: jnp.zeros_like(x)  # noqa: E731


def maze_observations(n: int, seed: int = 0) -> np.ndarray:
    """Real hard-mode maze frames (n, 64, 64, 3) uint8 from procgen, after a few random moves."""
    from procgen import ProcgenGym3Env

    env = ProcgenGym3Env(num=n, env_name="maze", distribution_mode="hard", rand_seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        env.act(rng.integers(0, 15, n).astype(np.int32))
    return np.array(env.observe()[1]["rgb"])


# docs/research.md §2.2, scale 4, NCHW, batch axis dropped: written out here, independent of hook_shapes()
def _published_shapes_scale4() -> dict[str, tuple[int, ...]]:
    shapes = {"embedder.block1.conv_in0": (3, 64, 64), "embedder.block1.conv_out": (64, 64, 64)}
    per_block = {1: (64, 32, 32), 2: (128, 16, 16), 3: (128, 8, 8)}
    for b, shape in per_block.items():
        if b > 1:
            shapes[f"embedder.block{b}.conv_out"] = {2: (128, 32, 32), 3: (128, 16, 16)}[b]
        shapes[f"embedder.block{b}.maxpool_out"] = shape
        for r in (1, 2):
            for lab in ("relu1", "conv1", "relu2", "conv2", "resadd"):
                shapes[f"embedder.block{b}.res{r}.{lab}_out"] = shape
    shapes.update({"embedder.relu3_out": (128, 8, 8), "embedder.flatten_out": (8192,), "embedder.fc_out": (256,),
                   "embedder.relufc_out": (256,), "fc_policy_out": (15,), "fc_value_out": (1,)})
    return shapes


@pytest.fixture(scope="module")
def obs() -> np.ndarray:
    return maze_observations(3, seed=1)


@pytest.fixture(scope="module")
def fresh() -> dict:
    """Scale-1 variables exactly as initialised."""
    return jax.jit(ImpalaCNN(scale=1).init)(jax.random.key(3), jnp.zeros((1, 64, 64, 3), jnp.uint8))


@pytest.fixture(scope="module")
def small(fresh) -> tuple[ImpalaCNN, dict]:
    """Scale 1 with random (non-zero) biases, so zeroing tests see every term."""
    net, params = ImpalaCNN(scale=1), fresh
    rng = np.random.default_rng(1)
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.asarray(0.1 * rng.normal(size=v.shape), jnp.float32) if p[-1].key == "bias" else v, params)
    return net, params


def test_published_shapes_and_param_count(obs):
    net = ImpalaCNN(scale=4)  # shapes only (jax.eval_shape): scale-4 numerics are the torch parity tests' job
    params = jax.eval_shape(net.init, jax.random.key(0), obs[:1])
    assert num_params(params) == 3_653_136  # docs/research.md §2.1
    published = _published_shapes_scale4()
    assert set(HOOK_NAMES) == set(published) and len(HOOK_NAMES) == 43
    assert hook_shapes(4, "NCHW") == published
    (logits, value), cache = jax.eval_shape(lambda p, o: run_with_cache(net, p, o), params, obs[:1])
    assert logits.shape == (1, 15) and value.shape == (1,)
    nchw = {k: tuple(v.shape[1:]) if len(v.shape) == 2 else tuple(v.shape[i] for i in (3, 1, 2))
            for k, v in cache.items()}
    assert nchw == published
    assert np.prod(cache[DEFAULT_LAYER].shape[1:]) == 32_768


def test_explicit_width_nets_have_matching_hook_shapes(obs):
    """``hook_shapes(widths=net.channel_widths)`` describes a small-width net (as trained by the tiny preset)."""
    net = ImpalaCNN(widths=(3, 5, 6))
    params = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.uint8))
    _, cache = run_with_cache(net, params, obs)
    shapes = hook_shapes(widths=net.channel_widths)
    assert {k: tuple(v.shape[1:]) for k, v in cache.items()} == shapes
    assert shapes["embedder.block2.res1.resadd_out"] == (16, 16, 5) and shapes["embedder.flatten_out"] == (384,)


def test_scale1_shapes_and_single_frame(small, obs):
    net, params = small
    (logits, value), cache = run_with_cache(net, params, obs)
    assert {k: tuple(v.shape[1:]) for k, v in cache.items()} == hook_shapes(1)
    np.testing.assert_allclose(cache["embedder.block1.conv_in0"], obs / np.float32(255), atol=1e-7)
    np.testing.assert_allclose(cache["fc_policy_out"], logits)
    np.testing.assert_allclose(cache["fc_value_out"][:, 0], value)
    (l1, v1), c1 = run_with_cache(net, params, obs[1], names=[DEFAULT_LAYER])  # one (64, 64, 3) frame
    assert l1.shape == (15,) and v1.shape == () and list(c1) == [DEFAULT_LAYER]
    np.testing.assert_allclose(l1, logits[1], atol=1e-5)
    np.testing.assert_allclose(c1[DEFAULT_LAYER], cache[DEFAULT_LAYER][1], atol=1e-5)


def test_init_follows_published_trainer(fresh):
    params = fresh["params"]
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if path[-1].key == "bias":
            assert not np.any(leaf), path  # zero biases everywhere
    pol = np.asarray(params["fc_policy"]["kernel"])  # (256, 15): orthogonal columns, gain 0.01
    np.testing.assert_allclose(pol.T @ pol, 1e-4 * np.eye(15), atol=1e-9)
    val = np.asarray(params["fc_value"]["kernel"])
    np.testing.assert_allclose(np.linalg.norm(val), 1.0, rtol=1e-5)
    k = np.asarray(params["embedder"]["block2"]["res1"]["conv1"]["kernel"])  # HWIO (3, 3, 32, 32)
    bound = np.sqrt(6 / (2 * 9 * 32))  # xavier-uniform: fan_in = fan_out = 9 * 32
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.9 * bound


def test_identity_hooks_change_nothing(small, obs):
    net, params = small
    ref = jax.jit(net.apply)(params, obs)
    out = jax.jit(lambda p, o: run_with_hooks(net, p, o, {n: (lambda x, _: x) for n in HOOK_NAMES}))(params, obs)
    for a, b in zip(ref, out, strict=True):
        np.testing.assert_array_equal(a, b)


def test_zeroing_hook_equals_rest_of_network_on_zeros(small, obs):
    net, params = small
    p = params["params"]
    zero = {DEFAULT_LAYER: zero_hook}
    logits, value = run_with_hooks(net, params, obs, zero)
    # the rest of the network, run module by module on a zero block2.res1 output
    hk = HookContext()
    x = jnp.zeros((len(obs), 16, 16, 32))
    x = ResidualBlock(32).apply({"params": p["embedder"]["block2"]["res2"]}, x, hk)
    x = ImpalaBlock(32, name="block3").apply({"params": p["embedder"]["block3"]}, x, hk)
    x = jnp.transpose(jax.nn.relu(x), (0, 3, 1, 2)).reshape(len(obs), -1)
    h = jax.nn.relu(x @ p["embedder"]["fc"]["kernel"] + p["embedder"]["fc"]["bias"])
    np.testing.assert_allclose(logits, h @ p["fc_policy"]["kernel"] + p["fc_policy"]["bias"], atol=1e-5)
    np.testing.assert_allclose(value, (h @ p["fc_value"]["kernel"] + p["fc_value"]["bias"])[:, 0], atol=1e-5)
    assert np.ptp(np.asarray(logits), axis=0).max() == 0  # the input no longer matters
    # zeroing the last hidden layer leaves only the head biases
    logits, value = run_with_hooks(net, params, obs, {"embedder.relufc_out": zero_hook})
    np.testing.assert_array_equal(logits, np.broadcast_to(p["fc_policy"]["bias"], (len(obs), 15)))
    np.testing.assert_array_equal(value, np.broadcast_to(p["fc_value"]["bias"][0], (len(obs),)))
    assert not np.allclose(logits, net.apply(params, obs)[0])


def test_hooks_inside_jit_and_vmap_with_traced_args(small, obs):
    net, params = small
    name = "embedder.block2.res1.conv1_out"
    patch = jax.random.normal(jax.random.key(5), (len(obs), 32))  # one channel vector per example
    # closure over a batch of patches ...
    closed = run_with_hooks(net, params, obs, {name: lambda x, _: x + patch[:, None, None, :]})
    # ... equals hooks built once, reading a traced per-example argument under vmap + jit
    hooks = {name: lambda x, point: x + point.args}
    f = jax.jit(jax.vmap(lambda o, v: run_with_hooks(net, params, o, hooks, hook_args=v)))
    vmapped = f(obs, patch)
    np.testing.assert_allclose(vmapped[0], closed[0], atol=1e-5)
    np.testing.assert_allclose(vmapped[1], closed[1], atol=1e-5)
    assert not np.allclose(closed[0], net.apply(params, obs)[0], atol=1e-3)
    # capture sees the edited value, and only what was asked for
    _, cache = jax.jit(lambda o: run_with_cache(net, params, o, names=[name], hooks={name: zero_hook}))(obs)
    assert list(cache) == [name] and not np.any(cache[name])


def test_nchw_hook_indexes_the_same_channel(small, obs):
    net, params = small
    name = "embedder.block2.res1.resadd_out"
    nchw = nchw_hook(lambda a, _: a.at[:, 7].set(0.0))
    nhwc = lambda x, _: x.at[..., 7].set(0.0)  # noqa: E731
    (l1, _), c1 = run_with_cache(net, params, obs, names=[name], hooks={name: nchw})
    (l2, _), c2 = run_with_cache(net, params, obs, names=[name], hooks={name: nhwc})
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(c1[name], c2[name])
    assert not np.any(to_nchw(c1[name])[:, 7]) and np.any(to_nchw(c1[name])[:, 6])


def test_bad_input_errors(small, obs):
    net, params = small
    with pytest.raises(ValueError, match="did you mean 'embedder.block2.res1.resadd_out'"):
        run_with_hooks(net, params, obs, {"embedder.block2.res1.resadd": lambda x, _: x})
    with pytest.raises(ValueError, match="unknown hook name"):
        run_with_cache(net, params, obs, names=["blocks.0.hook_resid_pre"])
    with pytest.raises(ValueError, match="must return shape"):
        run_with_hooks(net, params, obs, {DEFAULT_LAYER: lambda x, _: x[..., :3]})
    with pytest.raises(ValueError, match="obs must be"):
        net.apply(params, obs[:, :32])
    with pytest.raises(ValueError, match="dtype"):
        net.apply(params, obs.astype(np.int32))
    with pytest.raises(ValueError, match="scale"):
        ImpalaCNN(scale=0)
    with pytest.raises(ValueError, match="layout"):
        hook_shapes(1, "CHWN")


# The hand-written table hook names and shapes used to be (before they were derived by jax.eval_shape), kept as an
# independent reference for the derivation.
def _handwritten_shapes(scale: int = 1, layout: str = "NHWC", widths=None) -> dict[str, tuple[int, ...]]:
    labels = ("relu1_out", "conv1_out", "relu2_out", "conv2_out", "resadd_out")
    widths = tuple(w * scale for w in (16, 32, 32)) if widths is None else tuple(widths)
    shapes, c_in, side = {"embedder.block1.conv_in0": (64, 64, 3)}, 3, 64
    for b, c in enumerate(widths, start=1):
        p = f"embedder.block{b}"
        shapes[f"{p}.conv_out"] = (side, side, c)
        side //= 2
        for name in [f"{p}.maxpool_out"] + [f"{p}.res{r}.{lab}" for r in (1, 2) for lab in labels]:
            shapes[name] = (side, side, c)
        c_in = c
    shapes["embedder.relu3_out"] = (side, side, c_in)
    shapes["embedder.flatten_out"] = (side * side * c_in,)
    shapes["embedder.fc_out"] = shapes["embedder.relufc_out"] = (256,)
    shapes["fc_policy_out"], shapes["fc_value_out"] = (15,), (1,)
    if layout == "NCHW":
        shapes = {k: ((v[2], v[0], v[1]) if len(v) == 3 else v) for k, v in shapes.items()}
    return shapes


def test_derived_hook_names_and_shapes_match_the_handwritten_table():
    assert list(HOOK_NAMES) == list(_handwritten_shapes())  # forward order
    for kw in ({"scale": 1}, {"scale": 4}, {"widths": (8, 16, 16)}):
        for layout in ("NHWC", "NCHW"):
            want = _handwritten_shapes(layout=layout, **kw)
            assert list(hook_shapes(layout=layout, **kw).items()) == list(want.items())


@struct.dataclass
class _Add:
    """A hook that is a pytree: its array is an argument of the compiled function, not a constant."""

    v: jax.Array

    def __call__(self, x: jax.Array, point: HookPoint) -> jax.Array:
        return x + self.v


def test_hooked_impala_matches_the_functional_api(small, obs):
    net, params = small
    model = HookedImpala(net, params)
    assert model.hook_names == HOOK_NAMES and model.hook_shapes == hook_shapes(1)
    (logits, value), cache = run_with_cache(net, params, obs)
    (l2, v2), c2 = model.run_with_cache(obs)  # 3 frames, padded to 16
    assert list(c2) == list(HOOK_NAMES) and l2.shape == (3, 15) and v2.shape == (3,)
    np.testing.assert_allclose(l2, logits, atol=1e-5)
    np.testing.assert_allclose(c2[DEFAULT_LAYER], cache[DEFAULT_LAYER], atol=1e-5)
    _, res = model.run_with_cache(obs, names=lambda n: n.startswith("embedder.block3.res2"))
    assert list(res) == [n for n in HOOK_NAMES if n.startswith("embedder.block3.res2")] and len(res) == 5
    (l1, v1), c1 = model.run_with_cache(obs[1], names=[DEFAULT_LAYER])  # one frame
    assert l1.shape == (15,) and v1.shape == () and c1[DEFAULT_LAYER].shape == (16, 16, 32)
    np.testing.assert_allclose(l1, logits[1], atol=1e-5)
    np.testing.assert_allclose(model(obs)[0], logits, atol=1e-5)
    sliced = HookedImpala(net, params, min_batch=1, max_batch=2).run_with_cache(obs, [DEFAULT_LAYER])  # 2 + 1 (2)
    np.testing.assert_allclose(sliced[0][0], logits, atol=1e-5)
    np.testing.assert_allclose(sliced[1][DEFAULT_LAYER], cache[DEFAULT_LAYER], atol=1e-5)
    exact = HookedImpala(net, params, pad=False).run_with_hooks(obs, {})
    np.testing.assert_array_equal(exact[0], jax.jit(net.apply)(params, obs)[0])


def test_hooked_impala_reuses_one_compile_across_hook_values_and_batch_sizes(small, obs):
    net, params = small
    model = HookedImpala(net, params)
    name = "embedder.block2.res1.conv1_out"
    seen = []
    for k, c in ((3, 0.5), (2, -1.0), (1, 2.0)):  # every batch pads to 16
        vec = jnp.full((32,), c, jnp.float32)
        lg, _ = model.run_with_hooks(obs[:k], {name: _Add(vec)})
        want = run_with_hooks(net, params, obs[:k], {name: lambda x, _, vec=vec: x + vec})[0]
        np.testing.assert_allclose(lg, want, atol=1e-5)
        seen.append(np.asarray(lg))
    assert not np.allclose(seen[0][0], seen[1][0], atol=1e-4)  # the values did reach the compiled function
    treedef, statics, _ = _split({name: _Add(jnp.zeros(32))})
    assert _compiled(net, None, treedef, statics)._cache_size() == 1
    per_row = model.run_with_hooks(obs, {name: _Add(jnp.asarray(np.eye(3, 32), jnp.float32)[:, None, None])},
                                   per_row=True)[0]
    for k in range(3):
        one = model.run_with_hooks(obs[k:k + 1], {name: _Add(jnp.asarray(np.eye(3, 32)[k], jnp.float32))})[0]
        np.testing.assert_allclose(per_row[k], one[0], atol=1e-5)


def test_one_hook_function_learns_which_point_it_is_at(small, obs):
    net, params = small
    names = ["embedder.block1.conv_out", "embedder.fc_out"]
    seen = []
    record = lambda x, point: (seen.append(point.name), x)[1]  # noqa: E731
    run_with_hooks(net, params, obs, dict.fromkeys(names, record))
    assert seen == names  # forward order, each with its own name


def test_action_groups_and_group_probs():
    assert GROUP_NAMES == ("left", "down", "up", "right", "noop")
    assert ACTION_GROUPS == {"left": (0, 1, 2), "down": (3,), "up": (5,), "right": (6, 7, 8),
                             "noop": (4, 9, 10, 11, 12, 13, 14)}
    logits = np.random.default_rng(0).normal(size=(4, 7, 15)).astype(np.float32)
    g = np.asarray(group_probs(logits))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expect = np.stack([p[..., [0, 1, 2]].sum(-1), p[..., 3], p[..., 5], p[..., [6, 7, 8]].sum(-1),
                       p[..., [4, 9, 10, 11, 12, 13, 14]].sum(-1)], axis=-1)
    assert g.shape == (4, 7, 5)
    np.testing.assert_allclose(g, expect, atol=1e-6)
    with pytest.raises(ValueError, match="15"):
        group_probs(np.zeros((2, 5)))
