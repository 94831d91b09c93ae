"""Trainer throughput: env-steps/s of the whole jitted update, and of its parts (env stepping, policy forward,
learning) timed separately with the same shapes, on whatever device JAX runs on."""
from __future__ import annotations

import time
from typing import Any, Callable

from mazeagent.ppo.config import PPOConfig


def _time(fn: Callable[[], Any], seconds: float) -> tuple[float, int]:
    """Mean seconds per call of an already-compiled ``fn`` (blocks on its result), over >= ``seconds`` and >= 1 call."""
    import jax

    n, t0 = 0, time.perf_counter()
    while True:
        jax.block_until_ready(fn())
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return elapsed / n, n


def bench_train(config: PPOConfig, seconds: float = 10.0, progress: bool = True) -> dict[str, Any]:
    """Time ``seconds`` of whole updates, then a quarter of that each for the three parts. Returns a JSON-able dict."""
    import jax
    import jax.numpy as jnp
    from tqdm import tqdm

    from mazeagent.ppo.train import make_train

    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    trainer = make_train(config)
    cfg, batch = trainer.config, config.batch_size
    steps = tqdm(total=5, desc="bench", disable=not progress)
    t0 = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.PRNGKey(config.seed))
    update = jax.jit(trainer.update)
    state, _ = jax.block_until_ready(update(state))
    compile_s = time.perf_counter() - t0
    steps.update()

    holder = {"s": state}

    def one_update():
        holder["s"], stats = update(holder["s"])
        return stats

    update_s, n_updates = _time(one_update, seconds)
    steps.update()

    @jax.jit
    def env_only(env_state, key):  # uniform random actions: the env's share of the rollout
        def body(s, k):  # every frame is summed, so no pixel's rendering can be optimised away
            k_a, k_e = jax.random.split(k)
            a = jax.random.randint(k_a, (cfg.num_envs,), 0, 15)
            obs, s, *_ = trainer.env.step(k_e, s, a)
            return s, obs.sum(dtype=jnp.uint32)
        return jax.lax.scan(body, env_state, jax.random.split(key, cfg.num_steps))

    @jax.jit
    def forward_only(params, obs):  # the policy's share: num_steps forward passes over the env batch
        def body(c, i):  # frames depend on the step, so XLA cannot hoist one forward out of the loop
            logits, value = trainer.net.apply(params, obs ^ i)
            return c + logits.sum() + value.sum(), None
        return jax.lax.scan(body, jnp.zeros(()), jnp.arange(cfg.num_steps, dtype=jnp.uint8))[0]

    rollout = jax.jit(trainer.rollout)
    learn = jax.jit(trainer.learn)
    s = holder["s"]
    key = jax.random.PRNGKey(config.seed + 1)
    jax.block_until_ready(env_only(s.env_state, key))
    env_s, _ = _time(lambda: env_only(s.env_state, key), seconds / 4)
    steps.update()
    jax.block_until_ready(forward_only(s.params, s.obs))
    fwd_s, _ = _time(lambda: forward_only(s.params, s.obs), seconds / 4)
    steps.update()
    s2, traj, last_value = jax.block_until_ready(rollout(s))
    jax.block_until_ready(learn(s2, traj, last_value))
    learn_s, _ = _time(lambda: learn(s2, traj, last_value), seconds / 4)
    steps.update()
    steps.close()
    dev = jax.devices()[0]
    return {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "num_devices": jax.device_count(),
        "net_scale": cfg.net_scale, "num_envs": cfg.num_envs, "num_steps": cfg.num_steps,
        "batch": batch, "updates_timed": n_updates, "compile_s": round(compile_s, 3),
        "update_s": update_s, "env_s": env_s, "forward_s": fwd_s, "learn_s": learn_s,
        "steps_per_s": batch / update_s,
        "env_steps_per_s": batch / env_s, "forward_steps_per_s": batch / fwd_s, "learn_steps_per_s": batch / learn_s,
    }
