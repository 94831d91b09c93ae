"""Recording a policy's episodes during training, as media (:mod:`mazeagent.media` writes them).

Kept apart from the writer so the media module stays below the trainer: recording needs the env and the net.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from mazeagent.media import Episode, episode_media

def record_episodes(config: Any, state: Any, key: Any, episodes: int = 1, greedy: bool = False
                    ) -> dict[str, list[Episode]]:
    """``{"train": [...], "stock": [...]}``: one fresh episode on each of the current levels of the first
    ``episodes`` training envs (mouse back on its start square, facing left), played with the state's params, as
    the level is ("train") and with its cheese moved to an open square drawn uniformly, never the start ("stock":
    procgen's stock ``maze`` placement on the same layouts, the out-of-distribution test). Same state and key, same
    episodes.

    Why these levels: the training state already holds draws from the training distribution, so recording costs one
    small jitted scan -- no level generation to compile -- and changes nothing in the training state. Frames are
    what the env shows (static frame with the mouse composited in); ``squares`` has one more entry, the square
    after the last move."""
    import jax

    from mazeagent.ppo.evaluate import DISTRIBUTIONS  # named as the eval metrics

    n_envs = int(state.env_state.slot.shape[0])
    if isinstance(episodes, bool) or not isinstance(episodes, int) or not 1 <= episodes <= n_envs:
        raise ValueError(f"episodes must be an int in [1, num_envs={n_envs}], got {episodes!r}")
    grid, obs, mouse, reflected, live, got = jax.device_get(
        _recorder(config, episodes, greedy)(state.params, state.env_state, key))
    world, out = _world(config), {d: [] for d in DISTRIBUTIONS}
    for row in range(2 * episodes):  # rows: the train episodes, then the stock ones
        t = int(live[row].sum())  # steps played: up to the cheese or the timeout
        out[DISTRIBUTIONS[row // episodes]].append(Episode(
            frames=np.asarray(obs[row, :t]), squares=np.asarray(mouse[row, :t + 1]),
            reflected=np.asarray(reflected[row, :t + 1]), world=world, cheese=bool(got[row].any()),
            grid=np.asarray(grid[row])))
    return out


def _world(config: Any) -> int:
    from mazeagent.env.levelgen import world_dim

    return world_dim(config.distribution_mode)


@functools.lru_cache(maxsize=8)
def _recorder(config: Any, episodes: int, greedy: bool):
    """Jitted ``(params, env_state, key) -> (grid, obs, mouse, reflected, live, got_cheese)`` with leading axes
    (2 * episodes, step): both distributions in one program, so one compilation. ``mouse``/``reflected`` have
    ``timeout + 1`` steps (the state after the last move included)."""
    import jax
    import jax.numpy as jnp

    from mazeagent.env.core import move, render_tables
    from mazeagent.env.render import composite_mouse, render_static
    from mazeagent.maze.level import CHEESE, SPACE
    from mazeagent.ppo.train import act, make_env, make_net

    net, env_params = make_net(config), make_env(config, num_envs=1).params
    tables, world, timeout = render_tables(env_params), env_params.world_dim, config.timeout

    def one(params, frame, grid, start, background, stock, key):
        k_cheese, k_run = jax.random.split(key)
        open_ = ((grid == SPACE) | (grid == CHEESE)).at[start[0], start[1]].set(False).ravel()
        cell = jax.random.choice(k_cheese, open_.size, p=open_ / open_.sum())
        moved = jnp.where(grid == CHEESE, SPACE, grid).ravel().at[cell].set(CHEESE).reshape(grid.shape)
        grid = jnp.where(stock, moved, grid)
        frame = jnp.where(stock, render_static(grid, background, tables, use_backgrounds=env_params.use_backgrounds),
                          frame)

        def step(carry, k):
            mouse, reflected, live = carry
            obs = composite_mouse(frame, mouse, reflected, tables)
            action, _, _ = act(net, params, obs[None], k, greedy)
            mouse2, reflected2 = move(lambda r, c: grid[r, c], mouse, reflected, action[0], world)
            got = live & (grid[mouse2[0], mouse2[1]] == CHEESE)
            return (mouse2, reflected2, live & ~got), (obs, mouse, reflected, live, got)

        (last, last_r, _), (obs, mouse, reflected, live, got) = jax.lax.scan(
            step, (start, jnp.bool_(False), jnp.bool_(True)), jax.random.split(k_run, timeout))
        return (grid, obs, jnp.concatenate([mouse, last[None]]), jnp.concatenate([reflected, last_r[None]]), live,
                got)

    @jax.jit
    def run(params, env_state, key):
        env = jnp.tile(jnp.arange(episodes), 2)
        slot = env_state.slot[env]
        stock = jnp.arange(2 * episodes) >= episodes
        return jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, 0))(
            params, env_state.bank.frame[env, slot], env_state.grid[env], env_state.bank.start[env, slot],
            env_state.background[env], stock, jax.random.split(key, 2 * episodes))

    return run


def eval_media(config: Any, state: Any, key: Any, out_dir: str | Path, episodes: int = 1) -> dict[str, Any]:
    """The training run's eval media, named as the eval metrics: ``eval/{train,stock}/rollout/<i>/{video,path}``
    (see :func:`record_episodes`)."""
    log: dict[str, Any] = {}
    for dist, eps in record_episodes(config, state, key, episodes).items():
        log.update(episode_media(eps, out_dir, f"eval/{dist}/rollout"))
    return log
