"""The jitted PPO trainer: its pieces against plain references, evaluation bookkeeping, the CI learning test, and
the benchmark command."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.nets import ImpalaCNN
from mazeagent.ppo.config import PPOConfig, make_config, preset
from mazeagent.ppo.train import RewardNorm, Trainer, Transition, learning_rate, make_net, make_optimizer

CFG = preset("tiny")


def _bare_trainer(**kw) -> Trainer:
    cfg = CFG.replace(**kw)
    return Trainer(config=cfg, net=make_net(cfg), env=None, optimizer=make_optimizer(cfg))


def test_net_widths_build_record_and_reload(tmp_path):
    """``net_widths`` shapes every block, survives ``--set``, JSON and a checkpoint, and ``load_policy`` rebuilds
    the same net; the default stays the published (16, 32, 32) x scale."""
    from mazeagent.ppo.checkpoint import load_policy, save_checkpoint

    cfg = make_config("tiny", ["net_widths=(3, 5, 6)"])
    assert cfg.net_widths == (3, 5, 6)
    assert PPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # JSON list -> tuple
    for bad in (["net_widths=4,8"], ["net_widths=4,0,8"], ["net_widths=4,8,8", "net_scale=2"]):
        with pytest.raises(ValueError, match="net_widths"):
            make_config("tiny", bad)
    with pytest.raises(ValueError, match="widths"):
        ImpalaCNN(widths=(4, 8))
    obs = jax.random.randint(jax.random.PRNGKey(0), (2, 64, 64, 3), 0, 256).astype(jnp.uint8)
    net = make_net(cfg)
    params = jax.jit(net.init)(jax.random.PRNGKey(1), obs)
    emb = params["params"]["embedder"]
    assert [emb[f"block{i}"]["res2"]["conv2"]["kernel"].shape[-1] for i in (1, 2, 3)] == [3, 5, 6]
    assert emb["fc"]["kernel"].shape == (6 * 8 * 8, 256)
    default = jax.eval_shape(ImpalaCNN(scale=2).init, jax.random.PRNGKey(0), obs)["params"]["embedder"]
    assert default["block3"]["conv"]["kernel"].shape == (3, 3, 64, 64)
    save_checkpoint(tmp_path, {"params": params}, cfg, 1)
    net2, params2, cfg2 = load_policy(tmp_path)
    assert cfg2 == cfg
    np.testing.assert_array_equal(net2.apply(params2, obs)[0], net.apply(params, obs)[0])


def test_gae_matches_a_plain_loop():
    tr = _bare_trainer(gamma=0.9, gae_lambda=0.8)
    rng = np.random.default_rng(0)
    T, N = 6, 3
    reward, value = rng.normal(size=(T, N)).astype(np.float32), rng.normal(size=(T, N)).astype(np.float32)
    done = rng.random((T, N)) < 0.3
    last = rng.normal(size=N).astype(np.float32)
    traj = Transition(obs=None, action=None, logp=None, value=jnp.asarray(value), reward=jnp.asarray(reward),
                      done=jnp.asarray(done), raw_reward=None, ep_return=None, ep_length=None)
    adv, ret = tr.gae(traj, jnp.asarray(last))
    want, gae, next_v = np.zeros((T, N)), np.zeros(N), last
    for t in reversed(range(T)):
        nd = 1.0 - done[t]
        delta = reward[t] + 0.9 * next_v * nd - value[t]
        gae = delta + 0.9 * 0.8 * nd * gae
        want[t], next_v = gae, value[t]
    np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, want + value, rtol=1e-5, atol=1e-6)


def test_reward_scaling_matches_baselines_vecnormalize():
    """baselines VecNormalize(ob=False): ret = ret*g + r; RunningMeanStd(ret); r / sqrt(var + 1e-8), clip; ret[done]=0."""
    rng = np.random.default_rng(1)
    N, g, clip = 5, 0.99, 10.0
    norm = RewardNorm.create(N)
    ret, mean, var, count = np.zeros(N), 0.0, 1.0, 1e-4
    for _ in range(40):
        r = np.where(rng.random(N) < 0.2, 10.0, 0.0)
        done = rng.random(N) < 0.1
        norm, scaled = norm.step(jnp.asarray(r, jnp.float32), jnp.asarray(done), g, clip)
        ret = ret * g + r
        b_mean, b_var, b_n = ret.mean(), ret.var(), N
        delta, tot = b_mean - mean, count + b_n
        mean, var = mean + delta * b_n / tot, (var * count + b_var * b_n + delta**2 * count * b_n / tot) / tot
        count = tot
        want = np.clip(r / np.sqrt(var + 1e-8), -clip, clip)
        ret[done] = 0.0
        np.testing.assert_allclose(scaled, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.var, var, rtol=1e-4)
    assert np.abs(np.asarray(scaled)).max() <= clip


def test_loss_at_the_old_policy_is_the_plain_objective():
    """With old log-probs and values equal to the current ones, ratio = 1: no clipping anywhere."""
    tr = _bare_trainer(vf_coef=0.5, ent_coef=0.01)
    obs = jax.random.randint(jax.random.PRNGKey(0), (6, 64, 64, 3), 0, 256).astype(jnp.uint8)
    params = jax.jit(tr.net.init)(jax.random.PRNGKey(1), obs)
    logits, value = jax.jit(tr.net.apply)(params, obs)
    action = jnp.arange(6) % 15
    logp = jax.nn.log_softmax(logits)[jnp.arange(6), action]
    adv, ret = jnp.linspace(-1, 1, 6), value + jnp.linspace(0.5, -0.5, 6)
    loss = jax.jit(tr.loss)
    from mazeagent.ppo.train import Batch

    total, aux = loss(params, Batch(obs, action, logp, value, adv, ret))
    np.testing.assert_allclose(aux["pg_loss"], -adv.mean(), atol=1e-6)
    np.testing.assert_allclose(aux["v_loss"], 0.5 * ((value - ret) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(aux["entropy"], np.log(15), rtol=1e-3)  # heads init with gain 0.01: near uniform
    np.testing.assert_allclose(total, aux["pg_loss"] + 0.5 * aux["v_loss"] - 0.01 * aux["entropy"], rtol=1e-5)
    assert float(aux["clip_frac"]) == 0.0
    # a value far from the old one is clipped: the loss uses the worse of clipped/unclipped errors
    _, aux2 = loss(params, Batch(obs, action, logp, value - 5.0, adv, ret))
    clipped = (value - 5.0) + 0.2
    want = 0.5 * jnp.maximum((value - ret) ** 2, (clipped - ret) ** 2).mean()
    np.testing.assert_allclose(aux2["v_loss"], want, rtol=1e-5)


def test_learning_rate_decays_linearly_per_update():
    cfg = CFG.replace(total_timesteps=CFG.batch_size * 4, lr=5e-4)
    assert [float(learning_rate(cfg, u)) for u in range(4)] == pytest.approx([5e-4, 3.75e-4, 2.5e-4, 1.25e-4])
    assert float(learning_rate(cfg.replace(anneal_lr=False), 3)) == pytest.approx(5e-4)
    # the optimizer holds the rate for the epochs*minibatches Adam steps of one update, then steps down
    opt = make_optimizer(cfg)
    p = {"w": jnp.zeros(())}
    state, sizes = opt.init(p), []
    for _ in range(cfg.update_epochs * cfg.num_minibatches + 1):
        upd, state = opt.update({"w": jnp.ones(())}, state, p)
        sizes.append(-float(upd["w"]))
    n = cfg.update_epochs * cfg.num_minibatches
    assert sizes[0] == pytest.approx(5e-4, rel=1e-3) and sizes[n - 1] == pytest.approx(5e-4, rel=1e-3)
    assert sizes[n] == pytest.approx(3.75e-4, rel=1e-3)


def _uniform_policy(params):
    """The same network with a zeroed policy head: logits 0, i.e. a uniformly random policy."""
    head = params["params"]["fc_policy"]
    return {"params": {**params["params"], "fc_policy": jax.tree_util.tree_map(jnp.zeros_like, head)}}


def test_evaluation_bookkeeping_on_top_right_cheese():
    """rand_region=1 puts the cheese on the top-right square, so every cheese episode attains the top right (the
    terminal step, where the env has already auto-reset, must still count)."""
    from mazeagent.ppo.evaluate import rollout_first_episodes
    from mazeagent.ppo.train import make_env

    cfg = CFG.replace(rand_region=1, timeout=100)  # easy mode: 1 level in 7 is 3x3, solvable at random
    net, env = make_net(cfg), make_env(cfg, num_envs=64)
    params = _uniform_policy(jax.jit(net.init)(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3), jnp.uint8)))
    run = jax.jit(lambda p, k: rollout_first_episodes(net, env, p, k, cfg.timeout))
    acc = {k: np.asarray(v) for k, v in run(params, jax.random.PRNGKey(1)).items()}
    assert acc["finished"].all() and (acc["length"] >= 1).all() and (acc["length"] <= cfg.timeout).all()
    assert np.array_equal(acc["return"], 10.0 * acc["cheese"])
    assert acc["cheese"].any(), "no cheese found at all: the check below would be vacuous"
    assert (acc["top_right"] >= acc["cheese"]).all()
    assert (acc["length"][~acc["cheese"]] == cfg.timeout).all()  # no cheese -> ran to the timeout


def test_the_compact_rollout_equals_the_full_one_episode_by_episode():
    """The evaluator runs the net only on envs still in their first episode (gathered into smaller buckets) and stops
    when all have ended; every episode's outcome must equal the plain all-envs scan's, bucket path included."""
    from mazeagent.ppo.evaluate import make_compact_rollout, rollout_first_episodes
    from mazeagent.ppo.train import make_env

    cfg = CFG.replace(max_maze_size=3, rand_region=None, timeout=60)  # many quick endings, some timeouts
    net, env = make_net(cfg), make_env(cfg, num_envs=32)
    params = jax.jit(net.init)(jax.random.PRNGKey(3), jnp.zeros((1, 64, 64, 3), jnp.uint8))
    head = params["params"]["fc_policy"]  # an untrained head, shrunk: near-uniform but unequal logits per frame
    params = {"params": {**params["params"], "fc_policy": jax.tree_util.tree_map(lambda w: 0.1 * w, head)}}
    key = jax.random.PRNGKey(4)
    full = jax.jit(lambda p, k: rollout_first_episodes(net, env, p, k, cfg.timeout))(params, key)
    rollout = make_compact_rollout(net, env, cfg.timeout, chunk=10, smallest=16)
    compact = rollout(params, key)
    full, compact = ({k: np.asarray(v) for k, v in a.items()} for a in (full, compact))
    assert full.keys() == compact.keys()
    for k in full:
        np.testing.assert_array_equal(compact[k], full[k], err_msg=k)
    # both regimes are covered: many episodes end early, so the batch shrinks; some run to the timeout
    assert rollout.batches[0] == 32 and 16 in rollout.batches and len(rollout.batches) == cfg.timeout // 10
    assert (full["length"] == cfg.timeout).any()


def test_the_compact_rollouts_batch_sizes():
    """The evaluator's net batch as episodes end: the env count, then powers of two down to 64 (few compiles)."""
    from mazeagent.batching import bucket

    assert [bucket(live, 64, 1000) for live in (1000, 600, 512, 300, 129, 100, 10)] == [1000, 1000, 512, 512, 256,
                                                                                         128, 64]
    assert [bucket(live, 64, 512) for live in (512, 257, 65, 1)] == [512, 512, 128, 64]
    assert bucket(1, 64, 64) == 64 and bucket(2, 64, 3) == 3


@pytest.mark.slow
def test_tiny_preset_learns_and_the_cli_evaluates_it(tmp_path, capsys):
    """Acceptance: the tiny preset raises the cheese rate on its training distribution well above a uniformly random
    policy's (same evaluator, same episodes and keys). ``mazeagent eval`` reads the checkpoint back. Typical cheese
    rates (train dist.): ~0.06 random vs ~0.4 trained."""
    from mazeagent import cli
    from mazeagent.ppo.checkpoint import load_policy, save_checkpoint
    from mazeagent.ppo.logging import read_metrics
    from mazeagent.ppo.runner import run

    cfg = preset("tiny")
    out = tmp_path / "run"
    assert run(cfg, out, progress=False) == 0
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [cfg.batch_size * (i + 1) for i in range(cfg.num_updates)]
    net, params, got_cfg = load_policy(out)
    assert got_cfg == cfg and isinstance(net, ImpalaCNN)
    save_checkpoint(tmp_path / "random", {"params": _uniform_policy(params)}, cfg, 0)

    def cli_eval(path, *more: str) -> dict:
        assert cli.main(["eval", "--checkpoint", str(path), "--episodes", str(cfg.eval_episodes), "--json",
                         *more]) == 0
        return json.loads(capsys.readouterr().out)

    trained, random = cli_eval(out), cli_eval(tmp_path / "random")
    for r in (trained, random):
        for dist in ("train", "stock"):
            assert set(r) >= {f"eval/{dist}/{m}" for m in ("return", "cheese_rate", "top_right_rate",
                                                           "episode_length")}
    before, after = random["eval/train/cheese_rate"], trained["eval/train/cheese_rate"]
    assert after >= before + 0.2 and after >= 1.5 * before, (before, after)
    # each distribution's numbers are the same whichever others are evaluated in the same call
    for dist in ("stock", "train"):
        alone = cli_eval(out, "--distributions", dist)
        assert {k: v for k, v in alone.items() if k.startswith("eval/")} == {
            k: v for k, v in trained.items() if k.startswith(f"eval/{dist}/")}
    for bad in ("", "train,train", "test"):
        assert cli.main(["eval", "--checkpoint", str(out), "--distributions", bad]) == 2
        assert "--distributions must be a comma-separated subset of train,stock" in capsys.readouterr().err


_DATA_PARALLEL = r"""
import jax, jax.numpy as jnp, numpy as np
from mazeagent.ppo.config import preset
from mazeagent.ppo.train import make_train
assert jax.device_count() == 2, jax.devices()
cfg = preset("tiny").replace(num_envs=8, num_steps=8, update_epochs=1, num_minibatches=2, total_timesteps=128)
key = jax.random.PRNGKey(0)
out = []
for devices in (jax.devices()[:1], jax.devices()):
    tr = make_train(cfg, devices=devices)
    s = tr.place(jax.jit(tr.init)(key))
    p0 = s.params
    upd = jax.jit(tr.update)
    for _ in range(2):
        s, stats = upd(s)
    out.append((s, stats))
(s1, m1), (s2, m2) = out
assert len(s2.obs.sharding.device_set) == 2 and len(s1.obs.sharding.device_set) == 1
flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(t)])
a, b, a0 = flat(s1.params), flat(s2.params), flat(p0)
assert np.array_equal(np.asarray(s1.obs), np.asarray(s2.obs))  # the env is exactly the same
# Adam turns float-order noise in near-zero gradients into whole-step differences for a few parameters, so
# compare with the size of the training step itself: few parameters differ, and by far less than a step.
diff, step = np.abs(a - b), np.abs(a - a0).max()
print("DIFF", diff.max() / step, float((diff > 0.01 * step).mean()), float(m1["loss"]), float(m2["loss"]))
"""


@pytest.mark.slow
def test_two_devices_match_one_up_to_reduction_order():
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, "-c", _DATA_PARALLEL], env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    _, rel_diff, frac, loss1, loss2 = res.stdout.split()
    assert float(rel_diff) <= 0.25 and float(frac) < 0.01, res.stdout
    assert float(loss1) == pytest.approx(float(loss2), rel=1e-4, abs=1e-6)
