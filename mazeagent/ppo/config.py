"""PPO run configuration: one flat frozen dataclass, three presets, `key=value` overrides, validation.

Flat on purpose: every knob is addressable as ``--set key=value`` and appears as one column in wandb. Validation runs
before anything is compiled, so a typo costs milliseconds, not a jit.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, fields
from typing import Any

from mazeagent.maze.level import TIMEOUT

WANDB_MODES = ("offline", "online", "disabled")  # the one home of wandb modes (every --wandb option)
DEFAULT_WANDB_MODE = "offline"
# Run-management keys: they change how a run is kept and logged, not what it trains (a resume may change them; the
# config hash that names comparable checkpoints leaves them out).
RUN_KEYS = frozenset({"checkpoint_every", "keep_checkpoints", "eval_every", "eval_episodes", "wandb_mode",
                      "wandb_project", "wandb_entity"})


@dataclass(frozen=True)
class PPOConfig:
    """Everything that determines a training run (same config + same seed -> bitwise the same run on CPU)."""

    seed: int = 0
    # environment (mazeagent.env.EnvParams); rand_region=None is stock procgen `maze`, an int is `maze_aisc`
    distribution_mode: str = "hard"
    rand_region: int | None = 5
    num_levels: int = 0
    start_level: int = 0
    timeout: int = TIMEOUT
    use_backgrounds: bool = True
    # not procgen: skip levels whose maze is larger than this odd size (None = procgen's sizes); for CPU-sized runs
    max_maze_size: int | None = None
    # maze-size curriculum (mazeagent.ppo.curriculum): ((start_env_step, max_maze_size), ...), first start 0, starts
    # and sizes increasing, last size <= max_maze_size; `--set curriculum=0:5,200000:9`. None = max_maze_size throughout
    curriculum: tuple[tuple[int, int], ...] | None = None
    # end a stage early once the training cheese rate over its newest curriculum_window episodes reaches this rate
    curriculum_advance_at: float | None = None
    curriculum_window: int = 256
    # network (mazeagent.nets.ImpalaCNN)
    net_scale: int = 1
    # explicit channel widths of the three IMPALA blocks (e.g. (4, 8, 8) for CPU tests); None = (16, 32, 32) x scale
    net_widths: tuple[int, ...] | None = None
    # start from this checkpoint's params (a run dir, checkpoints/ or step dir; e.g. a `mazeagent bc` warm start
    # or a finetune into another distribution); None = fresh init. Adam starts fresh either way.
    init_from: str | None = None
    # PPO (defaults: the published A100 config, docs/research.md §6)
    num_envs: int = 512
    num_steps: int = 256
    total_timesteps: int = 80_000_000
    update_epochs: int = 3
    num_minibatches: int = 16
    lr: float = 5e-4
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    gamma: float = 0.999
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    # return-based reward scaling as baselines' VecNormalize(ob=False): divide by the running std of discounted returns
    norm_reward: bool = True
    reward_norm_gamma: float = 0.99
    reward_clip: float = 10.0
    # run management (these never change the learned parameters)
    checkpoint_every: int = 10
    keep_checkpoints: int = 3
    eval_every: int = 0
    eval_episodes: int = 64
    wandb_mode: str = DEFAULT_WANDB_MODE
    wandb_project: str = "mazeagent"
    wandb_entity: str | None = None

    # ---- derived sizes -------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PPOConfig":
        """Build and validate from a plain dict (e.g. a checkpoint's config.json); unknown keys are an error."""
        _check_keys(d)
        d = dict(d)
        if isinstance(d.get("net_widths"), list):  # JSON has no tuples; a tuple keeps the config hashable
            d["net_widths"] = tuple(d["net_widths"])
        if isinstance(d.get("curriculum"), list):
            d["curriculum"] = tuple(tuple(s) if isinstance(s, list) else s for s in d["curriculum"])
        return cls(**d).validate()

    def replace(self, **kw: Any) -> "PPOConfig":
        _check_keys(kw)
        return dataclasses.replace(self, **kw)

    def validate(self) -> "PPOConfig":
        """Raise ValueError naming every problem at once; returns self so calls chain."""
        errors = []
        for f in fields(self):  # types first: "lr=abc" should say so, not fail later inside jax
            v = getattr(self, f.name)
            if not _type_ok(v, _FIELD_TYPES[f.name]):
                errors.append(f"{f.name}={v!r} should be {_type_name(_FIELD_TYPES[f.name])}")
        if errors:
            raise ValueError("invalid PPO config: " + "; ".join(errors))

        def need(cond: bool, msg: str) -> None:
            if not cond:
                errors.append(msg)

        for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "total_timesteps", "timeout",
                     "net_scale", "checkpoint_every", "keep_checkpoints", "eval_episodes", "curriculum_window"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        if self.net_widths is not None:
            need(len(self.net_widths) == 3 and all(w > 0 for w in self.net_widths),
                 f"net_widths must be None or 3 positive ints (one per IMPALA block), got {self.net_widths}")
            need(self.net_scale == 1, f"net_widths={self.net_widths} replaces net_scale; leave net_scale at 1, "
                                      f"got {self.net_scale}")
        need(self.eval_every >= 0, f"eval_every must be >= 0 (0 = only at the end), got {self.eval_every}")
        need(self.num_levels >= 0 and self.start_level >= 0, "num_levels and start_level must be >= 0")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        need(0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        need(0 < self.reward_norm_gamma <= 1, f"reward_norm_gamma must be in (0, 1], got {self.reward_norm_gamma}")
        need(self.clip_eps > 0, f"clip_eps must be > 0, got {self.clip_eps}")
        need(self.reward_clip > 0, f"reward_clip must be > 0, got {self.reward_clip}")
        need(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        for name in ("ent_coef", "vf_coef"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.distribution_mode in ("easy", "hard"),
             f"distribution_mode must be 'easy' or 'hard', got {self.distribution_mode!r}")
        need(self.rand_region is None or self.rand_region >= 0,
             f"rand_region must be None (stock maze) or >= 0, got {self.rand_region}")
        if self.max_maze_size is not None and self.distribution_mode in ("easy", "hard"):
            from mazeagent.env.levelgen import check_max_maze_size, world_dim
            try:
                check_max_maze_size(self.max_maze_size, world_dim(self.distribution_mode))
            except ValueError as e:
                errors.append(str(e))
        from mazeagent.ppo.curriculum import schedule_errors
        errors += schedule_errors(self)
        need(self.curriculum_advance_at is None or 0 < self.curriculum_advance_at <= 1,
             f"curriculum_advance_at must be None or in (0, 1], got {self.curriculum_advance_at}")
        need(self.wandb_mode in WANDB_MODES, f"wandb_mode must be one of {WANDB_MODES}, got {self.wandb_mode!r}")
        if self.num_minibatches > 0 and self.num_envs > 0 and self.num_steps > 0:
            need(self.batch_size % self.num_minibatches == 0,
                 f"num_minibatches={self.num_minibatches} must divide the batch num_envs*num_steps="
                 f"{self.batch_size}")
            need(self.total_timesteps >= self.batch_size,
                 f"total_timesteps={self.total_timesteps} is less than one update "
                 f"(num_envs*num_steps={self.batch_size})")
        if errors:
            raise ValueError("invalid PPO config: " + "; ".join(errors))
        return self


PRESETS: dict[str, PPOConfig] = {
    # The published Langosco et al. maze agents (docs/research.md §6): 512 envs x 256 steps, IMPALA x4, 80M steps.
    "paper": PPOConfig(net_scale=4),
    # One GPU, quickest to a competent agent: more, shorter rollouts (more updates per env step), scale 1.
    "fast": PPOConfig(num_envs=1024, num_steps=64, num_minibatches=8, total_timesteps=25_000_000, gamma=0.99,
                      checkpoint_every=50, eval_every=50),
    # CPU recipe (README.md, "Training on a CPU"): hard-mode mazes up to 13x13, cheese in the top-right 5x5, an
    # (8, 16, 16) net.
    # `mazeagent bc` warm-starts it from shortest-path moves; `train --set init_from=...` then fine-tunes with PPO.
    "cpu": PPOConfig(rand_region=5, max_maze_size=13, net_widths=(8, 16, 16), num_envs=64, num_steps=64,
                     total_timesteps=64 * 64 * 40, update_epochs=2, num_minibatches=4, lr=2.5e-4, gamma=0.99,
                     checkpoint_every=5, eval_every=10, eval_episodes=128),
    # CI-sized (tests, smoke runs): small easy mazes (3x3..7x7, cheese in the top-right 2x2), a (4, 8, 8) net and
    # 24 updates of 32 envs x 16 steps. Learns within a minute or two of CPU (README: measured cheese rates).
    "tiny": PPOConfig(distribution_mode="easy", rand_region=2, max_maze_size=7, timeout=30, net_widths=(4, 8, 8),
                      num_envs=32, num_steps=16, total_timesteps=32 * 16 * 24, update_epochs=2, num_minibatches=4,
                      lr=2e-3, gamma=0.95, checkpoint_every=4, eval_every=0, eval_episodes=64, wandb_mode="disabled"),
}


def preset(name: str) -> PPOConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["lr=3e-4", "rand_region=none"]`` -> typed dict. Unknown keys and unparsable values are ValueErrors."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        _check_keys({key: None})
        out[key] = _parse_value(key, raw.strip())
    return out


def pth_config(path: str, scale: int, preset_name: str = "paper", overrides: list[str] | tuple[str, ...] = (),
               seed: int | None = None) -> PPOConfig:
    """The config recorded for a published ``.pth`` agent: ``preset_name`` + ``overrides``, with ``net_scale`` the
    file's (inferred from its tensors) and ``rand_region`` read from a ``..._rand_region_<r>.pth`` name unless
    overridden."""
    import re
    from pathlib import Path

    given = parse_overrides(list(overrides))
    if given.get("net_scale", scale) != scale:
        raise ValueError(f"net_scale={given['net_scale']} was requested but {Path(path).name} holds a scale-{scale} "
                         "network")
    pre = [f"net_scale={scale}"]
    m = re.search(r"rand_region_(\d+)", Path(path).stem)
    if m and "rand_region" not in given:
        pre.append(f"rand_region={int(m.group(1))}")
    return make_config(preset_name, pre + list(overrides), seed)


def make_config(preset_name: str = "paper", overrides: list[str] | tuple[str, ...] = (),
                seed: int | None = None) -> PPOConfig:
    """The CLI's path: preset, then ``--set`` overrides, then ``--seed``; validated."""
    cfg = preset(preset_name).replace(**parse_overrides(overrides))
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    return cfg.validate()


# ---- helpers ------------------------------------------------------------------------------------------------------
_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(PPOConfig)
_NAMES = tuple(_FIELD_TYPES)


def _check_keys(d: dict[str, Any]) -> None:
    unknown = [k for k in d if k not in _FIELD_TYPES]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, _NAMES, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown config key(s): {', '.join(hints)}; valid keys: {', '.join(_NAMES)}")


def _type_ok(v: Any, tp: Any) -> bool:
    if typing.get_origin(tp) is tuple:  # tuple[int, ...] or tuple[int, int]
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return isinstance(v, tuple) and all(_type_ok(x, args[0]) for x in v)
        return isinstance(v, tuple) and len(v) == len(args) and all(_type_ok(x, a) for x, a in zip(v, args))
    if isinstance(tp, types.UnionType):
        return any(_type_ok(v, a) for a in typing.get_args(tp))
    if tp is type(None):
        return v is None
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple and typing.get_origin(typing.get_args(tp)[0]) is tuple:
        return "comma-separated START:SIZE pairs (e.g. 0:5,100000:9)"
    if typing.get_origin(tp) is tuple:
        return f"a tuple of {_type_name(typing.get_args(tp)[0])} (comma-separated, e.g. 4,8,8)"
    if isinstance(tp, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "None" if tp is type(None) else tp.__name__


def _parse_value(key: str, raw: str) -> Any:
    tp = _FIELD_TYPES[key]
    options = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    if type(None) in options and raw.lower() in ("none", "null"):
        return None
    for opt in options:
        try:
            if typing.get_origin(opt) is tuple and typing.get_origin(typing.get_args(opt)[0]) is tuple:
                return _parse_pairs(raw)
            if typing.get_origin(opt) is tuple:  # tuple[int, ...]: "4,8,8" or "(4, 8, 8)"
                return tuple(int(x) for x in raw.strip("()[] ").split(","))
            if opt is bool:
                low = raw.lower()
                if low in ("true", "1", "yes"):
                    return True
                if low in ("false", "0", "no"):
                    return False
                raise ValueError
            if opt is int:  # accept 80_000_000 and 8e7, never silently truncate 2.5
                try:
                    return int(raw)
                except ValueError:
                    as_float = float(raw)
                    if not as_float.is_integer():
                        raise
                    return int(as_float)
            if opt is float:
                return float(raw)
            if opt is str:
                return raw
        except ValueError:
            continue
    raise ValueError(f"cannot parse {key}={raw!r} as {_type_name(tp)}")


def _parse_pairs(raw: str) -> tuple[tuple[int, int], ...]:
    """``"0:5,100_000:9"`` (or ``1e5:9``) -> ``((0, 5), (100000, 9))``; a non-integer or a missing ``:`` is an error."""
    pairs = [p.split(":") for p in raw.strip("()[] ").split(",")]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(raw)
    return tuple((_int(a), _int(b)) for a, b in pairs)


def _int(raw: str) -> int:
    """80_000_000 and 8e7 are ints; 2.5 is an error, never truncated."""
    try:
        return int(raw)
    except ValueError:
        as_float = float(raw)
        if not as_float.is_integer():
            raise
        return int(as_float)


BC_BACKENDS = ("jax", "torch")  # where `mazeagent bc` learns (mazeagent.ppo.bc, mazeagent.ppo.bc_torch)


@dataclass(frozen=True)
class BCConfig:
    """Behaviour-cloning knobs; env and network come from the :class:`PPOConfig` beside it."""

    steps: int = 20_000  # Adam steps
    batch: int = 256
    lr: float = 1e-3
    max_grad_norm: float = 1.0
    mazes_per_chunk: int = 256  # fresh mazes per chunk
    chunk_steps: int = 16  # Adam steps per chunk (chunk = chunk_steps * batch samples)
    checkpoint_every: int = 512  # a multiple of chunk_steps
    eval_every: int = 2_000  # steps; 0 = only at the end
    eval_episodes: int = 128
    # Where the learning runs: "jax" (the flax net under XLA) or "torch" (the same net and loss on PyTorch's CPU
    # convolutions, several times XLA's samples/s on a CPU, see README); the checkpoint is the same either way.
    backend: str = "jax"
    # DAgger: this fraction of each chunk comes from the current clone's own rollouts (sampled actions, from the
    # maze's start or a random square), labelled by the expert, so it learns to leave the places it gets stuck in.
    dagger: float = 0.0
    dagger_steps: int = 32  # rollout length per DAgger maze
    # Tilt the training mazes towards large ones: keep a level with probability (size / max size) ** size_power
    # (0 = the env's own mix). Evaluation always uses the env's own mix.
    size_power: float = 0.0

    def validate(self) -> "BCConfig":
        errors = [f"{k} must be > 0, got {v}" for k, v in dataclasses.asdict(self).items()
                  if k not in ("eval_every", "backend", "dagger", "size_power") and not (v > 0)]
        if self.eval_every < 0:
            errors.append(f"eval_every must be >= 0, got {self.eval_every}")
        if self.backend not in BC_BACKENDS:
            errors.append(f"backend must be one of {BC_BACKENDS}, got {self.backend!r}")
        if not 0.0 <= self.size_power <= 8.0:
            errors.append(f"size_power must be in [0, 8], got {self.size_power}")
        if not 0.0 <= self.dagger < 1.0:
            errors.append(f"dagger must be in [0, 1), got {self.dagger}")
        if self.checkpoint_every > 0 and self.checkpoint_every % self.chunk_steps:
            errors.append(f"checkpoint_every ({self.checkpoint_every}) must be a multiple of chunk_steps "
                          f"({self.chunk_steps})")
        if errors:
            raise ValueError("invalid BC config: " + "; ".join(errors))
        return self
