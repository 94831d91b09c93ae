"""Behaviour cloning from shortest-path demonstrations: a warm start for PPO where PPO alone is too slow (a CPU).

Why this exists: on a CPU with few cores the IMPALA net learns at a few hundred samples/s (README), so PPO's few
hundred thousand env steps an hour are far from what a cheese-seeking agent needs. Here every sample carries a
label instead of a sparse reward: the mouse is put on a random open square of a training-distribution maze (random
facing) and the target is the first move of the shortest path to the cheese (:func:`next_step_towards`). Covering
all squares, not only the expert's path, is what DAgger would converge to, so the clone recovers from its own
mistakes. The loss is the cross-entropy of the *move group* (left/down/up/right: the 15 actions summed per group),
so any procgen action with the right dynamics counts as right.

An agent made this way is a different object of study from a pure-RL agent: its model card and every report must
say "BC warm start" (the checkpoint's ``extra["recipe"]`` does).

Determinism and resume: samples come in chunks; chunk ``c`` is a pure function of ``(seed, c)``. A checkpoint
holds params, Adam state and the step, so ``--resume`` regenerates the current chunk and continues bitwise.
"""
from __future__ import annotations

import functools
import json
import math
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mazeagent.nets.actions import GROUP_MATRIX
from mazeagent.ppo.config import BCConfig, PPOConfig  # noqa: F401 - BCConfig: bc.BCConfig for callers

RECIPE = "bc"  # the checkpoint's extra["recipe"]: reports name how the agent was made


# ---- demonstrations ---------------------------------------------------------------------------------------------

class Demos(NamedTuple):
    """Labelled frames and where they came from (world squares, so any frame can be re-rendered and checked)."""

    obs: np.ndarray  # (S, 64, 64, 3) uint8
    label: np.ndarray  # (S,) move group 0..3 = left, down, up, right
    level_seed: np.ndarray  # (S,)
    square: np.ndarray  # (S, 2) world (row, col) of the mouse
    reflected: np.ndarray  # (S,) facing right


def _check_env(config: PPOConfig) -> None:
    if config.distribution_mode != "hard":
        raise ValueError("behaviour cloning needs hard-mode mazes (the geometry works on the 25x25 world), got "
                         f"distribution_mode={config.distribution_mode!r}")


def training_seeds(config: PPOConfig, n: int, rng: np.random.Generator, size_power: float = 0.0) -> np.ndarray:
    """``n`` level seeds of the config's training distribution (its seed range, mazes up to ``max_maze_size``).

    ``size_power > 0`` tilts the draw towards large mazes: a level is kept with probability
    ``(size / largest size) ** size_power``, so the clone sees more of the mazes it gets lost in (the levels stay the
    distribution's own; only their mix changes). 0 draws exactly as before."""
    from mazeagent.env.levelgen import maze_sizes, seed_range

    low, high = seed_range(config.num_levels, config.start_level)
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        cand = rng.integers(low, high, size=max(4 * n, 64), dtype=np.int64)
        if config.max_maze_size is not None or size_power > 0:
            size = maze_sizes(cand, 25)  # once per round: the costly part of the draw
            if config.max_maze_size is not None:
                fits = size <= config.max_maze_size
                cand, size = cand[fits], size[fits]
            if size_power > 0:
                cand = cand[rng.random(len(cand)) < (size / (config.max_maze_size or 25)) ** size_power]
        out.append(cand)
        have += len(cand)
    return np.concatenate(out)[:n].astype(np.int32)


@functools.lru_cache(maxsize=4)
def _renderer(use_backgrounds: bool):
    from mazeagent.env.render import composite_mouse, load_tables, render_static

    tables = load_tables("hard")
    return jax.jit(jax.vmap(lambda g, b, m, r: composite_mouse(render_static(g, b, tables, use_backgrounds),
                                                                m, r, tables)))


def _training_mazes(config: PPOConfig, n_mazes: int, rng: np.random.Generator, size_power: float = 0.0):
    """Fresh training mazes and their expert: ``(levels, moves)``, moves (B, W, W) = the shortest path's first move
    group to the cheese, -1 on walls and at the cheese."""
    from mazeagent.env.levelgen import generate_batch
    from mazeagent.maze.paths import next_step_towards

    _check_env(config)
    g = generate_batch(training_seeds(config, n_mazes, rng, size_power), rand_region=config.rand_region,
                       progress=False)
    batch = g.batch()
    return g, next_step_towards(batch, batch.cheese)


def _uniform_squares(moves: np.ndarray, maze: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn square with an expert move (open, not the cheese) in each ``maze`` index: (S, 2) world."""
    n_mazes, W = moves.shape[0], moves.shape[-1]
    valid = (moves >= 0).reshape(n_mazes, -1)
    # k-th open square of each chosen maze, k uniform: squares ranked within their maze, open ones first
    k = (rng.random(len(maze)) * valid.sum(1)[maze]).astype(np.int64)
    flat = np.argsort(~valid, axis=1, kind="stable")[maze, k]
    return np.stack([flat // W, flat % W], axis=1).astype(np.int32)


def _labelled(config: PPOConfig, g: Any, moves: np.ndarray, maze: np.ndarray, square: np.ndarray,
              reflected: np.ndarray) -> Demos:
    render = _renderer(bool(config.use_backgrounds))
    obs = np.asarray(render(jnp.asarray(g.grid[maze]), jnp.asarray(g.background[maze]), jnp.asarray(square),
                            jnp.asarray(reflected)))
    label = moves[maze, square[:, 0], square[:, 1]].astype(np.int32)
    return Demos(obs, label, g.seed[maze], square, np.asarray(reflected, bool))


def demonstrations(config: PPOConfig, n_mazes: int, n_samples: int, rng: np.random.Generator,
                   size_power: float = 0.0) -> Demos:
    """``n_samples`` labelled frames from ``n_mazes`` fresh training mazes.

    Each sample puts the mouse on an open square that is not the cheese (uniform per maze) with a random facing;
    the label is the move group (0..3 = left, down, up, right) of the shortest path's first step to the cheese.
    ``size_power``: see :func:`training_seeds`."""
    g, moves = _training_mazes(config, n_mazes, rng, size_power)
    maze = rng.integers(0, n_mazes, size=n_samples)
    square = _uniform_squares(moves, maze, rng)
    return _labelled(config, g, moves, maze, square, rng.random(n_samples) < 0.5)


@functools.lru_cache(maxsize=2)
def _mover(world: int):
    from mazeagent.env.core import move

    return jax.jit(jax.vmap(lambda grid, m, r, a: move(lambda i, j: grid[i, j], m, r, a, world)))


def rollout_demonstrations(config: PPOConfig, policy: Callable[[np.ndarray], np.ndarray], n_mazes: int,
                           n_samples: int, steps: int, rng: np.random.Generator, size_power: float = 0.0) -> Demos:
    """DAgger samples: the states ``policy`` (uint8 frames -> (N, 15) logits) visits, labelled by the expert.

    Half of ``n_mazes`` fresh mazes start at the maze's start (facing left, as procgen resets), half on a random
    open square with a random facing; each plays ``steps`` sampled actions with procgen's grid dynamics and stops
    at the cheese. ``n_samples`` of the visited states are drawn uniformly (loops are visited, so drawn, often).
    ``size_power``: see :func:`training_seeds`."""
    g, moves = _training_mazes(config, n_mazes, rng, size_power)
    render = _renderer(bool(config.use_backgrounds))
    mover = _mover(moves.shape[-1])
    maze = np.arange(n_mazes)
    square = np.where((rng.random(n_mazes) < 0.5)[:, None], np.asarray(g.mouse, np.int32),
                      _uniform_squares(moves, maze, rng))
    reflected = np.where(np.all(square == np.asarray(g.mouse), 1), False, rng.random(n_mazes) < 0.5)
    grid, background = jnp.asarray(g.grid), jnp.asarray(g.background)
    seen_maze, seen_square, seen_reflected = [], [], []
    for _ in range(steps):
        live = moves[maze, square[:, 0], square[:, 1]] >= 0  # not yet at the cheese
        seen_maze.append(maze[live])
        seen_square.append(square[live])
        seen_reflected.append(reflected[live])
        logits = policy(np.asarray(render(grid, background, jnp.asarray(square), jnp.asarray(reflected))))
        action = np.argmax(logits - np.log(-np.log(rng.random(logits.shape))), axis=1)  # Gumbel-max sampling
        new_square, new_reflected = mover(grid, jnp.asarray(square), jnp.asarray(reflected), jnp.asarray(action))
        square = np.where(live[:, None], np.asarray(new_square), square)
        reflected = np.where(live, np.asarray(new_reflected), reflected)
    all_maze = np.concatenate(seen_maze)
    pick = rng.integers(0, len(all_maze), size=n_samples)
    return _labelled(config, g, moves, all_maze[pick], np.concatenate(seen_square)[pick],
                     np.concatenate(seen_reflected)[pick])


def chunk(config: PPOConfig, bc: BCConfig, index: int,
          policy: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ``index`` of the run's samples, shuffled: a pure function of ``(config.seed, index)`` and, with
    ``bc.dagger > 0``, of the ``policy`` (the clone so far) whose rollouts give that fraction of the samples."""
    rng = np.random.default_rng([config.seed, index])
    n = bc.chunk_steps * bc.batch
    n_dagger = int(round(bc.dagger * n)) if policy is not None else 0
    d = demonstrations(config, bc.mazes_per_chunk, n - n_dagger, rng, bc.size_power)
    if not n_dagger:
        return d.obs, d.label
    r = rollout_demonstrations(config, policy, bc.mazes_per_chunk, n_dagger, bc.dagger_steps, rng, bc.size_power)
    order = rng.permutation(n)
    return np.concatenate([d.obs, r.obs])[order], np.concatenate([d.label, r.label])[order]


# ---- learning -----------------------------------------------------------------------------------------------------

def group_log_probs(logits: jax.Array) -> jax.Array:
    """log P(move group) of 15-way logits: ``(..., 15) -> (..., 5)``, stable (log-sum-exp within each group)."""
    mask = jnp.asarray(GROUP_MATRIX.T > 0)  # (5, 15)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jax.nn.logsumexp(jnp.where(mask, logp[..., None, :], -jnp.inf), axis=-1)


def make_optimizer(bc: BCConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(bc.max_grad_norm),
                       optax.adam(optax.cosine_decay_schedule(bc.lr, bc.steps, alpha=0.05)))


def make_step(net: Any, optimizer: optax.GradientTransformation):
    """One jitted Adam step on a labelled batch; returns new params, opt state and (loss, accuracy)."""

    def loss_fn(params: Any, obs: jax.Array, label: jax.Array):
        logits, _ = net.apply(params, obs)
        lp = group_log_probs(logits)
        loss = -jnp.take_along_axis(lp, label[:, None], axis=1).mean()
        return loss, (lp.argmax(-1) == label).mean()

    @jax.jit
    def step(params: Any, opt_state: Any, obs: jax.Array, label: jax.Array):
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, obs, label)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, acc

    return step


class JaxLearner:
    """The clone's learning state under XLA: Adam (cosine-decayed lr, clipped global norm) on the flax net.

    Both learners share this interface: ``step`` (skips a non-finite update and says so by its loss),
    ``params`` (flax variables), ``logits`` (for DAgger rollouts), ``state``/``restore`` (the checkpointed pytree)."""

    def __init__(self, config: PPOConfig, bc: BCConfig, params: Any) -> None:
        from mazeagent.ppo.train import make_net

        net = make_net(config)
        self.optimizer = make_optimizer(bc)
        self._state = {"params": params, "opt_state": self.optimizer.init(params)}
        self._step = make_step(net, self.optimizer)
        self._apply = jax.jit(lambda p, o: net.apply(p, o)[0])

    def step(self, obs: np.ndarray, label: np.ndarray) -> tuple[float, float]:
        p, o, loss, acc = self._step(self._state["params"], self._state["opt_state"], obs, label)
        loss, acc = float(loss), float(acc)
        if math.isfinite(loss):
            self._state = {"params": p, "opt_state": o}
        return loss, acc

    def params(self) -> Any:
        return self._state["params"]

    def logits(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self._apply(self._state["params"], obs))

    def state(self) -> Any:
        return self._state

    def restore(self, state: Any) -> None:
        self._state = state


def _learner(config: PPOConfig, bc: BCConfig, params: Any):
    if bc.backend == "torch":
        from mazeagent.ppo.bc_torch import TorchLearner

        return TorchLearner(config, bc, params)
    return JaxLearner(config, bc, params)


def _fresh_params(config: PPOConfig) -> Any:
    """The config's net initialised from its seed."""
    from mazeagent.ppo.train import make_net

    return make_net(config).init(jax.random.PRNGKey(config.seed), jnp.zeros((1, 64, 64, 3), jnp.uint8))


def _initial_params(config: PPOConfig) -> Any:
    """Fresh params from the seed, or ``config.init_from``'s: BC can continue a clone, on the same net or on one
    whose blocks are whole multiples wider (:func:`mazeagent.nets.widen.widen`: the same function, room to learn)."""
    from mazeagent.ppo.train import make_net

    params = _fresh_params(config)
    if config.init_from is None:
        return params
    from mazeagent.ppo.checkpoint import load_policy

    src_net, loaded, _ = load_policy(config.init_from)
    old, new = src_net.channel_widths, make_net(config).channel_widths
    if old != new:
        from mazeagent.nets.widen import widen

        try:
            loaded = widen(loaded, old, new, seed=config.seed)
        except ValueError as e:
            raise ValueError(f"init_from={config.init_from!r}: its network (widths {old}) differs from this run's "
                             f"(widths {new}) and {e}") from None
        print(f"mazeagent bc: init_from {config.init_from}: widened {old} -> {new} (same function up to the "
              f"symmetry-breaking noise)", file=sys.stderr)
    return jax.tree.map(lambda a, b: jnp.asarray(b, a.dtype), params, loaded)


def _same_bc(saved: Any, bc: BCConfig) -> bool:
    """Resume check; settings added after a checkpoint was written count at their defaults."""
    if not isinstance(saved, dict) or not set(saved) <= set(asdict(bc)):
        return False
    return asdict(BCConfig(**saved)) == asdict(bc)


def run(config: PPOConfig, bc: BCConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
        until: int | None = None) -> int:
    """Clone into ``out_dir`` (checkpoints/ readable by every ``--checkpoint`` option, metrics.jsonl). Exit codes as
    :func:`mazeagent.ppo.runner.run`: 0 done, 128+signum after checkpointing on SIGTERM/SIGUSR1. ``until`` stops
    (checkpointed, exit 0) after that many steps, for runs split over several sittings; ``--resume`` continues."""
    from tqdm import tqdm

    from mazeagent.ppo.checkpoint import list_checkpoints, load_checkpoint, read_meta, save_checkpoint
    from mazeagent.ppo.evaluate import make_evaluator
    from mazeagent.ppo.runner import _SignalFlag, checkpoint_dir

    config.validate()
    bc.validate()
    _check_env(config)
    out = Path(out_dir)
    root = checkpoint_dir(out)
    existing = list_checkpoints(root)
    if existing and not resume:
        raise ValueError(f"{out} already holds checkpoints (newest {existing[-1].name}); pass --resume or a new --out")
    key = jax.random.PRNGKey(config.seed)
    start = 0
    if existing:
        meta = read_meta(existing[-1])
        if not _same_bc(meta.get("extra", {}).get("bc"), bc) or PPOConfig.from_dict(meta["config"]) != config:
            raise ValueError(f"cannot resume from {existing[-1]}: its BC or env/net settings differ from the ones "
                             f"requested; use the same command line or a new --out")
        learner = _learner(config, bc, _fresh_params(config))
        target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), learner.state())
        ckpt = load_checkpoint(root, target=target)
        learner.restore(ckpt.state)
        start = ckpt.step
    else:
        learner = _learner(config, bc, _initial_params(config))
    evaluate = make_evaluator(config, episodes=bc.eval_episodes, distributions=("train",))
    metrics = out / "metrics.jsonl"
    rows = [r for r in _read_rows(metrics) if r["step"] <= start] if existing else []
    out.mkdir(parents=True, exist_ok=True)
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra = {"recipe": RECIPE, "bc": asdict(bc),
             "description": "behaviour cloning of shortest-path moves to the cheese (not RL)"
                            + (", DAgger on the clone's own rollouts" if bc.dagger else "")}

    def save(n: int) -> None:
        save_checkpoint(root, learner.state(), config, n, keep=config.keep_checkpoints,
                        extra={**extra, "samples": n * bc.batch})

    code, done = 0, start
    with _SignalFlag() as stop, open(metrics, "a") as log, tqdm(
            total=bc.steps, initial=start, unit="step", desc="bc", disable=not progress, file=sys.stderr) as bar:
        data, data_index = None, -1
        t0, n0 = time.perf_counter(), start
        last = bc.steps if until is None else min(bc.steps, until)
        if bc.dagger:  # a DAgger chunk depends on the params at its start: stop only at chunk boundaries, so that
            # --resume regenerates the same chunk (a signal lets the current chunk finish: at most chunk_steps steps)
            last = min(bc.steps, -(-last // bc.chunk_steps) * bc.chunk_steps)
        while done < last and not (stop.signum and (not bc.dagger or done % bc.chunk_steps == 0)):
            c, offset = divmod(done, bc.chunk_steps)
            if c != data_index:
                data, data_index = chunk(config, bc, c, learner.logits if bc.dagger else None), c
            sl = slice(offset * bc.batch, (offset + 1) * bc.batch)
            loss, acc = learner.step(data[0][sl], data[1][sl])
            if not math.isfinite(loss):
                save(done)
                print(f"mazeagent bc: step {done + 1} gave a non-finite loss; the last good state is checkpointed "
                      f"in {root}. Lower --lr and --resume.", file=sys.stderr)
                code = 3
                break
            done += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.2f}")
            row: dict[str, Any] = {"step": done, "samples": done * bc.batch, "bc/loss": loss, "bc/accuracy": acc}
            if done % 50 == 0:
                row["perf/samples_per_s"] = (done - n0) * bc.batch / (time.perf_counter() - t0)
                t0, n0 = time.perf_counter(), done
            if done == bc.steps or (bc.eval_every and done % bc.eval_every == 0):
                row.update(evaluate(learner.params(), jax.random.fold_in(key, done)))
                bar.write(f"step {done}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items()
                                                       if k.startswith("eval/train")))
            log.write(json.dumps(row) + "\n")
            log.flush()
            if done % bc.checkpoint_every == 0 or done == last:
                save(done)
    if code == 0 and stop.signum and done < bc.steps:
        save(done)
        print(f"mazeagent bc: got {signal.Signals(stop.signum).name}; checkpointed step {done}; rerun with "
              f"--resume to continue.", file=sys.stderr)
        code = 128 + stop.signum
    return code


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            break
    return rows
