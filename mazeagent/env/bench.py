"""Env-steps per second of real procgen and of our JAX env, measured in the same run on this machine.

Both run the same number of envs with uniform random actions and produce an observation every step: procgen through
``act`` + ``observe`` (C++ threads, one per core); ours as a jitted ``lax.scan`` of ``chunk`` vectorized steps whose
carry holds the frame, so every step's observation is materialized (nothing can be optimized away).
"""
from __future__ import annotations

import os
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

from mazeagent.env.core import NUM_ACTIONS, EnvParams
from mazeagent.env.vec import make_vec_env



def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _timed(desc: str, seconds: float, step, units_per_call: int) -> tuple[float, float]:
    """Call ``step`` until ``seconds`` have passed: (units per wall second, CPU microseconds per unit).

    The CPU time (this process, all threads) is the load-robust figure on a shared machine. A tqdm bar (stderr)
    counts the seconds.
    """
    n, start, cpu0, shown = 0, time.perf_counter(), time.process_time(), 0.0
    with tqdm(total=round(seconds, 1), desc=desc, unit="s", file=sys.stderr, leave=False,
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f}s {postfix}") as bar:
        while (elapsed := time.perf_counter() - start) < seconds:
            step()
            n += 1
            if elapsed - shown >= 0.5:  # the bar costs nothing measurable at this rate
                shown = elapsed
                bar.set_postfix_str(f"{n * units_per_call / elapsed:,.0f} steps/s", refresh=False)
                bar.update(round(elapsed - bar.n, 1))
    units = n * units_per_call
    return units / (time.perf_counter() - start), (time.process_time() - cpu0) / units * 1e6


def bench_procgen(envs: int, seconds: float, seed: int = 0, distribution_mode: str = "hard",
                  num_threads: int | None = None) -> tuple[float, float]:
    """Real procgen maze (env-steps/s, CPU us per env-step) with observations (threads default: one per core)."""
    from procgen import ProcgenGym3Env

    threads = cpu_cores() if num_threads is None else num_threads
    env = ProcgenGym3Env(num=envs, env_name="maze", distribution_mode=distribution_mode, rand_seed=seed,
                         num_threads=threads)
    actions = np.random.default_rng(seed).integers(0, NUM_ACTIONS, size=(1024, envs), dtype=np.int32)
    t = 0

    def step():
        nonlocal t
        env.act(actions[t % len(actions)])
        env.observe()
        t += 1

    for _ in range(30):  # warm-up: thread pool, caches
        step()
    result = _timed("procgen", seconds, step, envs)
    env.close()
    return result


def make_rollout(envs: int, chunk: int, distribution_mode: str = "hard"):
    """A jitted ``(key, state, obs) -> (key, state, obs)`` running ``chunk`` steps of random actions."""
    vec = make_vec_env(EnvParams(distribution_mode=distribution_mode), envs)

    def body(carry, _):
        key, state, _obs = carry
        key, k_act, k_step = jax.random.split(key, 3)
        actions = jax.random.randint(k_act, (envs,), 0, NUM_ACTIONS)
        obs, state, _reward, _done, _info = vec.step(k_step, state, actions)
        return (key, state, obs), None

    @jax.jit
    def rollout(key, state, obs):
        return jax.lax.scan(body, (key, state, obs), None, length=chunk)[0]

    return vec, rollout


def bench_ours(envs: int, seconds: float, seed: int = 0, distribution_mode: str = "hard",
               chunk: int = 64) -> tuple[float, float]:
    """Our env's (env-steps/s, CPU us per env-step): ``chunk`` steps per jitted call, the obs in the carry."""
    vec, rollout = make_rollout(envs, chunk, distribution_mode)
    obs, state = vec.reset_procgen(seed)  # the levels procgen's side plays (ProcgenGym3Env(rand_seed=seed))
    key = jax.random.PRNGKey(seed)
    carry = jax.block_until_ready(rollout(key, state, obs))  # compile + warm-up

    def step():
        nonlocal carry
        carry = jax.block_until_ready(rollout(*carry))

    return _timed("ours", seconds, step, envs * chunk)


def device_name() -> str:
    d = jax.devices()[0]
    return d.platform if d.platform == "cpu" else f"{d.platform}:{d.device_kind}"


def bench_env(envs: int = 256, seconds: float = 10.0, seed: int = 0, distribution_mode: str = "hard",
              chunk: int = 64, skip_procgen: bool = False) -> dict:
    """procgen and ours in the same run: ``{"procgen_sps", "ours_sps", "ratio", "device", ...}``."""
    if isinstance(envs, bool) or not isinstance(envs, (int, np.integer)) or envs < 1:
        raise ValueError(f"--envs must be a positive int, got {envs!r}")
    if not seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {seconds!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"--chunk must be a positive int, got {chunk!r}")
    procgen_sps, procgen_cpu = (None, None) if skip_procgen else bench_procgen(envs, seconds, seed,
                                                                               distribution_mode)
    ours_sps, ours_cpu = bench_ours(envs, seconds, seed, distribution_mode, chunk)
    return {"procgen_sps": None if procgen_sps is None else round(procgen_sps),
            "ours_sps": round(ours_sps),
            "ratio": None if procgen_sps is None else round(ours_sps / procgen_sps, 2),
            "device": device_name(), "envs": int(envs), "seconds": float(seconds), "cpu_cores": cpu_cores(),
            "distribution_mode": distribution_mode,
            "procgen_cpu_us_per_step": None if procgen_cpu is None else round(procgen_cpu, 3),
            "ours_cpu_us_per_step": round(ours_cpu, 3)}
