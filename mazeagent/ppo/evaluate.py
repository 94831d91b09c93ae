"""Policy evaluation on the training distribution (cheese in the top-right ``rand_region``) and the stock one
(cheese anywhere): mean return, cheese rate, top-right-square attainment and episode length.

Each of ``episodes`` envs plays exactly its first episode (so short episodes are not over-counted), with actions
sampled from the full 15-way categorical as in the published rollouts (``greedy=True`` takes the argmax).
*Top-right attainment* = the mouse stood on the maze's top-right free square, inner ``(n-1, n-1)``, at any time in
the episode (docs/research.md §1.4: procgen-tools had no such episode metric).
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mazeagent.batching import bucket
from mazeagent.maze.level import CHEESE
from mazeagent.ppo.config import PPOConfig

DISTRIBUTIONS = ("train", "stock")


def _rand_region(config: PPOConfig, dist: str) -> int | None:
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {dist!r}; choose from {DISTRIBUTIONS}")
    return config.rand_region if dist == "train" else None


def _top_right(state: Any) -> jax.Array:
    """World square of each env's inner ``(n-1, n-1)``: (N, 2)."""
    world = state.grid.shape[-1]
    sq = state.maze_size - 1 + (world - state.maze_size) // 2
    return jnp.stack([sq, sq], -1)


def _episode_step(env: Any, logits_fn: Callable[[jax.Array, jax.Array], jax.Array], greedy: bool):
    """The scan body shared by both rollouts: ``logits_fn(obs, live) -> (N, 15)`` must be exact on live rows."""
    from mazeagent.ppo.train import sample_action

    def step(carry, k):
        obs, s, live, acc = carry
        n = obs.shape[0]
        k_act, k_env = jax.random.split(k)
        action = sample_action(logits_fn(obs, live), k_act, greedy)
        tr = _top_right(s)
        obs2, s2, reward, done, _ = env.step(k_env, s, action)
        # After a terminal step the env has already reset, so a cheese ending counts as reaching the top-right
        # square iff the cheese sat there; otherwise look at where the mouse now stands.
        cheese_at_tr = s.grid[jnp.arange(n), tr[:, 0], tr[:, 1]] == CHEESE
        reached = jnp.where(done, (reward > 0) & cheese_at_tr, jnp.all(s2.mouse == tr, -1))
        acc = {"return": acc["return"] + jnp.where(live, reward, 0.0),
               "length": acc["length"] + live,
               "cheese": acc["cheese"] | (live & done & (reward > 0)),
               "top_right": acc["top_right"] | (live & reached),
               "finished": acc["finished"] | (live & done)}
        return (obs2, s2, live & ~done, acc), None

    return step


def _start(env: Any, key: jax.Array) -> tuple[tuple, jax.Array]:
    """Initial scan carry and the per-step keys' parent."""
    k_reset, k_run = jax.random.split(key)
    obs, state = env.reset(k_reset)
    n = obs.shape[0]
    acc0 = {"return": jnp.zeros(n), "length": jnp.zeros(n, jnp.int32), "cheese": jnp.zeros(n, bool),
            "top_right": jnp.zeros(n, bool), "finished": jnp.zeros(n, bool)}
    return (obs, state, jnp.ones(n, bool), acc0), k_run


def rollout_first_episodes(net: Any, env: Any, params: Any, key: jax.Array, timeout: int,
                           greedy: bool = False) -> dict[str, jax.Array]:
    """Per-env results of the first episode: ``return``, ``length``, ``cheese``, ``top_right`` (arrays (N,)).

    Pure and jittable: every env runs all ``timeout`` steps through the net (the reference for
    :func:`make_compact_rollout`)."""
    carry, k_run = _start(env, key)
    step = _episode_step(env, lambda obs, live: net.apply(params, obs)[0], greedy)
    (_, _, _, acc), _ = jax.lax.scan(step, carry, jax.random.split(k_run, timeout))
    return acc


def make_compact_rollout(net: Any, env: Any, timeout: int, greedy: bool = False, chunk: int = 20,
                         smallest: int = 64, progress: str | None = None
                         ) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
    """:func:`rollout_first_episodes`, equal per episode, with the net run only on the envs still in their first
    episode (gathered into :func:`mazeagent.batching.bucket` of their count, at least ``smallest`` and at most the
    number of envs, so a few shapes compile) and no steps after the last episode ends. Most episodes end long before
    the timeout, so this is several times faster.

    Equal because the keys are the same per step, the sampling sees the same (N, 15) logits on live rows, each env
    draws its levels from its own stream, and the net's rows do not depend on the batch they are in.
    ``progress``: a tqdm bar (stderr) with this label, over the steps, showing the episodes still going."""
    start = jax.jit(lambda key: _start(env, key))

    @functools.lru_cache(maxsize=None)
    def run_chunk(size: int):
        def logits_fn(params: Any):
            def f(obs: jax.Array, live: jax.Array) -> jax.Array:
                if size == obs.shape[0]:
                    return net.apply(params, obs)[0]
                idx = jnp.nonzero(live, size=size, fill_value=0)[0]
                sub = net.apply(params, obs[idx])[0]
                return jnp.zeros((obs.shape[0], sub.shape[-1]), sub.dtype).at[idx].set(sub)
            return f

        @jax.jit
        def run(params: Any, carry: tuple, keys: jax.Array) -> tuple:
            return jax.lax.scan(_episode_step(env, logits_fn(params), greedy), carry, keys)[0]
        return run

    def rollout(params: Any, key: jax.Array) -> dict[str, jax.Array]:
        from tqdm import tqdm

        carry, k_run = start(key)
        keys = jax.random.split(k_run, timeout)
        rollout.batches = []  # the net's batch size per chunk of steps, for inspection
        with tqdm(total=timeout, desc=progress, unit="step", disable=progress is None, leave=False,
                  file=sys.stderr) as bar:
            for t in range(0, timeout, chunk):
                live = int(jnp.sum(carry[2]))
                bar.set_postfix(going=live)
                if live == 0:  # every first episode has ended: later steps add nothing
                    break
                size = bucket(live, smallest, env.num_envs)
                rollout.batches.append(size)
                carry = run_chunk(size)(params, carry, keys[t:t + chunk])
                bar.update(min(chunk, timeout - t))
        return carry[3]

    return rollout


def summarize(acc: dict[str, jax.Array], prefix: str = "") -> dict[str, jax.Array]:
    return {f"{prefix}return": acc["return"].mean(), f"{prefix}cheese_rate": acc["cheese"].mean(),
            f"{prefix}top_right_rate": acc["top_right"].mean(),
            f"{prefix}episode_length": acc["length"].mean(),
            f"{prefix}finished": acc["finished"].mean()}


def make_evaluator(config: PPOConfig, episodes: int | None = None, greedy: bool = False,
                   distributions: tuple[str, ...] = DISTRIBUTIONS, progress: bool = False
                   ) -> Callable[[Any, jax.Array], dict[str, float]]:
    """``evaluate(params, key) -> {"eval/<dist>/<metric>": float}`` for the config's net and env (compiled; the
    net runs only on episodes still going, see :func:`make_compact_rollout`).

    Cached per arguments, so evaluating many checkpoints of one config compiles once. ``progress``: a bar per
    distribution on stderr."""
    episodes = config.eval_episodes if episodes is None else episodes
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
        raise ValueError(f"episodes must be an int > 0, got {episodes!r}")
    for d in distributions:
        _rand_region(config, d)
    return _evaluator(config, episodes, greedy, tuple(distributions), progress)


@functools.lru_cache(maxsize=8)
def _evaluator(config: PPOConfig, episodes: int, greedy: bool, distributions: tuple[str, ...], progress: bool
               ) -> Callable[[Any, jax.Array], dict[str, float]]:
    from mazeagent.ppo.train import make_env, make_net
    net = make_net(config)
    envs = {d: make_env(config, rand_region=_rand_region(config, d), num_envs=episodes) for d in distributions}
    rollouts = {d: make_compact_rollout(net, env, config.timeout, greedy, progress=f"eval {d}" if progress else None)
                for d, env in envs.items()}

    def evaluate(params: Any, key: jax.Array) -> dict[str, float]:
        out = {}
        for d, rollout in rollouts.items():  # keyed by the distribution, so its result does not depend on the others
            acc = rollout(params, jax.random.fold_in(key, DISTRIBUTIONS.index(d)))
            out.update(summarize(acc, f"eval/{d}/"))
        return {k: float(v) for k, v in jax.device_get(out).items()}

    return evaluate
