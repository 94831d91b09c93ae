"""The IMPALA-CNN policy of the published maze agents, in flax.linen, with a named hook point on every activation.

Module and parameter names mirror the PyTorch ``InterpretableImpalaModel`` + ``CategoricalPolicy`` state dict, so
``params['embedder']['block2']['res1']['conv1']['kernel']`` is ``embedder.block2.res1.conv1.weight`` (OIHW -> HWIO),
and ``embedder.fc`` sees the activations flattened in **NCHW** order, so published fc weights import by a transpose.

Activations flow NHWC internally (XLA's native layout); a hook point's full name is the module path joined by dots
plus the local label, e.g. ``embedder.block2.res1.resadd_out`` (research-notes §4.1). Hooks and capture are driven
by :class:`HookContext`; use :class:`mazeagent.nets.hooked.HookedImpala` (or :mod:`mazeagent.nets.hooks` inside
your own ``jit``) rather than passing it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mazeagent.maze.level import NUM_ACTIONS

OBS_SHAPE = (64, 64, 3)
BASE_WIDTHS = (16, 32, 32)
HIDDEN = 256

# Published trainer init (train-procgen-pytorch `xavier_uniform_init` / `orthogonal_init`): zero biases everywhere.
# (PyTorch's own defaults would be kaiming-uniform(a=sqrt 5) weights and U(+-1/sqrt(fan_in)) biases; we follow the
# trainer that produced the published agents.)
_body_init = nn.initializers.xavier_uniform()
_zeros = nn.initializers.zeros_init()


class HookPoint(NamedTuple):
    """What a hook learns besides the activation: its full ``name`` and the forward pass's ``args`` (the
    ``hook_args`` pytree, None when not given). Every hook is called as ``hook(x, point)``."""

    name: str
    args: Any = None


@dataclass(frozen=True)
class HookContext:
    """What a forward pass does at its hook points: replace (``hooks``) and/or record (``capture``).

    ``hooks`` maps full hook names to functions called as ``hook(x, HookPoint(name, hook_args))``, so one hook can
    serve several layers and read traced per-call arrays. ``capture`` is the set of names to sow into the
    ``intermediates`` collection (``capture_all``: every hook point, which is how the hook names are found); the
    captured value is the one downstream layers see (after any hook).
    """

    hooks: Mapping[str, Callable[[jax.Array, HookPoint], Any]] = field(default_factory=dict)
    hook_args: Any = None
    capture: frozenset[str] = frozenset()
    capture_all: bool = False

    def point(self, module: nn.Module, label: str, x: jax.Array) -> jax.Array:
        name = ".".join((*module.scope.path, label))
        fn = self.hooks.get(name)
        if fn is not None:
            y = jnp.asarray(fn(x, HookPoint(name, self.hook_args)))
            if y.shape != x.shape:
                raise ValueError(f"hook for {name!r} must return shape {x.shape} (NHWC), got {y.shape}")
            x = y.astype(x.dtype)
        if self.capture_all or name in self.capture:
            module.sow("intermediates", label, x, reduce_fn=lambda _, v: v, init_fn=lambda: None)
        return x


_NO_HOOKS = HookContext()


def _conv(features: int, name: str, precision: Any) -> nn.Conv:
    return nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), kernel_init=_body_init, bias_init=_zeros,
                   precision=precision, name=name)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: ``x + conv2(relu(conv1(relu(x))))`` (no ReLU after the add)."""

    channels: int
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, hk: HookContext) -> jax.Array:
        out = hk.point(self, "relu1_out", nn.relu(x))
        out = hk.point(self, "conv1_out", _conv(self.channels, "conv1", self.precision)(out))
        out = hk.point(self, "relu2_out", nn.relu(out))
        out = hk.point(self, "conv2_out", _conv(self.channels, "conv2", self.precision)(out))
        return hk.point(self, "resadd_out", out + x)


class ImpalaBlock(nn.Module):
    """conv3x3 -> maxpool(3, stride 2, pad 1 with -inf, as torch MaxPool2d) -> res1 -> res2; halves H and W."""

    channels: int
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, hk: HookContext) -> jax.Array:
        if self.name == "block1":  # later blocks' inputs are the previous res2.resadd_out, already named
            x = hk.point(self, "conv_in0", x)
        x = hk.point(self, "conv_out", _conv(self.channels, "conv", self.precision)(x))
        x = hk.point(self, "maxpool_out", nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))))
        x = ResidualBlock(self.channels, self.precision, name="res1")(x, hk)
        return ResidualBlock(self.channels, self.precision, name="res2")(x, hk)


class Embedder(nn.Module):
    """Three IMPALA blocks, then ReLU -> NCHW flatten -> Dense(256) -> ReLU."""

    widths: tuple[int, ...] = BASE_WIDTHS
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, hk: HookContext) -> jax.Array:
        for i, width in enumerate(self.widths):
            x = ImpalaBlock(width, self.precision, name=f"block{i + 1}")(x, hk)
        x = hk.point(self, "relu3_out", nn.relu(x))
        # NCHW order (channel-major), as torch's Flatten of an NCHW tensor: published fc weights import exactly.
        x = hk.point(self, "flatten_out", jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1))
        x = hk.point(self, "fc_out", nn.Dense(HIDDEN, kernel_init=_body_init, bias_init=_zeros,
                                              precision=self.precision, name="fc")(x))
        return hk.point(self, "relufc_out", nn.relu(x))


class ImpalaCNN(nn.Module):
    """IMPALA-CNN actor-critic with channel widths (16, 32, 32) x ``scale`` (published maze agents: scale 4).

    ``widths`` (three positive ints, e.g. ``(4, 8, 8)``) overrides the published widths, for nets small enough to
    train on a CPU in tests; hook names are the same, only the channel counts change.

    ``apply(params, obs)`` with obs ``(B, 64, 64, 3)`` (or a single ``(64, 64, 3)`` frame) returns
    ``(logits (B, 15), value (B,))``. uint8 frames are scaled to [0, 1] here; float frames are taken as already
    scaled (handy for gradients w.r.t. the input). Logits are the raw ``fc_policy`` outputs.
    """

    scale: int = 1
    precision: Any = None  # e.g. jax.lax.Precision.HIGHEST for strict float32 parity on GPUs that default to TF32
    widths: tuple[int, ...] | None = None  # None: BASE_WIDTHS x scale; else used as given (scale must then be 1)

    def __post_init__(self) -> None:
        if not isinstance(self.scale, int) or isinstance(self.scale, bool) or self.scale < 1:
            raise ValueError(f"ImpalaCNN scale must be a positive int (published agents: 1 or 4), got {self.scale!r}")
        if self.widths is not None:
            w = self.widths
            if (not isinstance(w, (tuple, list)) or len(w) != len(BASE_WIDTHS)
                    or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in w)):
                raise ValueError(f"ImpalaCNN widths must be None or {len(BASE_WIDTHS)} positive ints "
                                 f"(one per IMPALA block, e.g. (4, 8, 8)), got {w!r}")
            if self.scale != 1:
                raise ValueError(f"ImpalaCNN: give either widths ({w!r}) or scale ({self.scale}), not both")
            object.__setattr__(self, "widths", tuple(w))
        super().__post_init__()

    @property
    def channel_widths(self) -> tuple[int, ...]:
        """The three blocks' channel counts actually used."""
        return tuple(c * self.scale for c in BASE_WIDTHS) if self.widths is None else tuple(self.widths)

    @nn.compact
    def __call__(self, obs: jax.Array, hk: HookContext | None = None) -> tuple[jax.Array, jax.Array]:
        hk = _NO_HOOKS if hk is None else hk
        x, single = _prepare_obs(obs)
        x = Embedder(self.channel_widths, self.precision, name="embedder")(x, hk)
        logits = hk.point(self, "fc_policy_out", nn.Dense(
            NUM_ACTIONS, kernel_init=nn.initializers.orthogonal(0.01), bias_init=_zeros,
            precision=self.precision, name="fc_policy")(x))
        value = hk.point(self, "fc_value_out", nn.Dense(
            1, kernel_init=nn.initializers.orthogonal(1.0), bias_init=_zeros,
            precision=self.precision, name="fc_value")(x))[:, 0]
        if single:
            return logits[0], value[0]
        return logits, value


def _prepare_obs(obs: jax.Array) -> tuple[jax.Array, bool]:
    """Validate frames, add a batch axis to a single frame, scale uint8 to [0, 1] float32."""
    obs = jnp.asarray(obs)
    if obs.ndim not in (3, 4) or tuple(obs.shape[-3:]) != OBS_SHAPE:
        raise ValueError(f"obs must be (64, 64, 3) or (B, 64, 64, 3) NHWC frames, got shape {obs.shape}")
    if obs.dtype == jnp.uint8:
        x = obs.astype(jnp.float32) / 255.0
    elif jnp.issubdtype(obs.dtype, jnp.floating):
        x = obs.astype(jnp.float32)
    else:
        raise ValueError(f"obs must be uint8 frames (or floats already in [0, 1]), got dtype {obs.dtype}")
    single = obs.ndim == 3
    return (x[None] if single else x), single


def num_params(params: Any) -> int:
    """Total parameter count (scale 4: 3,653,136, research-notes §4.1)."""
    return int(sum(p.size for p in jax.tree_util.tree_leaves(params)))
