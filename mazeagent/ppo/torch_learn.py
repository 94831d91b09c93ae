"""The PPO learning phase written plainly in PyTorch (CPU), the yardstick of ``mazeagent bench train --vs-torch``.

Same net (IMPALA at any widths, names as the published state dict), same loss as ``Trainer.loss``, same GAE, advantage
normalisation, shuffled epochs x minibatches, global-norm clipping and Adam(eps) as ``Trainer.learn``: only the
framework differs, so the samples/s ratio measures XLA against PyTorch (oneDNN) on this CPU. Needs torch (a test
dependency), imported here and nowhere else in the package.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mazeagent.nets.impala import HIDDEN, NUM_ACTIONS
from mazeagent.ppo.config import PPOConfig


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


class _Block(nn.Module):
    def __init__(self, c_in: int, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, 3, padding=1)
        self.res1, self.res2 = _Residual(c), _Residual(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res2(self.res1(nn.functional.max_pool2d(self.conv(x), 3, stride=2, padding=1)))


class _Embedder(nn.Module):
    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.block1, self.block2, self.block3 = (_Block(a, b) for a, b in zip((3,) + widths[:-1], widths))
        self.fc = nn.Linear(widths[-1] * 8 * 8, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.block3(self.block2(self.block1(x))))
        return torch.relu(self.fc(x.flatten(1)))


class TorchImpala(nn.Module):
    """IMPALA actor-critic at any ``widths``; ``forward`` takes uint8 NHWC frames, like ``ImpalaCNN``."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.embedder = _Embedder(tuple(widths))
        self.fc_policy, self.fc_value = nn.Linear(HIDDEN, NUM_ACTIONS), nn.Linear(HIDDEN, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embedder(obs.permute(0, 3, 1, 2).float() / 255.0)
        return self.fc_policy(h), self.fc_value(h)[:, 0]


def _torch_name(path: tuple[str, ...]) -> str:
    """The torch parameter name of a flattened flax params path (``kernel`` -> ``weight``)."""
    return ".".join(path[:-1]) + (".weight" if path[-1] == "kernel" else ".bias")


def from_flax(params: Any, widths: tuple[int, ...]) -> TorchImpala:
    """A :class:`TorchImpala` holding ``ImpalaCNN`` params (HWIO -> OIHW, (in, out) -> (out, in)); strict, so every
    parameter is mapped."""
    from flax.traverse_util import flatten_dict

    sd = {}
    for path, a in flatten_dict(params.get("params", params)).items():
        a = np.asarray(a, np.float32)
        if path[-1] == "kernel":
            a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T
        sd[_torch_name(path)] = torch.from_numpy(a.copy())
    model = TorchImpala(widths)
    model.load_state_dict(sd, strict=True)
    return model


def to_flax(model: TorchImpala, like: Any) -> Any:
    """``from_flax`` inverted: the model's weights in the structure (and dtypes) of the flax variables ``like``."""
    import jax.numpy as jnp
    from flax.traverse_util import flatten_dict, unflatten_dict

    wrapped = "params" in like
    sd = model.state_dict()
    out = {}
    for path, a in flatten_dict(like["params"] if wrapped else like).items():
        t = sd[_torch_name(path)].detach().numpy()
        if path[-1] == "kernel":
            t = t.transpose(2, 3, 1, 0) if t.ndim == 4 else t.T
        out[path] = jnp.asarray(np.ascontiguousarray(t), dtype=a.dtype)
    tree = unflatten_dict(out)
    return {"params": tree} if wrapped else tree


def ppo_loss(model: TorchImpala, batch: tuple[torch.Tensor, ...], cfg: PPOConfig) -> torch.Tensor:
    """``Trainer.loss`` in torch: clipped surrogate + vf_coef x clipped value loss - ent_coef x entropy."""
    obs, action, old_logp, old_value, adv, ret = batch
    logits, value = model(obs)
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(1, action[:, None])[:, 0]
    ratio = torch.exp(logp - old_logp)
    pg_loss = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
    value_clipped = old_value + torch.clamp(value - old_value, -cfg.clip_eps, cfg.clip_eps)
    v_loss = 0.5 * torch.maximum((value - ret) ** 2, (value_clipped - ret) ** 2).mean()
    entropy = -(torch.exp(logp_all) * logp_all).sum(-1).mean()
    return pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy


@torch.no_grad()
def gae(traj: dict[str, torch.Tensor], last_value: torch.Tensor, cfg: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``Trainer.gae``: advantages and returns (advantages + values) over a (T, N) rollout."""
    not_done = 1.0 - traj["done"].float()
    adv, a, next_value = torch.zeros_like(traj["value"]), torch.zeros_like(last_value), last_value
    for t in reversed(range(traj["value"].shape[0])):
        delta = traj["reward"][t] + cfg.gamma * next_value * not_done[t] - traj["value"][t]
        a = delta + cfg.gamma * cfg.gae_lambda * not_done[t] * a
        adv[t], next_value = a, traj["value"][t]
    return adv, adv + traj["value"]


def learn(model: TorchImpala, opt: torch.optim.Optimizer, traj: dict[str, torch.Tensor], last_value: torch.Tensor,
          cfg: PPOConfig) -> None:
    """``Trainer.learn`` in torch: GAE over the (T, N) rollout, normalised advantages, then shuffled epochs x
    minibatches of clipped-gradient Adam steps."""
    adv, ret = gae(traj, last_value, cfg)
    if cfg.norm_adv:
        adv = (adv - adv.mean()) / (adv.std(correction=0) + 1e-8)
    flat = [x.reshape((cfg.batch_size,) + x.shape[2:])
            for x in (traj["obs"], traj["action"], traj["logp"], traj["value"], adv, ret)]
    for _ in range(cfg.update_epochs):
        perm = torch.randperm(cfg.batch_size)
        for k in range(cfg.num_minibatches):
            idx = perm[k * cfg.minibatch_size:(k + 1) * cfg.minibatch_size]
            loss = ppo_loss(model, tuple(x[idx] for x in flat), cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
