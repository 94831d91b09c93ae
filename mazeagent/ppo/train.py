"""PPO in one jit, PureJaxRL-style: ``make_train(config)`` builds pure functions over a :class:`RunnerState`.

One update = a ``lax.scan`` rollout of the batched JAX env (``num_envs`` x ``num_steps``), GAE, then
``update_epochs`` x ``num_minibatches`` Adam steps. Matches the published trainer (train-procgen-pytorch,
docs/research.md §6): clipped surrogate, clipped value loss ``0.5 * max(...)``, entropy bonus, global-norm clipping,
Adam(eps 1e-5) with the learning rate decayed linearly per update, advantages normalised over the whole batch, and
rewards scaled by the running std of discounted returns (baselines ``VecNormalize(ob=False)``, clip 10).

Everything the next update depends on lives in :class:`RunnerState`, so a checkpoint of it resumes bitwise.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mazeagent.ppo.config import PPOConfig


@struct.dataclass
class RewardNorm:
    """Running mean/var of the discounted return (baselines RunningMeanStd, init count 1e-4) and its per-env sum."""

    ret: jax.Array
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, num_envs: int) -> "RewardNorm":
        # count: an explicit (not weakly typed) float32, like every leaf read back from a checkpoint, so a resumed
        # run traces the same update as a fresh one and reuses its compilation
        return cls(ret=jnp.zeros(num_envs), mean=jnp.zeros(()), var=jnp.ones(()),
                   count=jnp.full((), 1e-4, jnp.float32))

    def step(self, reward: jax.Array, done: jax.Array, gamma: float, clip: float) -> tuple["RewardNorm", jax.Array]:
        ret = self.ret * gamma + reward
        b_mean, b_var, b_count = ret.mean(), ret.var(), ret.shape[0]
        delta, tot = b_mean - self.mean, self.count + b_count
        mean = self.mean + delta * b_count / tot
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / tot
        var = m2 / tot
        scaled = jnp.clip(reward / jnp.sqrt(var + 1e-8), -clip, clip)
        return RewardNorm(ret=jnp.where(done, 0.0, ret), mean=mean, var=var, count=tot), scaled


@struct.dataclass
class RunnerState:
    """The whole training state: a checkpoint of this is a resumable run. ``params`` are the network variables."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    rng: jax.Array
    reward_norm: RewardNorm
    ep_return: jax.Array  # (N,) raw return of the running episode
    ep_length: jax.Array  # (N,) steps of the running episode
    update: jax.Array  # int32: updates done so far


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    logp: jax.Array
    value: jax.Array
    reward: jax.Array  # scaled (what PPO learns from)
    done: jax.Array
    raw_reward: jax.Array
    ep_return: jax.Array  # raw return of the episode that ended here (valid where done)
    ep_length: jax.Array


class Batch(NamedTuple):
    """One (mini)batch of PPO's loss: flat samples of a rollout with their advantages and returns."""

    obs: jax.Array
    action: jax.Array
    old_logp: jax.Array
    old_value: jax.Array
    adv: jax.Array
    ret: jax.Array


@dataclass(frozen=True)
class Trainer:
    """Pure functions of one config. ``update`` and ``train`` are jittable; nothing here touches the host."""

    config: PPOConfig
    net: Any
    env: Any
    optimizer: optax.GradientTransformation
    mesh: Mesh | None = None  # several devices: envs and minibatch samples split over axis "data"
    # XLA:CPU runs conv gradients inside a while loop ~30x slower than unrolled (measured), so on CPU the
    # epoch/minibatch loops are unrolled (compile time grows with epochs x minibatches); on GPU they stay loops.
    unroll_learn: bool = False

    # ---- data parallelism ---------------------------------------------------------------------------------------
    def shardings(self, state: RunnerState) -> Any:
        """Per-leaf placement: per-env leaves split over the mesh, everything else (params, Adam, RNG) replicated.
        Gradients are then averaged by XLA's all-reduce: the same program as on one device, only split."""
        rep, split = NamedSharding(self.mesh, P()), NamedSharding(self.mesh, P("data"))
        n = self.config.num_envs

        def per_env(tree: Any) -> Any:
            return jax.tree_util.tree_map(lambda x: split if x.ndim and x.shape[0] == n else rep, tree)

        replicated = jax.tree_util.tree_map(lambda _: rep, state)
        return replicated.replace(env_state=per_env(state.env_state), obs=split, ep_return=split, ep_length=split,
                                  reward_norm=replicated.reward_norm.replace(ret=split))

    def place(self, state: RunnerState) -> RunnerState:
        """Put a state (fresh or restored) on the devices; a no-op on one device."""
        return state if self.mesh is None else jax.device_put(state, self.shardings(state))

    def _constrain(self, x: Any, spec: P) -> Any:
        if self.mesh is None:
            return x
        return jax.tree_util.tree_map(lambda a: jax.lax.with_sharding_constraint(a, NamedSharding(self.mesh, spec)), x)

    # ---- state ------------------------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> RunnerState:
        k_net, k_env, k_run = jax.random.split(key, 3)
        obs, env_state = self.env.reset(k_env)
        params = self.net.init(k_net, obs[:1])
        n = self.config.num_envs
        return RunnerState(params=params, opt_state=self.optimizer.init(params), env_state=env_state, obs=obs,
                           rng=k_run, reward_norm=RewardNorm.create(n), ep_return=jnp.zeros(n),
                           ep_length=jnp.zeros(n, jnp.int32), update=jnp.zeros((), jnp.int32))

    # ---- rollout ----------------------------------------------------------------------------------------------
    def rollout(self, state: RunnerState) -> tuple[RunnerState, Transition, jax.Array]:
        """``num_steps`` env steps with the current policy; returns the trajectory and the bootstrap value."""
        cfg = self.config

        def step(s: RunnerState, _):
            rng, k_act, k_env = jax.random.split(s.rng, 3)
            action, logp, value = act(self.net, s.params, s.obs, k_act)
            obs, env_state, reward, done, _info = self.env.step(k_env, s.env_state, action)
            reward = reward.astype(jnp.float32)
            if cfg.norm_reward:
                reward_norm, scaled = s.reward_norm.step(reward, done, cfg.reward_norm_gamma, cfg.reward_clip)
            else:
                reward_norm, scaled = s.reward_norm, reward
            ep_return, ep_length = s.ep_return + reward, s.ep_length + 1
            tr = Transition(s.obs, action, logp, value, scaled, done, reward, ep_return, ep_length)
            s = s.replace(env_state=env_state, obs=obs, rng=rng, reward_norm=reward_norm,
                          ep_return=jnp.where(done, 0.0, ep_return), ep_length=jnp.where(done, 0, ep_length))
            return s, tr

        state, traj = jax.lax.scan(step, state, None, length=cfg.num_steps)
        _, last_value = self.net.apply(state.params, state.obs)
        return state, traj, last_value

    def gae(self, traj: Transition, last_value: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Advantages and returns (= advantages + values, before normalisation, as the published trainer)."""
        cfg = self.config

        def back(carry, t: Transition):
            adv, next_value = carry
            not_done = 1.0 - t.done.astype(jnp.float32)
            delta = t.reward + cfg.gamma * next_value * not_done - t.value
            adv = delta + cfg.gamma * cfg.gae_lambda * not_done * adv
            return (adv, t.value), adv

        _, adv = jax.lax.scan(back, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
        return adv, adv + traj.value

    # ---- learning ---------------------------------------------------------------------------------------------
    def loss(self, params: Any, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        cfg = self.config
        obs, action, old_logp, old_value, adv, ret = batch  # a Batch (a plain 6-tuple in that order works too)
        logits, value = self.net.apply(params, obs)
        logp_all = jax.nn.log_softmax(logits)
        logp = jnp.take_along_axis(logp_all, action[:, None], axis=1)[:, 0]
        ratio = jnp.exp(logp - old_logp)
        pg_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
        value_clipped = old_value + jnp.clip(value - old_value, -cfg.clip_eps, cfg.clip_eps)
        v_loss = 0.5 * jnp.maximum((value - ret) ** 2, (value_clipped - ret) ** 2).mean()
        entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
        total = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
        aux = {"loss": total, "pg_loss": pg_loss, "v_loss": v_loss, "entropy": entropy,
               "approx_kl": ((ratio - 1) - (logp - old_logp)).mean(),
               "clip_frac": (jnp.abs(ratio - 1) > cfg.clip_eps).mean()}
        return total, aux

    def learn(self, state: RunnerState, traj: Transition, last_value: jax.Array
              ) -> tuple[RunnerState, dict[str, jax.Array]]:
        """GAE, then epochs of shuffled minibatch Adam steps. Returns the state (params, opt, rng) and mean stats."""
        cfg = self.config
        adv, ret = self.gae(traj, last_value)
        if cfg.norm_adv:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        flat = jax.tree_util.tree_map(lambda x: x.reshape((cfg.batch_size,) + x.shape[2:]),
                                      Batch(traj.obs, traj.action, traj.logp, traj.value, adv, ret))
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)

        def minibatch(carry, batch):
            params, opt_state = carry
            (_, aux), grads = grad_fn(params, batch)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            aux["grad_norm"] = optax.global_norm(grads)
            return (optax.apply_updates(params, updates), opt_state), aux

        def epoch(carry, key):
            perm = jax.random.permutation(key, cfg.batch_size)
            mbs = jax.tree_util.tree_map(
                lambda x: x[perm].reshape((cfg.num_minibatches, cfg.minibatch_size) + x.shape[1:]), flat)
            return jax.lax.scan(minibatch, carry, self._constrain(mbs, P(None, "data")), unroll=self.unroll_learn)

        rng, k_epochs = jax.random.split(state.rng)
        (params, opt_state), aux = jax.lax.scan(epoch, (state.params, state.opt_state),
                                                jax.random.split(k_epochs, cfg.update_epochs),
                                                unroll=self.unroll_learn)
        stats = jax.tree_util.tree_map(jnp.mean, aux)
        stats["lr"] = self.lr_at(state.update)
        state = state.replace(params=params, opt_state=opt_state, rng=rng, update=state.update + 1)
        return state, stats

    def lr_at(self, update: jax.Array) -> jax.Array:
        return learning_rate(self.config, update)

    # ---- one update / the whole run ---------------------------------------------------------------------------
    def update(self, state: RunnerState) -> tuple[RunnerState, dict[str, jax.Array]]:
        state, traj, last_value = self.rollout(state)
        state, stats = self.learn(state, traj, last_value)
        stats.update(episode_stats(traj))
        if self.mesh is not None:
            state = jax.tree_util.tree_map(jax.lax.with_sharding_constraint, state, self.shardings(state))
        return state, stats

    def train(self, key: jax.Array) -> tuple[RunnerState, dict[str, jax.Array]]:
        """The whole run as one pure function (``jax.jit(trainer.train)(key)``); metrics stacked per update.
        A ``curriculum`` stays at its first stage here: the runner switches stages between updates."""
        return jax.lax.scan(lambda s, _: self.update(s), self.init(key), None, length=self.config.num_updates)


def act(net: Any, params: Any, obs: jax.Array, key: jax.Array, greedy: bool = False
        ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sample (or argmax) one of the 15 actions per frame: ``(action, log-prob, value)``."""
    logits, value = net.apply(params, obs)
    action = sample_action(logits, key, greedy)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
    return action, logp, value


def sample_action(logits: jax.Array, key: jax.Array, greedy: bool = False) -> jax.Array:
    """One action per row of ``logits`` (N, 15): sampled, or the argmax when ``greedy``."""
    return jnp.argmax(logits, -1) if greedy else jax.random.categorical(key, logits)


def episode_stats(traj: Transition) -> dict[str, jax.Array]:
    """Means over the episodes that ended during the rollout (NaN-free: 0 when none ended)."""
    done = traj.done.astype(jnp.float32)
    n = done.sum()
    denom = jnp.maximum(n, 1.0)
    return {"episodes": n,
            "episode_return": (traj.ep_return * done).sum() / denom,
            "episode_length": (traj.ep_length * done).sum() / denom,
            "cheese_rate": ((traj.raw_reward > 0) * done).sum() / denom}


def make_env(config: PPOConfig, rand_region: int | None | str = "config", num_envs: int | None = None,
             max_maze_size: int | None | str = "config") -> Any:
    """The batched JAX env a config trains on (``rand_region`` overridable for evaluation on stock levels,
    ``max_maze_size`` for a curriculum stage)."""
    from mazeagent.env import EnvParams, make_vec_env

    params = EnvParams(distribution_mode=config.distribution_mode,
                       rand_region=config.rand_region if rand_region == "config" else rand_region,
                       num_levels=config.num_levels, start_level=config.start_level, timeout=config.timeout,
                       use_backgrounds=config.use_backgrounds,
                       max_maze_size=config.max_maze_size if max_maze_size == "config" else max_maze_size)
    return make_vec_env(params, num_envs or config.num_envs)


def learning_rate(config: PPOConfig, update: jax.Array) -> jax.Array:
    """Linear decay to 0 over the run, stepped once per update (the published trainer's ``adjust_lr``)."""
    if not config.anneal_lr:
        return jnp.asarray(config.lr, jnp.float32)
    return config.lr * (1.0 - jnp.asarray(update).astype(jnp.float32) / config.num_updates)


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    steps_per_update = config.update_epochs * config.num_minibatches
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(lambda count: learning_rate(config, count // steps_per_update),
                                  eps=config.adam_eps))


def make_net(config: PPOConfig) -> Any:
    """The config's network; the one place train, evaluation and checkpoint loading build it, so they agree."""
    from mazeagent.nets import ImpalaCNN

    return ImpalaCNN(scale=config.net_scale, widths=config.net_widths)


def make_train(config: PPOConfig, devices: list | None = None) -> Trainer:
    """Validate ``config`` (ValueError before anything compiles) and build the trainer's pure functions (with a
    ``curriculum``, on its first stage's mazes: :func:`stage_trainer` gives the others).

    ``devices`` (default: all visible) > 1 makes the update data-parallel over them; ``num_envs`` and the
    minibatch size must then divide evenly. A run estimated not to fit the devices' memory is a ValueError too
    (:func:`mazeagent.ppo.memory.check_memory`), rather than an XLA out-of-memory after minutes of compiling."""
    from mazeagent.ppo.memory import check_memory

    config.validate()
    devices = list(jax.devices() if devices is None else devices)
    check_memory(config, devices[0], len(devices))
    mesh = None
    if len(devices) > 1:
        k = len(devices)
        if config.num_envs % k or config.minibatch_size % k:
            raise ValueError(f"with {k} devices, num_envs ({config.num_envs}) and the minibatch size "
                             f"({config.minibatch_size}) must be multiples of {k}")
        mesh = Mesh(np.array(devices), ("data",))
    env = make_env(config, max_maze_size=config.curriculum[0][1] if config.curriculum else "config")
    net = make_net(config)
    return Trainer(config=config, net=net, env=env, optimizer=make_optimizer(config), mesh=mesh,
                   unroll_learn=devices[0].platform == "cpu")


def stage_trainer(trainer: Trainer, max_maze_size: int) -> Trainer:
    """``trainer`` on mazes up to ``max_maze_size`` (a curriculum stage): only the static env differs, so a
    :class:`RunnerState` carries over between stages unchanged."""
    return replace(trainer, env=make_env(trainer.config, max_maze_size=max_maze_size))
