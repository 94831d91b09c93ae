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


def synthetic_rollout(trainer: Any, key: Any) -> tuple[Any, Any, Any]:
    """A freshly initialised state and a random trajectory in ``trainer``'s (num_steps, num_envs) shapes, as
    ``Trainer.rollout`` returns them: what the learning phase costs does not depend on the values, and no env has to
    compile. Only the fields ``Trainer.learn`` reads are set."""
    import jax
    import jax.numpy as jnp

    from mazeagent.ppo.train import RunnerState, Transition

    cfg = trainer.config
    shape = (cfg.num_steps, cfg.num_envs)

    @jax.jit  # one compile, not one per eager op
    def make(key: Any) -> tuple[Any, Any, Any]:
        k = jax.random.split(key, 8)
        obs = jax.random.bits(k[0], shape + (64, 64, 3), jnp.uint8)
        params = trainer.net.init(k[1], obs[0, :1])
        state = RunnerState(params=params, opt_state=trainer.optimizer.init(params), env_state=None, obs=None,
                            rng=k[2], reward_norm=None, ep_return=None, ep_length=None,
                            update=jnp.zeros((), jnp.int32))
        done = jax.random.bernoulli(k[3], 0.05, shape)
        reward = jnp.where(done & jax.random.bernoulli(k[4], 0.5, shape), 1.0, 0.0)
        value = 0.1 * jax.random.normal(k[5], shape)
        logp = -jnp.log(15.0) + 0.1 * jax.random.normal(k[6], shape)
        action = jax.random.randint(k[7], shape, 0, 15)
        traj = Transition(obs, action, logp, value, reward, done, reward, jnp.zeros(shape),
                          jnp.zeros(shape, jnp.int32))
        return state, traj, value[0]

    return make(key)


def bench_vs_torch(config: PPOConfig, repeats: int = 3, progress: bool = True) -> dict[str, Any]:
    """Samples/s of the PPO learning phase (``update_epochs x batch`` samples through forward, backward and Adam),
    ours against the same phase written plainly in PyTorch on CPU (:mod:`mazeagent.ppo.torch_learn`), in one run.

    Ours is the trainer's own jitted ``Trainer.learn``; torch gets as many threads as XLA's CPU pool (this process's
    CPUs). Both learn from one :func:`synthetic_rollout` of ``config``'s shapes, at the scale-1 widths and at the
    ``cpu`` preset's. Each rate is the best of ``repeats`` calls after a warm-up (the one least disturbed by other
    load); ``ratio`` = ours / torch."""
    import os

    import jax
    import numpy as np
    import torch
    from tqdm import tqdm

    from mazeagent.nets.impala import BASE_WIDTHS
    from mazeagent.ppo import torch_learn
    from mazeagent.ppo.config import PRESETS
    from mazeagent.ppo.train import make_train

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    samples = config.update_epochs * config.batch_size
    dev = jax.devices()[0]
    out: dict[str, Any] = {
        "mode": "vs-torch", "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "threads": threads,
        "torch": torch.__version__, "jax": jax.__version__, "num_envs": config.num_envs,
        "num_steps": config.num_steps, "batch": config.batch_size, "update_epochs": config.update_epochs,
        "num_minibatches": config.num_minibatches, "samples_per_learn": samples, "repeats": repeats,
        "unit": "samples/s = update_epochs x batch / seconds of one learning phase (best of repeats)"}
    widths_by_name = {"scale1": BASE_WIDTHS, "cpu": PRESETS["cpu"].net_widths}
    bar = tqdm(total=len(widths_by_name) * (2 * repeats + 2), desc="bench vs torch", disable=not progress)

    def seconds(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        bar.update()
        return time.perf_counter() - t0

    for name, widths in widths_by_name.items():
        cfg = config.replace(net_scale=1, net_widths=tuple(widths))
        trainer = make_train(cfg)  # checks the memory the unrolled learning phase needs before compiling
        state, traj, last_value = jax.block_until_ready(synthetic_rollout(trainer, jax.random.PRNGKey(cfg.seed)))
        learn = jax.jit(trainer.learn)
        compile_s = seconds(lambda: jax.block_until_ready(learn(state, traj, last_value)))
        ours = [seconds(lambda: jax.block_until_ready(learn(state, traj, last_value))) for _ in range(repeats)]

        model = torch_learn.from_flax(jax.device_get(state.params), tuple(widths))
        opt = torch.optim.Adam(model.parameters(), lr=float(trainer.lr_at(state.update)), eps=cfg.adam_eps)
        tt = {k: torch.from_numpy(np.array(getattr(traj, k))) for k in ("obs", "logp", "value", "reward", "done")}
        tt["action"] = torch.from_numpy(np.array(traj.action)).long()
        lv = torch.from_numpy(np.array(last_value))
        seconds(lambda: torch_learn.learn(model, opt, tt, lv, cfg))  # warm-up: oneDNN primitives, Adam state
        theirs = [seconds(lambda: torch_learn.learn(model, opt, tt, lv, cfg)) for _ in range(repeats)]
        o, t = samples / min(ours), samples / min(theirs)
        out[name] = {"widths": list(widths), "ours": o, "torch": t, "ratio": o / t, "ours_s": ours,
                     "torch_s": theirs, "ours_first_call_s": compile_s}
    bar.close()
    return out
