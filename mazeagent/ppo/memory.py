"""Peak-memory estimate of a PPO run, checked against the machine before anything compiles.

Why: a run too big for the machine used to compile for minutes and then die inside XLA with a raw "Out of memory
allocating 485818381976 bytes" (``train --preset fast`` on a CPU machine; README.md has the figures). The culprit is
the CPU learning phase: its epoch/minibatch loops are unrolled (see ``Trainer.unroll_learn``) and XLA:CPU's concurrency-optimised scheduler
then keeps the forward/backward buffers of *every* unrolled minibatch step live at once, so the learning phase needs
memory for ``update_epochs x batch`` samples instead of one minibatch (measured with ``compile().memory_analysis()``:
tiny preset 719 MB unrolled, 110 MB with ``--xla_cpu_enable_concurrency_optimized_scheduler=false``).

The estimate is analytic (float32 forward activations per frame x a factor fitted to XLA's own buffer sizes, plus
the rollout buffers), so it costs microseconds; :data:`SKIP_ENV` turns the check off where it is wrong.
"""
from __future__ import annotations

import os
from typing import Any

from mazeagent.ppo.config import PRESETS, PPOConfig

SKIP_ENV = "MAZEAGENT_SKIP_MEMORY_CHECK"
FRAME_BYTES = 64 * 64 * 3  # one uint8 observation
# XLA temp bytes per byte of forward activations, fitted to memory_analysis() of the compiled learning phase:
# unrolled, per sample of every epoch, 1.48 (fast preset: 485.8 GB), 1.53 (cpu: 10.8 GB), 1.55 (tiny), up to 1.68 on
# batches of 128; looped (lax.scan, or the concurrency scheduler off), per minibatch sample, 1.8-1.9.
UNROLLED_FACTOR = 1.55
LOOPED_FACTOR = 2.0
# XLA:CPU without its concurrency-optimised scheduler keeps one unrolled learning step live (bench train --vs-torch,
# 2 threads: scale-1 87 samples/s either way, cpu widths 296 vs 241 samples/s)
NO_CONCURRENCY_FLAG = "xla_cpu_enable_concurrency_optimized_scheduler=false"
MARGIN = 0.9  # use at most this share of what is available: the OS, the Python heap and XLA's own code need the rest


def activation_bytes(widths: tuple[int, ...]) -> int:
    """float32 bytes of one frame's forward activations through the IMPALA net (what a backward pass keeps)."""
    n, side = 64 * 64 * 3, 64  # the input, converted to float
    for c in widths:  # conv at `side`, then max-pool and two residual blocks of 5 activations each at side / 2
        n += side * side * c + 11 * (side // 2) ** 2 * c
        side //= 2
    return 4 * (n + 2 * side * side * widths[-1] + 2 * 256 + 16)


def _learn_unrolled(platform: str) -> bool:
    """Whether the learning loops are unrolled with all steps' buffers live (XLA:CPU with its default scheduler)."""
    return platform == "cpu" and NO_CONCURRENCY_FLAG not in os.environ.get("XLA_FLAGS", "")


def estimate_bytes(config: PPOConfig, platform: str = "cpu", num_devices: int = 1,
                   unrolled: bool | None = None) -> dict[str, int]:
    """Estimated peak bytes of one training update on one device, by part, and their ``total``. ``unrolled``
    (default: as XLA_FLAGS make it) says whether every unrolled learning step's buffers are live at once."""
    widths = config.net_widths or tuple(c * config.net_scale for c in (16, 32, 32))
    act = activation_bytes(widths)
    split = num_devices if platform != "cpu" else 1  # host devices share one RAM
    if _learn_unrolled(platform) if unrolled is None else unrolled:
        learn = UNROLLED_FACTOR * act * config.update_epochs * config.batch_size
    else:
        learn = LOOPED_FACTOR * act * config.minibatch_size
    trajectory = 3 * config.batch_size * (FRAME_BYTES + 64)  # the rollout's output, its flat and shuffled copies
    rollout = act * config.num_envs + act * config.eval_episodes  # one forward over all envs; evaluation's envs
    convs = sum(9 * a * b + 36 * b * b + 5 * b for a, b in zip((3,) + widths[:-1], widths))  # conv + 2 res blocks
    n_params = convs + (64 * widths[-1] + 17) * 256 + 16  # + fc, fc_policy, fc_value
    parts = {"learn": int(learn / split), "trajectory": int(trajectory / split), "rollout": int(rollout / split),
             "params": 16 * n_params}  # params, gradients and Adam's two moments, float32
    parts["total"] = sum(parts.values())
    return parts


def available_bytes(device: Any = None) -> int | None:
    """Free memory where the run will live: the accelerator's free bytes, or the host's MemAvailable; None if
    unknown (then nothing is checked)."""
    if device is not None and device.platform != "cpu":
        stats = device.memory_stats() or {}
        limit = stats.get("bytes_limit")
        return None if limit is None else int(limit - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(config: PPOConfig, device: Any = None, num_devices: int = 1) -> None:
    """Raise ValueError (estimated vs available bytes, and what would fit) when ``config`` cannot fit; cheap, so
    it runs before anything compiles. ``MAZEAGENT_SKIP_MEMORY_CHECK=1`` skips it."""
    if os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    platform = "cpu" if device is None else device.platform
    avail = available_bytes(device)
    if avail is None:
        return
    budget = MARGIN * avail
    need = estimate_bytes(config, platform, num_devices)
    if need["total"] <= budget:
        return

    def fits(c: PPOConfig) -> bool:
        return estimate_bytes(c, platform, num_devices)["total"] <= budget

    hints = []
    n = config.num_envs // 2
    while n >= 1 and not (config.num_steps * n % config.num_minibatches == 0 and n % num_devices == 0
                          and fits(config.replace(num_envs=n))):
        n //= 2
    if n >= 1:
        hints.append(f"lower num_envs to {n} (--set num_envs={n}), keeping the rest of this config")
    if _learn_unrolled(platform) and estimate_bytes(config, platform, num_devices, unrolled=False)["total"] <= budget:
        hints.append(f"keep this config and set XLA_FLAGS=--{NO_CONCURRENCY_FLAG} (one minibatch live at a time; "
                     f"measured no slower)")
    presets = [name for name, c in PRESETS.items() if fits(c)]
    if presets:
        hints.append(f"use --preset {' or '.join(presets)} (presets that fit here)")
    why = (f"{config.update_epochs} epochs x {config.batch_size:,} samples in unrolled learning loops on CPU"
           if _learn_unrolled(platform) else f"minibatches of {config.minibatch_size:,} samples")
    hint = "; or ".join(hints) or "no preset fits"
    raise ValueError(
        f"this run needs an estimated {_gb(need['total'])} of memory but {_gb(avail)} is available on {platform} "
        f"(learning phase {_gb(need['learn'])}: {why}; rollout buffers {_gb(need['trajectory'] + need['rollout'])})."
        f" {hint[0].upper() + hint[1:]}. The estimate is analytic; if it is wrong, set {SKIP_ENV}=1 "
        f"to skip this check.")


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"
