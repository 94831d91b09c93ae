"""The host loop around the jitted update: checkpoints, ``--resume``, signals, NaN guard, logging, progress bar.

Exit codes (returned by :func:`run`, and so by ``mazeagent train``):

* ``0`` -- finished; the final checkpoint is written.
* ``128 + signum`` -- stopped by SIGTERM (143) or SIGUSR1 (138) after writing a checkpoint of the last completed
  update: the Slurm preemption/requeue case. Rerun the same command with ``--resume`` to continue.
* ``3`` (:data:`EXIT_NONFINITE`) -- an update produced a NaN/inf loss or gradient; that update is discarded and the
  state before it is checkpointed, so the newest checkpoint is the last good one.

A resumed run ends with bitwise the same parameters as an uninterrupted one (CPU): everything the next update reads
is in the checkpointed :class:`~mazeagent.ppo.train.RunnerState`, and evaluation keys depend only on (seed, update).

With wandb on, every checkpoint also becomes a version of the run's model artifact, and every evaluation logs
:data:`EVAL_VIDEOS` recorded episodes (GIF videos and path stills, :mod:`mazeagent.media`) at its env step.
"""
from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

from mazeagent.ppo.config import RUN_KEYS, PPOConfig

EXIT_NONFINITE = 3
EVAL_VIDEOS = 2  # episodes recorded (GIF + path still) at each evaluation when wandb is on
# Keys that do not change what is learned; a resume may change them (e.g. to turn wandb off).
_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
READY_FILE = "READY"  # written by :func:`mark_ready` when the loop is about to run its first update


def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def run(config: PPOConfig, out_dir: str | Path, resume: bool = False, progress: bool = True) -> int:
    """Train ``config`` into ``out_dir`` (checkpoints/, metrics.jsonl, wandb/). Returns an exit code (module doc).

    ``resume=True`` continues from the newest checkpoint in ``out_dir`` if there is one (and starts fresh if not, so
    a requeued Slurm job can always pass ``--resume``); the checkpoint's config must agree with ``config`` except in
    :data:`RUN_KEYS`.
    """
    import jax

    from mazeagent.ppo.checkpoint import list_checkpoints
    from mazeagent.ppo.logging import RunLogger
    from mazeagent.ppo.train import make_train

    config.validate()
    ckpt_root = checkpoint_dir(out_dir)
    existing = list_checkpoints(ckpt_root)
    if existing and not resume:
        raise ValueError(f"{out_dir} already holds checkpoints (newest {existing[-1].name}); pass --resume to "
                         f"continue that run, or choose a new --out")
    with _SignalFlag() as stop:  # from here on a SIGTERM is a request to checkpoint, never a lost run
        trainer = make_train(config)
        key = jax.random.PRNGKey(config.seed)
        if existing:  # compare configs first: a clearer message than a shape mismatch
            ckpt = load_newest_valid(ckpt_root, config, jax.eval_shape(trainer.init, key))
            state, start = ckpt.state, ckpt.step
        else:
            state, start = jax.jit(trainer.init)(key), 0
            if config.init_from is not None:
                state = init_params_from(state, config.init_from, trainer.optimizer)
        state = trainer.place(state)
        batch = config.batch_size
        logger = RunLogger(out_dir, config, resume_step=start * batch if existing else None)
        try:
            # this segment records the checkpoint it starts from: an earlier record may have died with its
            # segment's unflushed tail (if not, wandb dedups the identical version by digest)
            if existing:
                logger.log_checkpoint(ckpt.path, start, start * batch)
            return _loop(trainer, state, start, logger, stop, ckpt_root, progress, key, resumed=bool(existing),
                         extra=ckpt.meta.get("extra") if existing else None)
        except BaseException:
            logger.close(exit_code=1)
            raise


def _loop(trainer: Any, state: Any, start: int, logger: Any, stop: "_SignalFlag", ckpt_root: Path,
          progress: bool, key: Any, resumed: bool, extra: dict | None = None) -> int:
    import jax
    from tqdm import tqdm

    from mazeagent.ppo.record import eval_media
    from mazeagent.ppo.checkpoint import save_checkpoint
    from mazeagent.ppo.evaluate import make_evaluator

    config = trainer.config
    batch = config.batch_size
    update = jax.jit(trainer.update)
    curriculum, size = _curriculum(trainer, extra), None  # None without one: the plain path above, unchanged
    evaluate = make_evaluator(config)
    eval_key = jax.random.fold_in(key, 1)
    video_key = jax.random.fold_in(key, 2)
    saved_at = start if resumed else -1

    def save(s: Any, u: int) -> None:
        nonlocal saved_at
        if u != saved_at:
            more = {"curriculum": curriculum.to_json()} if curriculum is not None else {}
            path = save_checkpoint(ckpt_root, s, config, u, keep=config.keep_checkpoints,
                                   extra={"env_steps": u * batch, "wandb_id": logger.run_id, **more})
            saved_at = u
            logger.log_checkpoint(path, u, u * batch)  # after the rename: the artifact sees a final checkpoint

    bar = tqdm(total=config.num_updates * batch, initial=start * batch, unit="step", unit_scale=True,
               dynamic_ncols=True, disable=not progress, desc="train", file=sys.stderr)
    mark_ready(ckpt_root.parent, start)
    code, done = 0, start
    with bar:
        for u in range(start, config.num_updates):
            if stop.signum:
                break
            t0 = time.perf_counter()
            if curriculum is not None:
                size = curriculum.begin(u)
                update = curriculum.updates[size]
            new_state, stats = update(state)
            stats = {k: float(v) for k, v in jax.device_get(stats).items()}
            bad = [k for k in ("loss", "grad_norm") if not math.isfinite(stats[k])]
            if bad:
                save(state, u)
                print(f"mazeagent train: update {u + 1} produced a non-finite {' and '.join(bad)} "
                      f"({', '.join(f'{k}={stats[k]}' for k in bad)}); stopped. The last good state (update {u}) "
                      f"is checkpointed in {ckpt_root}. Lower lr or max_grad_norm and --resume, or start again.",
                      file=sys.stderr)
                code = EXIT_NONFINITE
                break
            state, done = new_state, u + 1
            row = {"step": done * batch, "update": done}
            row.update({f"{'rollout' if k in _ROLLOUT_KEYS else 'train'}/{k}": v for k, v in stats.items()})
            if curriculum is not None:
                row.update({"curriculum/max_maze_size": size, "curriculum/stage": curriculum.stage})
                curriculum.observe(stats["episodes"], stats["cheese_rate"])
            evaluating = done == config.num_updates or bool(config.eval_every and done % config.eval_every == 0)
            if evaluating:
                row.update(evaluate(state.params, jax.random.fold_in(eval_key, done)))
            row["perf/steps_per_s"] = batch / (time.perf_counter() - t0)
            media = None
            if evaluating and logger.will_log(done * batch):  # wandb only, and outside the timed update
                media = eval_media(config, state, jax.random.fold_in(video_key, done), logger.media_dir(done * batch),
                                   min(EVAL_VIDEOS, config.num_envs))
            logger.log(row, media)
            bar.update(batch)
            bar.set_postfix(cheese=f"{stats['cheese_rate']:.2f}", loss=f"{stats['loss']:.3f}")
            if done % config.checkpoint_every == 0 or done == config.num_updates:
                save(state, done)
    if code == 0 and stop.signum and done < config.num_updates:
        save(state, done)
        print(f"mazeagent train: got {signal.Signals(stop.signum).name}; checkpointed update {done} in "
              f"{ckpt_root}; rerun with --resume to continue.", file=sys.stderr)
        code = 128 + stop.signum
    logger.close(exit_code=code)
    return code


def _curriculum(trainer: Any, extra: dict | None) -> Any:
    """The config's :class:`~mazeagent.ppo.curriculum.Curriculum` as saved in ``extra``, with ``updates``: one jitted
    update per stage size (compiled on first use; the envs are built now, so a bad stage fails before training)."""
    import jax

    from mazeagent.ppo.curriculum import Curriculum
    from mazeagent.ppo.train import stage_trainer

    if not trainer.config.curriculum:
        return None
    cur = Curriculum.restore(trainer.config, extra)
    cur.updates = {n: jax.jit(stage_trainer(trainer, n).update) for _, n in trainer.config.curriculum}
    return cur


_ROLLOUT_KEYS = frozenset({"episodes", "episode_return", "episode_length", "cheese_rate"})


def mark_ready(out_dir: Path, update: int) -> None:
    """Write ``out_dir/READY`` (JSON: this process's pid and the update it starts from) just before the first update.

    From then on the signal handlers are installed, so SIGTERM/SIGUSR1 end in a checkpoint: whoever wants to
    interrupt a run on purpose (tests, job scripts) waits for this file instead of guessing from metrics or sleeps.
    The pid tells a resumed run's file from its predecessor's; the rename makes the file appear complete."""
    import json
    import os

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{READY_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"pid": os.getpid(), "update": update}) + "\n")
    tmp.replace(out_dir / READY_FILE)


def load_newest_valid(ckpt_root: Path, config: PPOConfig, target: Any) -> Any:
    """The newest checkpoint that reads back intact, checked to train the same thing as ``config``. A corrupt newest
    one (checksum mismatch, truncated meta: a kill mid-copy, a damaged disk) is skipped with a warning, so a long
    run loses one checkpoint interval, not everything; only when none is valid is it an error."""
    from mazeagent.ppo.checkpoint import list_checkpoints, load_checkpoint

    problems = []
    for path in reversed(list_checkpoints(ckpt_root)):
        try:
            saved = load_checkpoint(path)  # checksum and meta first: damage is skipped...
        except ValueError as e:
            problems.append(str(e))
            continue
        check_resumable(saved.config, config, path)  # ...a different config is an error
        ckpt = load_checkpoint(path, target=target)
        for p in problems:
            print(f"mazeagent train: WARNING: skipping a damaged checkpoint: {p}", file=sys.stderr)
        if problems:
            print(f"mazeagent train: WARNING: resuming from the newest valid checkpoint, {ckpt.path.name}",
                  file=sys.stderr)
        return ckpt
    raise ValueError(f"no valid checkpoint in {ckpt_root}: " + "; ".join(problems))


def init_params_from(state: Any, source: str, optimizer: Any) -> Any:
    """``state`` with the network params of checkpoint ``source`` (same architecture) and a fresh Adam state."""
    import jax

    from mazeagent.ppo.checkpoint import load_policy

    _, params, cfg = load_policy(source)
    want = jax.tree_util.tree_map(lambda a: (a.shape, str(a.dtype)), state.params)
    got = jax.tree_util.tree_map(lambda a: (a.shape, str(a.dtype)), params)
    if want != got:
        raise ValueError(f"init_from={source!r}: its network (widths {cfg.net_widths}, scale {cfg.net_scale}) does "
                         f"not match this config's; set net_widths/net_scale to the checkpoint's")
    return state.replace(params=params, opt_state=optimizer.init(params))


def check_resumable(saved: PPOConfig, requested: PPOConfig, path: Path) -> None:
    """A resume must train the same thing: every key outside :data:`RUN_KEYS` must agree."""
    s, r = saved.to_dict(), requested.to_dict()
    diff = [f"{k}: checkpoint {s[k]!r} vs requested {r[k]!r}" for k in s if k not in RUN_KEYS and s[k] != r[k]]
    if diff:
        raise ValueError(f"cannot resume from {path}: the config differs ({'; '.join(diff)}); use the checkpoint's "
                         f"settings or a new --out")


class _SignalFlag:
    """SIGTERM/SIGUSR1 set a flag; the loop checkpoints after the current update and returns 128+signum."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def __enter__(self) -> "_SignalFlag":
        for s in _SIGNALS:
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
