"""The behaviour study end to end: mazes → rollouts → B1, B2/F1–F11, decision square, U1–U3 → report.

``run_study(policy, out_dir, StudyConfig(...))`` is the whole product for one checkpoint; ``mazeagent study`` and
``mazeagent demo`` only parse arguments and call it. Every stage draws its randomness from ``seed``, so
results.json is a function of (checkpoint, config); wall times and work counters go to timing.json.
``run_shard`` + ``merge_study`` split the rollouts over processes (Slurm array tasks) with the same results.json.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import TIMEOUT
from mazeagent.ppo.checkpoint import BUNDLED_AGENT
from mazeagent.ppo.config import DEFAULT_WANDB_MODE, WANDB_MODES



@dataclass(frozen=True)
class StudyConfig:
    mazes: int = 10_000
    seed: int = 0
    horizon: int = TIMEOUT  # one rollout gives both the 256 and 500 horizons
    greedy: bool = False
    chunk: int = 1024
    f11_mazes: int = 200
    conformity_mazes: int = 100
    n_splits: int = 50  # 80/20 splits per regression (the published analysis used 1,000-2,000; costly on CPU)
    n_boot: int = 100
    solver: str = "batched"  # regressions: the batched solver, or "liblinear" (sklearn's own, slow; a cross-check)
    wandb_mode: str = DEFAULT_WANDB_MODE
    max_maze_size: int | None = None  # the agent's training sizes (None: all); larger ones go to their own section
    unseen_mazes: int = 1000  # mazes larger than max_maze_size, played apart

    def __post_init__(self) -> None:
        for name in ("mazes", "chunk", "n_splits", "n_boot"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("f11_mazes", "conformity_mazes", "unseen_mazes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.horizon < 256:
            raise ValueError(f"horizon must be >= 256 (the study reports 256 and 500), got {self.horizon}")
        if self.max_maze_size is not None:
            from mazeagent.env.levelgen import check_max_maze_size

            check_max_maze_size(self.max_maze_size, 25)
        if self.wandb_mode not in WANDB_MODES:
            raise ValueError(f"wandb_mode must be one of {WANDB_MODES}, got {self.wandb_mode!r}")
        from mazeagent.experiments.stats import SOLVERS

        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")


DEMO = StudyConfig(mazes=400, chunk=256, f11_mazes=40, conformity_mazes=8, n_splits=30, n_boot=60, unseen_mazes=100)


def run_study(policy: Any, out_dir: str | Path, cfg: StudyConfig = StudyConfig(), checkpoint: str | None = None,
              progress: bool = True) -> dict[str, Path]:
    """Run every behaviour analysis for ``policy`` and write the report into ``out_dir``."""
    from mazeagent.experiments.rollouts import rollout
    from mazeagent.env.mazes import generate_mazes

    t0 = time.perf_counter()
    mazes = generate_mazes(cfg.mazes, seed=cfg.seed, max_size=cfg.max_maze_size)
    timings = {"generate_mazes": time.perf_counter() - t0}
    ro = rollout(policy, mazes, _rollout_config(cfg), progress=progress)
    timings["rollouts"] = ro.stats["seconds"]
    return _analyse(policy, mazes, ro, Path(out_dir), cfg, checkpoint, timings, t0)


def run_shard(policy: Any, out_dir: str | Path, cfg: StudyConfig, shard: int, shards: int,
              checkpoint: str | None = None, progress: bool = True) -> tuple[Path, Path]:
    """Roll out shard ``shard`` of ``shards`` (maze indices :func:`~mazeagent.experiments.rollouts.shard_indices`) into
    ``out_dir/shards/``; results.json is left to :func:`merge_study`."""
    from mazeagent.experiments.rollouts import rollout, shard_indices
    from mazeagent.experiments.shards import save_shard
    from mazeagent.env.mazes import generate_mazes

    idx = shard_indices(cfg.mazes, shard, shards)
    t0 = time.perf_counter()
    # all of them: the maze set must not depend on the split
    mazes = generate_mazes(cfg.mazes, seed=cfg.seed, max_size=cfg.max_maze_size)
    gen = time.perf_counter() - t0
    ro = rollout(policy, mazes, _rollout_config(cfg), progress=progress, indices=idx)
    timing = {"generate_mazes": gen, **ro.stats, "total": time.perf_counter() - t0}
    return save_shard(out_dir, shard, shards, ro.raw, _shard_meta(policy, cfg, shards, checkpoint), timing)


def merge_study(policy: Any, out_dir: str | Path, cfg: StudyConfig, shards: int, checkpoint: str | None = None,
                progress: bool = True) -> dict[str, Path]:
    """Join the ``shards`` shards in ``out_dir/shards/`` (all present, same checkpoint, maze count and seed, else
    ValueError) and run the analyses: the same results.json as :func:`run_study` in one process."""
    from mazeagent.experiments.rollouts import from_results
    from mazeagent.experiments.shards import load_shards
    from mazeagent.env.mazes import generate_mazes

    t0 = time.perf_counter()
    raw, metas = load_shards(out_dir, shards, _shard_meta(policy, cfg, shards, checkpoint))
    mazes = generate_mazes(cfg.mazes, seed=cfg.seed, max_size=cfg.max_maze_size)
    secs = sum(m["timing"]["seconds"] for m in metas)
    evals = sum(m["timing"]["policy_evals"] for m in metas)
    stats = {"policy_evals": evals, "seconds": secs, "cpu_seconds": sum(m["timing"]["cpu_seconds"] for m in metas),
             "mazes_per_second": cfg.mazes / max(secs, 1e-9), "evals_per_maze": evals / cfg.mazes, "shards": shards}
    ro = from_results(mazes, raw, _rollout_config(cfg), stats)
    timings = {"merge_load": time.perf_counter() - t0, "rollouts": secs,
               "rollouts_per_shard": [m["timing"]["seconds"] for m in metas]}
    return _analyse(policy, mazes, ro, Path(out_dir), cfg, checkpoint, timings, t0)


def _rollout_config(cfg: StudyConfig):
    from mazeagent.experiments.rollouts import RolloutConfig

    return RolloutConfig(horizon=cfg.horizon, greedy=cfg.greedy, chunk=cfg.chunk, seed=cfg.seed)


def _shard_meta(policy: Any, cfg: StudyConfig, shards: int, checkpoint: str | None) -> dict:
    from mazeagent.experiments.shards import policy_fingerprint

    return {"checkpoint": checkpoint or "(in-memory policy)", "params_sha256": policy_fingerprint(policy),
            "mazes": cfg.mazes, "seed": cfg.seed, "horizon": cfg.horizon, "greedy": cfg.greedy, "shards": shards,
            "max_maze_size": cfg.max_maze_size}


def _analyse(policy: Any, mazes: Mazes, ro: Any, out: Path, cfg: StudyConfig, checkpoint: str | None,
             timings: dict, t0: float) -> dict[str, Path]:
    """Every analysis after the rollouts, then the report. results.json holds only what the seed determines;
    wall times and work counters (which depend on the machine and the sharding) go to timing.json."""
    from mazeagent.experiments import behaviour, conformity, decision, f11, sizes, stats
    from mazeagent.experiments.report import Report, _jsonable

    out.mkdir(parents=True, exist_ok=True)
    ro.save(out)
    df = ro.episodes
    meta = {"checkpoint": checkpoint or "(in-memory policy)", "maze_sizes": sizes.size_note(cfg.max_maze_size),
            **asdict(cfg), "jax_backend": jax.default_backend()}
    rep = Report(out, meta=meta)
    key = jax.random.PRNGKey(cfg.seed)
    scfg = stats.StatsConfig(n_splits=cfg.n_splits, n_boot=cfg.n_boot, seed=cfg.seed, solver=cfg.solver)
    stages = [("b1", lambda: behaviour.b1(df, rep)),
              ("factors", lambda: behaviour.factors(df, rep, scfg)),
              ("decision", lambda: decision.section(policy, mazes, df, rep, key)),
              ("f11", lambda: f11.section(policy, mazes, df, rep, cfg.f11_mazes, cfg.seed, key)),
              ("conformity", lambda: conformity.section(  # U1 at every decision square; U2/U3 on a sample
                  policy, mazes, np.random.default_rng(cfg.seed).permutation(len(mazes))[:cfg.conformity_mazes],
                  rep, key, seed=cfg.seed)),
              ("unseen", lambda: sizes.unseen_section(policy, cfg, df))]
    for name, fn in stages:
        if name == "f11" and cfg.f11_mazes == 0 or \
                name == "unseen" and (cfg.unseen_mazes == 0 or cfg.max_maze_size in (None, 25)):
            continue
        t = time.perf_counter()
        rep.add(fn())
        timings[name] = time.perf_counter() - t
    paths = rep.write()
    if cfg.wandb_mode != "disabled":  # the report's numbers and figures, plus example rollouts as videos
        from mazeagent.experiments.report import log_wandb

        log_wandb(rep, json.loads(paths["results"].read_text()), cfg.wandb_mode,
                  media=example_media(mazes, df, out / "media"))
    timings["total"] = time.perf_counter() - t0
    timing = {"seconds": timings, "policy_evals": ro.stats["policy_evals"],
              "rollout_mazes_per_second": ro.stats["mazes_per_second"],
              "evals_per_maze": ro.stats["evals_per_maze"], "shards": ro.stats.get("shards", 1)}
    paths["timing"] = out / "timing.json"
    paths["timing"].write_text(json.dumps(_jsonable(timing), indent=1))
    paths.update({"episodes": out / "episodes.csv", "rollouts": out / "rollouts.json"})
    return paths


OUTCOMES = ("cheese", "top_right", "neither")
EXAMPLES_PER_OUTCOME = 2


def example_media(mazes: Mazes, episodes: Any, out_dir: str | Path, per_outcome: int = EXAMPLES_PER_OUTCOME
                  ) -> dict[str, Any]:
    """wandb media of the first ``per_outcome`` episodes (by maze index) that got the cheese, got to the top-right
    square instead, or neither, at the longest horizon played: per episode a GIF of the frames the policy saw, the
    path it took, and the maze's geometry (:func:`mazeagent.maze.draw.save_png`). Frames are re-rendered from the
    episodes' ``actions``, so no rollout state has to be kept."""
    import wandb

    from mazeagent.experiments.rollouts import HORIZONS
    from mazeagent.maze.draw import save_png
    from mazeagent.media import episode_media

    h = max(x for x in HORIZONS if f"cheese_{x}" in episodes)
    got = {"cheese": episodes[f"cheese_{h}"].to_numpy(bool)}
    got["top_right"] = episodes[f"top_right_{h}"].to_numpy(bool) & ~got["cheese"]
    got["neither"] = episodes[f"neither_{h}"].to_numpy(bool)
    picked = {o: episodes[got[o]].head(per_outcome) for o in OUTCOMES}
    rows = [r for o in OUTCOMES for r in picked[o].itertuples()]
    eps = iter(replay_episodes(mazes, [int(r.maze) for r in rows], [str(r.actions) for r in rows]))
    out, log = Path(out_dir), {}
    for outcome in OUTCOMES:
        mine = []
        for r in picked[outcome].itertuples():
            label = f"maze {int(r.maze)} (level seed {int(r.level_seed)}), {outcome.replace('_', '-')}"
            mine.append(replace(next(eps), label=label))
        log.update(episode_media(mine, out, f"examples/{outcome}"))
        for i, ep in enumerate(mine):
            png = save_png(mazes.level(int(picked[outcome].maze.iloc[i])), out / f"examples_{outcome}_{i}_maze.png",
                           title=ep.label)
            log[f"examples/{outcome}/{i}/maze"] = wandb.Image(str(png), caption=ep.label)
    return log


def replay_episodes(mazes: Mazes, idx: list[int], actions: list[str]) -> list[Any]:
    """:class:`~mazeagent.media.Episode` s (frames, squares, facing) of mazes ``idx`` played by their ``actions``
    strings (one move group per character, as in episodes.csv), stepped together."""
    import jax.numpy as jnp

    from mazeagent.experiments.rollouts import replay_moves
    from mazeagent.env.mazes import renderers, static_frames
    from mazeagent.maze.level import WORLD
    from mazeagent.media import Episode

    if not idx:
        return []
    idx = np.asarray(idx)
    squares, facing = replay_moves(mazes, idx, actions)
    pad = TIMEOUT + 1  # one compiled shape for every episode length
    _, compose = renderers()
    out = []
    for k, (i, a) in enumerate(zip(idx, actions)):
        sq, fc = squares[k, :len(a) + 1], facing[k, :len(a) + 1]
        frame = static_frames(mazes, np.array([i]))
        obs = compose(jnp.repeat(frame, pad, axis=0), jnp.asarray(np.resize(sq, (pad, 2))),
                      jnp.asarray(np.resize(fc, pad)))
        out.append(Episode(frames=np.asarray(obs[:max(len(a), 1)]), squares=sq, reflected=fc, world=WORLD,
                           cheese=bool(len(a)) and tuple(sq[-1]) == tuple(mazes.cheese[i]),
                           grid=np.asarray(mazes.grid[i])))
    return out


def bundled_checkpoint() -> Path | None:
    """The agent shipped under ``mazeagent/assets/agent`` (a checkpoint directory), if any."""
    return BUNDLED_AGENT if BUNDLED_AGENT.exists() and any(BUNDLED_AGENT.iterdir()) else None


def demo_policy(out_dir: Path, seed: int, train: bool = False, progress: bool = True) -> tuple[Any, str]:
    """The bundled agent; without one, a tiny agent trained here (``train=True``, cached in ``out_dir/agent``;
    slow on a busy CPU) or an untrained scale-1 network, so the demo always runs. The report says which."""
    from mazeagent.experiments.policies import NetPolicy

    ckpt = bundled_checkpoint()
    if ckpt is not None:
        from mazeagent.ppo.checkpoint import read_meta, resolve

        about = read_meta(resolve(ckpt))["extra"].get("description", "bundled agent")
        return NetPolicy.load(ckpt), f"{ckpt} ({about})"
    from mazeagent.ppo.checkpoint import list_checkpoints
    from mazeagent.ppo.runner import checkpoint_dir

    agent = out_dir / "agent"
    if train and not list_checkpoints(checkpoint_dir(agent)):
        from mazeagent.ppo.config import make_config
        from mazeagent.ppo.runner import run

        print(f"no bundled agent under {BUNDLED_AGENT}; training a tiny one into {agent}")
        config = make_config("tiny", ["distribution_mode=hard", "timeout=500", "rand_region=5",
                                      "total_timesteps=16384", "num_envs=64", "num_steps=64"], seed)
        rc = run(config, agent, progress=progress)
        if rc:
            raise ValueError(f"training the demo agent failed with exit code {rc}")
    if list_checkpoints(checkpoint_dir(agent)):
        return NetPolicy.load(agent), f"{agent} (tiny demo agent trained here: not the published agent)"
    from mazeagent.nets import ImpalaCNN

    print(f"WARNING: no bundled agent under {BUNDLED_AGENT}: the demo plays an UNTRAINED scale-1 network "
          "(pass --train to train a tiny agent first, or --checkpoint to `mazeagent study`)")
    net = ImpalaCNN(scale=1)
    params = net.init(jax.random.PRNGKey(seed), np.zeros((1, 64, 64, 3), np.uint8))
    return NetPolicy(net, params), "UNTRAINED scale-1 network (no agent bundled under mazeagent/assets/agent)"
