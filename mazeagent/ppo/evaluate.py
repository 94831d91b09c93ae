"""Policy evaluation on the training distribution (cheese in the top-right ``rand_region``) and the stock one
(cheese anywhere): mean return, cheese rate, top-right-square attainment and episode length.

Each of ``episodes`` envs plays exactly its first episode (so short episodes are not over-counted), with actions
sampled from the full 15-way categorical as in the published rollouts (``greedy=True`` takes the argmax).
*Top-right attainment* = the mouse stood on the maze's top-right free square, inner ``(n-1, n-1)``, at any time in
the episode (docs/research.md §1.4: procgen-tools had no such episode metric).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mazeagent.maze.level import CHEESE
from mazeagent.ppo.config import PPOConfig

DISTRIBUTIONS = ("train", "stock")


def _rand_region(config: PPOConfig, dist: str) -> int | None:
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {dist!r}; choose from {DISTRIBUTIONS}")
    return config.rand_region if dist == "train" else None


def rollout_first_episodes(net: Any, env: Any, params: Any, key: jax.Array, timeout: int,
                           greedy: bool = False) -> dict[str, jax.Array]:
    """Per-env results of the first episode: ``return``, ``length``, ``cheese``, ``top_right`` (arrays (N,))."""
    from mazeagent.ppo.train import act

    k_reset, k_run = jax.random.split(key)
    obs, state = env.reset(k_reset)
    n = obs.shape[0]
    world = state.grid.shape[-1]

    def top_right(s: Any) -> jax.Array:  # world square of inner (n-1, n-1)
        sq = s.maze_size - 1 + (world - s.maze_size) // 2
        return jnp.stack([sq, sq], -1)

    def at(grid: jax.Array, sq: jax.Array) -> jax.Array:
        return grid[jnp.arange(n), sq[:, 0], sq[:, 1]]

    def step(carry, k):
        obs, s, live, acc = carry
        k_act, k_env = jax.random.split(k)
        action, _, _ = act(net, params, obs, k_act, greedy)
        tr = top_right(s)
        obs2, s2, reward, done, _ = env.step(k_env, s, action)
        # After a terminal step the env has already reset, so a cheese ending counts as reaching the top-right
        # square iff the cheese sat there; otherwise look at where the mouse now stands.
        reached = jnp.where(done, (reward > 0) & (at(s.grid, tr) == CHEESE), jnp.all(s2.mouse == tr, -1))
        acc = {"return": acc["return"] + jnp.where(live, reward, 0.0),
               "length": acc["length"] + live,
               "cheese": acc["cheese"] | (live & done & (reward > 0)),
               "top_right": acc["top_right"] | (live & reached),
               "finished": acc["finished"] | (live & done)}
        return (obs2, s2, live & ~done, acc), None

    acc0 = {"return": jnp.zeros(n), "length": jnp.zeros(n, jnp.int32), "cheese": jnp.zeros(n, bool),
            "top_right": jnp.zeros(n, bool), "finished": jnp.zeros(n, bool)}
    (_, _, _, acc), _ = jax.lax.scan(step, (obs, state, jnp.ones(n, bool), acc0), jax.random.split(k_run, timeout))
    return acc


def summarize(acc: dict[str, jax.Array], prefix: str = "") -> dict[str, jax.Array]:
    return {f"{prefix}return": acc["return"].mean(), f"{prefix}cheese_rate": acc["cheese"].mean(),
            f"{prefix}top_right_rate": acc["top_right"].mean(),
            f"{prefix}episode_length": acc["length"].mean(),
            f"{prefix}finished": acc["finished"].mean()}


def make_evaluator(config: PPOConfig, episodes: int | None = None, greedy: bool = False,
                   distributions: tuple[str, ...] = DISTRIBUTIONS) -> Callable[[Any, jax.Array], dict[str, float]]:
    """A jitted ``evaluate(params, key) -> {"eval/<dist>/<metric>": float}`` for the config's net and env.

    Cached per arguments, so evaluating many checkpoints of one config compiles once."""
    episodes = config.eval_episodes if episodes is None else episodes
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
        raise ValueError(f"episodes must be an int > 0, got {episodes!r}")
    for d in distributions:
        _rand_region(config, d)
    return _evaluator(config, episodes, greedy, tuple(distributions))


@functools.lru_cache(maxsize=8)
def _evaluator(config: PPOConfig, episodes: int, greedy: bool, distributions: tuple[str, ...]
               ) -> Callable[[Any, jax.Array], dict[str, float]]:
    from mazeagent.ppo.train import make_env, make_net
    net = make_net(config)
    envs = {d: make_env(config, rand_region=_rand_region(config, d), num_envs=episodes) for d in distributions}

    @jax.jit
    def run(params: Any, key: jax.Array) -> dict[str, jax.Array]:
        out = {}
        for d, env in envs.items():  # keyed by the distribution, so its result does not depend on the others run
            k = jax.random.fold_in(key, DISTRIBUTIONS.index(d))
            acc = rollout_first_episodes(net, env, params, k, config.timeout, greedy)
            out.update(summarize(acc, f"eval/{d}/"))
        return out

    def evaluate(params: Any, key: jax.Array) -> dict[str, float]:
        return {k: float(v) for k, v in jax.device_get(run(params, key)).items()}

    return evaluate
