"""Play our vectorized JAX env and real procgen side by side with the same random actions, and count every
difference: frames, rewards, dones, level seeds and the other info fields.

Why a harness and not only tests: published agents and findings are about procgen's maze, so anyone must be able to
check, with seeds nobody chose in advance, that our env is the same env (``mazeagent env parity --rand-seed S``).
Our env replays procgen's level-seed sequence (``reset_procgen(rand_seed)``); with ``rand_region=R`` procgen's new
levels get procgenAISC's cheese square through ``set_state`` (:class:`mazeagent.procgen.ProcgenMaze`,
docs/maze-spec.md §6.3).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial

import jax
import numpy as np
from tqdm import tqdm

from mazeagent.env.core import NUM_ACTIONS, EnvParams
from mazeagent.env.vec import VecEnv, make_vec_env
from mazeagent.procgen import ProcgenMaze

INFO_KEYS = ("prev_level_seed", "prev_level_complete")


@dataclass
class ParityReport:
    """Counts of compared and mismatching items; ``ok`` is True only when every mismatch count is 0."""

    rand_seed: int
    envs: int
    steps: int
    distribution_mode: str
    rand_region: int | None
    levels: int = 0  # distinct (env, level) episodes shown by procgen, the initial ones included
    frames: int = 0  # observations compared (envs x (steps + 1))
    env_steps: int = 0
    mismatched_frames: int = 0
    mismatched_rewards: int = 0
    mismatched_dones: int = 0
    mismatched_level_seeds: int = 0
    mismatched_infos: int = 0  # prev_level_seed / prev_level_complete
    first_mismatches: list[dict] = field(default_factory=list)  # up to 5, for debugging

    @property
    def mismatches(self) -> int:
        return (self.mismatched_frames + self.mismatched_rewards + self.mismatched_dones
                + self.mismatched_level_seeds + self.mismatched_infos)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "mismatches": self.mismatches, "ok": self.ok}

    def _note(self, step: int, what: str, envs: np.ndarray, ours: np.ndarray, theirs: np.ndarray) -> None:
        """Keep the first few mismatches (frames: the number of differing pixels) so a failure can be chased."""
        for i in envs[: max(0, 5 - len(self.first_mismatches))]:
            if what == "frame":
                detail = {"pixels": int(np.any(ours[i] != theirs[i], axis=-1).sum())}
            else:
                detail = {"ours": ours[i].item(), "procgen": theirs[i].item()}
            self.first_mismatches.append({"step": step, "env": int(i), "what": what, **detail})


def _check_args(rand_seed: int, envs: int, steps: int) -> None:
    for name, v, lo in (("rand_seed", rand_seed, 0), ("envs", envs, 1), ("steps", steps, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"--{name.replace('_', '-')} must be an int >= {lo}, got {v!r}")
    if rand_seed >= 2**31:
        raise ValueError(f"--rand-seed must be < 2**31 (procgen's rand_seed is an int), got {rand_seed}")


def run_parity(rand_seed: int, envs: int, steps: int, rand_region: int | None = None,
               distribution_mode: str = "hard", progress: bool = True) -> ParityReport:
    """Step both envs ``steps`` times with uniform random actions from ``numpy.random.default_rng(rand_seed)``.

    With ``rand_region`` procgen's cheese squares come from our level generator (procgen has no such option), so
    that run checks dynamics, frames and seeds on ``maze_aisc`` levels, not the cheese rule itself
    (docs/rand-region.md says how that is checked).
    """
    _check_args(rand_seed, envs, steps)
    params = EnvParams(distribution_mode=distribution_mode, rand_region=rand_region)  # validates both
    vec = make_vec_env(params, envs)
    report = ParityReport(rand_seed=int(rand_seed), envs=int(envs), steps=int(steps),
                          distribution_mode=distribution_mode, rand_region=rand_region)
    rng = np.random.default_rng(rand_seed)
    key = jax.random.PRNGKey(rand_seed)
    with ProcgenMaze(envs, seed=int(rand_seed), distribution_mode=distribution_mode, rand_region=rand_region) as pg:
        obs, state = vec.reset_procgen(int(rand_seed))
        _, pg_obs, _ = pg.observe()
        _compare_frames(report, 0, obs, pg_obs)
        _compare(report, 0, "level_seed", state.level_seed, pg.get_info()["level_seed"])
        report.levels += envs
        for t in tqdm(range(1, steps + 1), desc="parity", unit="step", disable=not progress, leave=False):
            actions = rng.integers(0, NUM_ACTIONS, size=envs, dtype=np.int32)
            key, sub = jax.random.split(key)
            obs, state, reward, done, info = _jit_step(vec, sub, state, actions)
            pg_obs, pg_reward, pg_done, pg_info = pg.step(actions)
            report.env_steps += envs
            report.levels += int(np.sum(pg_done))
            _compare_frames(report, t, obs, pg_obs)
            _compare(report, t, "reward", reward, pg_reward)
            _compare(report, t, "done", done, pg_done)
            _compare(report, t, "level_seed", info["level_seed"], pg_info["level_seed"])
            for k in INFO_KEYS:
                _compare(report, t, k, info[k], pg_info[k])
    return report


@partial(jax.jit, static_argnums=0)  # the env is static (hashable): runs with one configuration compile once
def _jit_step(vec: VecEnv, key: jax.Array, state, actions: np.ndarray):
    return vec.step(key, state, actions)


def _compare_frames(report: ParityReport, t: int, ours, theirs) -> None:
    ours = np.asarray(ours)
    bad = np.flatnonzero(np.any(ours != theirs, axis=(1, 2, 3)))
    report.frames += len(ours)
    report.mismatched_frames += len(bad)
    if len(bad):
        report._note(t, "frame", bad, ours, np.asarray(theirs))


def _compare(report: ParityReport, t: int, what: str, ours, theirs) -> None:
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if what == "done":
        ours, theirs = ours.astype(bool), theirs.astype(bool)
    elif what == "reward":
        ours, theirs = ours.astype(np.float32), theirs.astype(np.float32)
    else:
        ours, theirs = ours.astype(np.int64), theirs.astype(np.int64)
    bad = np.flatnonzero(ours != theirs)
    if not len(bad):
        return
    counter = {"reward": "mismatched_rewards", "done": "mismatched_dones", "level_seed": "mismatched_level_seeds"}
    name = counter.get(what, "mismatched_infos")
    setattr(report, name, getattr(report, name) + len(bad))
    report._note(t, what, bad, ours, theirs)
