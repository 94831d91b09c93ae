"""A reference PyTorch InterpretableImpala + CategoricalPolicy (our own code, following docs/research.md §2), for
parity tests only. Every leaf module is named as in procgen-tools, so circrl-style ``"{module}_out"`` forward hooks
give the published labels; ``embedder.block1.conv_in0`` is the observation entering the first conv.
"""
from __future__ import annotations

import torch
from torch import nn


class Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.relu1, self.conv1 = nn.ReLU(), nn.Conv2d(c, c, 3, padding=1)
        self.relu2, self.conv2 = nn.ReLU(), nn.Conv2d(c, c, 3, padding=1)
        self.resadd = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resadd(self.conv2(self.relu2(self.conv1(self.relu1(x)))), x)


class ImpalaBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res1, self.res2 = ResidualBlock(c_out), ResidualBlock(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res2(self.res1(self.maxpool(self.conv(x))))


class InterpretableImpala(nn.Module):
    def __init__(self, scale: int):
        super().__init__()
        self.block1 = ImpalaBlock(3, 16 * scale)
        self.block2 = ImpalaBlock(16 * scale, 32 * scale)
        self.block3 = ImpalaBlock(32 * scale, 32 * scale)
        self.relu3, self.flatten = nn.ReLU(), nn.Flatten()
        self.fc, self.relufc = nn.Linear(32 * scale * 8 * 8, 256), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.relufc(self.fc(self.flatten(self.relu3(x))))


class CategoricalPolicy(nn.Module):
    def __init__(self, scale: int):
        super().__init__()
        self.embedder = InterpretableImpala(scale)
        self.fc_policy, self.fc_value = nn.Linear(256, 15), nn.Linear(256, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embedder(x)
        return self.fc_policy(h), self.fc_value(h).reshape(-1)


def random_policy(scale: int, seed: int) -> CategoricalPolicy:
    """Random weights and (unlike the trainer's zero init) random biases, so every parameter matters in parity."""
    torch.manual_seed(seed)
    policy = CategoricalPolicy(scale)
    with torch.no_grad():
        for p in policy.parameters():
            p.uniform_(-1.0, 1.0).mul_(1.5 / p[0].numel() ** 0.5 if p.ndim > 1 else 0.1)
    return policy.eval()


def run_with_labels(policy: CategoricalPolicy, obs_nhwc_uint8) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Forward uint8 NHWC frames the way procgen-tools does (NCHW, /255) and record every leaf module's output."""
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for name, mod in policy.named_modules():
        if name and not list(mod.children()):
            handles.append(mod.register_forward_hook(
                lambda m, inp, out, name=name: acts.__setitem__(f"{name}_out", out.detach().clone())))
    handles.append(policy.embedder.block1.conv.register_forward_hook(
        lambda m, inp, out: acts.__setitem__("embedder.block1.conv_in0", inp[0].detach().clone())))
    x = torch.as_tensor(obs_nhwc_uint8).permute(0, 3, 1, 2).float() / 255.0
    try:
        with torch.no_grad():
            logits, value = policy(x)
    finally:
        for h in handles:
            h.remove()
    return logits, value, acts
