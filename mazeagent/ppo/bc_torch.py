"""The behaviour-cloning learner on PyTorch's CPU convolutions (``mazeagent bc --backend torch``).

Why: on a CPU, PyTorch's oneDNN convolution gradients run the IMPALA net's BC step several times faster than
XLA's (README: measured; ``mazeagent bench train --vs-torch`` measures the same gap for PPO). Everything else is
ours: the data (:func:`mazeagent.ppo.bc.chunk`), the loss (move-group cross-entropy), Adam with the same clipped,
cosine-decayed schedule as :func:`mazeagent.ppo.bc.make_optimizer`, and the checkpoint, which holds the flax
params (so every ``--checkpoint`` option reads it) plus Adam's moments, so ``--resume`` continues exactly.
Needs torch (a test dependency), imported here and in :mod:`mazeagent.ppo.torch_learn` only.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mazeagent.nets.actions import GROUP_MATRIX
from mazeagent.ppo.config import BCConfig, PPOConfig
from mazeagent.ppo.torch_learn import from_flax, to_flax
from mazeagent.ppo.train import make_net


def cosine_lr(bc: BCConfig, step: int) -> float:
    """optax.cosine_decay_schedule(bc.lr, bc.steps, alpha=0.05) at ``step`` (0 = the first update)."""
    t = min(step, bc.steps) / bc.steps
    return bc.lr * (0.95 * 0.5 * (1.0 + math.cos(math.pi * t)) + 0.05)


class TorchLearner:
    """:class:`mazeagent.ppo.bc.JaxLearner`'s interface over a :class:`~mazeagent.ppo.torch_learn.TorchImpala`."""

    def __init__(self, config: PPOConfig, bc: BCConfig, params: Any) -> None:
        torch.manual_seed(config.seed)
        self.bc = bc
        self._template = params  # flax structure for params()
        self.model = from_flax(params, make_net(config).channel_widths)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=bc.lr, eps=1e-8)
        self.t = 0
        self._mask = torch.from_numpy(GROUP_MATRIX.T > 0)  # (5, 15): actions of each move group

    def _group_log_probs(self, obs: np.ndarray) -> torch.Tensor:
        logits, _ = self.model(torch.from_numpy(np.array(obs, np.uint8)))
        logp = torch.log_softmax(logits, -1)
        return torch.logsumexp(logp[:, None, :].masked_fill(~self._mask, -math.inf), -1)

    def step(self, obs: np.ndarray, label: np.ndarray) -> tuple[float, float]:
        self.model.train()
        lp = self._group_log_probs(obs)
        y = torch.from_numpy(np.asarray(label, np.int64))
        loss = -lp.gather(1, y[:, None]).mean()
        acc = float((lp.argmax(-1) == y).float().mean())
        if not math.isfinite(loss.item()):
            return loss.item(), acc
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.bc.max_grad_norm)
        for group in self.opt.param_groups:
            group["lr"] = cosine_lr(self.bc, self.t)
        self.opt.step()
        self.t += 1
        return loss.item(), acc

    @torch.no_grad()
    def logits(self, obs: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(np.array(obs, np.uint8)))[0].numpy()

    def params(self) -> Any:
        return to_flax(self.model, self._template)

    def state(self) -> dict[str, Any]:
        """The checkpointed pytree: flax params and Adam's per-parameter moments and step (numpy arrays)."""
        adam = {}
        for name, p in self.model.named_parameters():
            s = self.opt.state.get(p)
            zeros = np.zeros(tuple(p.shape), np.float32)
            adam[name.replace(".", "_")] = {k: s[k].numpy().copy() if s else zeros
                                            for k in ("exp_avg", "exp_avg_sq")}
        return {"params": self.params(), "adam": adam, "adam_step": np.asarray(self.t, np.int64)}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(from_flax(state["params"], self.model.widths).state_dict(), strict=True)
        self.t = int(np.asarray(state["adam_step"]))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.bc.lr, eps=1e-8)
        if self.t:
            for name, p in self.model.named_parameters():
                m = state["adam"][name.replace(".", "_")]
                self.opt.state[p] = {"step": torch.tensor(float(self.t)),
                                     "exp_avg": torch.from_numpy(np.array(m["exp_avg"], np.float32)),
                                     "exp_avg_sq": torch.from_numpy(np.array(m["exp_avg_sq"], np.float32))}
