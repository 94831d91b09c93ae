"""``mazeagent bench train --vs-torch``: the PyTorch learning phase computes what ours does (GAE, loss, gradients on
the same params and batch), and the command prints both rates and their ratio."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mazeagent.cli import main
from mazeagent.ppo.bench import synthetic_rollout
from mazeagent.ppo.config import preset
from mazeagent.ppo.train import make_train
from required import require_module

torch = require_module("torch", "the --vs-torch benchmark times a PyTorch learning phase")
from mazeagent.ppo import torch_learn  # noqa: E402  (needs torch)

CFG = preset("tiny").replace(num_envs=8, num_steps=8, clip_eps=0.1)


@pytest.fixture(scope="module")
def rollout():
    """Initial params and the batch the benchmark learns from."""
    trainer = make_train(CFG)
    return (trainer, *synthetic_rollout(trainer, jax.random.PRNGKey(0)))


def _t(x) -> "torch.Tensor":
    return torch.from_numpy(np.array(x))


def test_torch_gae_matches_ours(rollout):
    trainer, _, traj, last_value = rollout
    adv, ret = trainer.gae(traj, last_value)
    t_traj = {k: _t(getattr(traj, k)) for k in ("value", "reward", "done")}
    t_adv, t_ret = torch_learn.gae(t_traj, _t(last_value), CFG)
    np.testing.assert_allclose(t_adv.numpy(), adv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t_ret.numpy(), ret, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("perturb", [False, True])
def test_torch_loss_and_gradients_match_ours_at_init(rollout, perturb):
    """Same initial params (copied across) and batch -> same loss and gradients. ``perturb`` moves the old log-probs
    and values off the current ones so the ratio and value clips are active on both sides."""
    trainer, state, traj, _ = rollout
    rng = np.random.default_rng(1)
    n = CFG.batch_size
    flat = [np.asarray(x).reshape((n,) + x.shape[2:]) for x in (traj.obs, traj.action, traj.logp, traj.value)]
    adv, ret = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    if perturb:
        flat[2] = flat[2] + rng.normal(0, 0.3, n).astype(np.float32)
        flat[3] = flat[3] + rng.normal(0, 0.3, n).astype(np.float32)
    batch = (*flat, adv, ret)
    (loss, aux), grads = jax.value_and_grad(trainer.loss, has_aux=True)(state.params, tuple(map(jnp.asarray, batch)))
    if perturb:
        assert 0 < float(aux["clip_frac"]) < 1
    model = torch_learn.from_flax(jax.device_get(state.params), CFG.net_widths)
    t_batch = tuple(_t(x) for x in batch)
    t_loss = torch_learn.ppo_loss(model, (t_batch[0], t_batch[1].long(), *t_batch[2:]), CFG)
    t_loss.backward()
    assert t_loss.item() == pytest.approx(float(loss), rel=1e-5, abs=1e-6)
    t_norm = float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())))
    assert t_norm == pytest.approx(float(optax.global_norm(grads)), rel=1e-4)
    k = np.asarray(grads["params"]["embedder"]["block1"]["conv"]["kernel"]).transpose(3, 2, 0, 1)
    np.testing.assert_allclose(model.embedder.block1.conv.weight.grad.numpy(), k, rtol=1e-3, atol=1e-6)


def test_bench_vs_torch_cli_json(capsys):
    rc = main(["bench", "train", "--vs-torch", "--json", "--preset", "tiny", "--num-envs", "4", "--num-steps", "8",
               "--repeats", "1", "--set", "update_epochs=1", "num_minibatches=1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "vs-torch" and out["batch"] == 32 and out["samples_per_learn"] == 32
    assert out["threads"] >= 1 and torch.get_num_threads() == out["threads"]
    for name, widths in (("scale1", [16, 32, 32]), ("cpu", list(preset("cpu").net_widths))):
        r = out[name]
        assert r["widths"] == widths
        assert r["ours"] > 0 and r["torch"] > 0
        assert r["ratio"] == pytest.approx(r["ours"] / r["torch"], rel=1e-12)
        assert r["ours"] == pytest.approx(32 / min(r["ours_s"])) and r["torch"] == pytest.approx(32 / min(r["torch_s"]))
