"""``mazeagent study`` (the behaviour study of one checkpoint) and ``mazeagent demo`` (a small study on the bundled
agent). Heavy imports happen in the handlers."""
from __future__ import annotations

import argparse
from pathlib import Path

from mazeagent.experiments.sizes import add_size_option
from mazeagent.ppo.config import DEFAULT_WANDB_MODE, WANDB_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="behaviour study and prediction scorecard of a checkpoint",
                              description="Plays the checkpoint on N stock mazes and writes report.md, index.html, "
                                          "figures/ and results.json (plus episodes.csv) into --out.")
    p.add_argument("--checkpoint", required=True, help="run directory, checkpoints/ directory, step_* directory or published .pth file")
    p.add_argument("--out", required=True, help="report directory")
    _common(p, mazes=10_000)
    p.add_argument("--f11-mazes", type=int, default=200, help="mazes for the F11 hand-edit test (default 200)")
    p.add_argument("--conformity-mazes", type=int, default=100,
                   help="mazes whose every square is scored for U2/U3 (default 100); U1 uses every decision square")
    p.add_argument("--unseen-mazes", type=int, default=1000,
                   help="mazes larger than --max-maze-size, played and reported apart (default 1000)")
    p.add_argument("--splits", type=int, default=50, help="80/20 splits per regression (default 50)")
    p.add_argument("--boot", type=int, default=100, help="bootstrap refits per coefficient CI (default 100)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--shard", default=None, metavar="I/K",
                       help="roll out only shard I of K (from 0; e.g. a Slurm array task) into OUT/shards/; "
                            "no report until --merge K")
    split.add_argument("--merge", type=int, default=None, metavar="K",
                       help="join the K shards in OUT/shards/ and write the report (same results.json as one process)")
    p.set_defaults(func=_study)

    p = subparsers.add_parser("demo", help="a small behaviour study on the bundled agent (minutes on a CPU)")
    p.add_argument("--out", default="out/demo", help="report directory (default out/demo)")
    p.add_argument("--train", action="store_true",
                   help="without a bundled agent, train a tiny one first (slow on a busy CPU)")
    _common(p, mazes=None)
    p.set_defaults(func=_demo)

    p = subparsers.add_parser("me5", help="judge ME5: a finetune run started from an agent, cheese anywhere",
                              description="Plays the original agent on its training and the stock distribution and "
                                          "the finetune run's newest checkpoint within the budget on the stock "
                                          "distribution; writes report.md and results.json with the ME5 verdict.")
    p.add_argument("--original", required=True, help="the agent's checkpoint (run, checkpoints/ or step_* directory)")
    p.add_argument("--finetuned", required=True,
                   help="run directory of the finetune (e.g. `mazeagent bc --init-from ORIGINAL --set rand_region=none`)")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per agent and distribution (default 1000)")
    p.add_argument("--budget", type=float, default=0.10,
                   help="largest finetune as a share of the original's training frames (default 0.10)")
    p.add_argument("--points", type=int, default=4,
                   help="finetune checkpoints on the curve, the one at the budget last (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed for the evaluation episodes (default 0)")
    p.add_argument("--wandb", default="disabled", choices=WANDB_MODES, help="wandb mode (default disabled)")
    p.set_defaults(func=_me5)


def _me5(args: argparse.Namespace) -> int:
    from mazeagent.experiments.finetune import me5

    paths = me5(args.original, args.finetuned, args.out, episodes=args.episodes, seed=args.seed, budget=args.budget,
                points=args.points, wandb_mode=args.wandb)
    print(f"report: {paths['markdown']}")
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("rollouts", help="study rollout throughput (mazes/s) of a checkpoint")
    p.add_argument("--checkpoint", default=None, help="checkpoint to play (default: an untrained network)")
    p.add_argument("--scale", type=int, default=1, help="IMPALA scale of the untrained network (default 1)")
    p.add_argument("--mazes", type=int, default=1000, help="mazes to play (default 1000)")
    p.add_argument("--chunk", type=int, default=1024, help="mazes advanced together (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_bench)

    p = bench_subparsers.add_parser("study-factors", help="seconds of the study's factor stage (F1-F10, B2 regressions)",
                                    description="Times the factor stage on a table of real maze geometry with a "
                                                "planted outcome (no policy is played).")
    p.add_argument("--rows", type=int, default=5000, help="mazes in the factor subset (default 5000)")
    p.add_argument("--splits", type=int, default=50, help="80/20 splits per regression (default 50, as the study)")
    p.add_argument("--boot", type=int, default=100, help="bootstrap refits (default 100, as the study)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_bench_factors)


def _bench_factors(args: argparse.Namespace) -> int:
    import json

    from mazeagent.experiments.bench import bench_factors

    out = bench_factors(args.rows, args.splits, args.boot, args.seed)
    print(json.dumps(out, indent=1) if args.json else
          "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))
    return 0


def _bench(args: argparse.Namespace) -> int:
    import json

    import jax
    import numpy as np

    from mazeagent.experiments.policies import NetPolicy
    from mazeagent.experiments.rollouts import RolloutConfig, rollout
    from mazeagent.env.mazes import generate_mazes
    from mazeagent.nets import ImpalaCNN

    if args.checkpoint:
        policy = NetPolicy.load(args.checkpoint)
    else:
        net = ImpalaCNN(scale=args.scale)
        policy = NetPolicy(net, net.init(jax.random.PRNGKey(args.seed), np.zeros((1, 64, 64, 3), np.uint8)))
    mazes = generate_mazes(args.mazes, seed=args.seed)
    warm = generate_mazes(min(64, args.mazes), seed=args.seed + 1)
    rollout(policy, warm, RolloutConfig(chunk=args.chunk, seed=args.seed), progress=False)  # compile first
    ro = rollout(policy, mazes, RolloutConfig(chunk=args.chunk, seed=args.seed))
    out = {**ro.stats, "mazes": args.mazes, "projected_10k_seconds": 10_000 / ro.stats["mazes_per_second"],
           "policy": args.checkpoint or f"untrained scale-{args.scale} network", "backend": jax.default_backend()}
    print(json.dumps(out, indent=1) if args.json else
          "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))
    return 0


def _common(p: argparse.ArgumentParser, mazes: int | None) -> None:
    p.add_argument("--mazes", type=int, default=mazes, help=f"number of mazes (default {mazes or 'the demo size'})")
    p.add_argument("--seed", type=int, default=0, help="seed for mazes, sampling and resampling (default 0)")
    p.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling")
    add_size_option(p)
    p.add_argument("--wandb", default=DEFAULT_WANDB_MODE, choices=WANDB_MODES,
                   help="wandb mode (default offline, written under --out)")
    from mazeagent.experiments.stats import SOLVERS

    p.add_argument("--solver", default=SOLVERS[0], choices=SOLVERS,
                   help="regression solver: batched (default) or sklearn's liblinear, one fit at a time (slow)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _study(args: argparse.Namespace) -> int:
    from mazeagent.experiments.policies import NetPolicy
    from mazeagent.experiments.sizes import resolve_max_size
    from mazeagent.experiments.study import StudyConfig, run_study

    if not Path(args.checkpoint).exists():
        raise ValueError(f"checkpoint {args.checkpoint} does not exist")
    cfg = StudyConfig(mazes=args.mazes, seed=args.seed, greedy=args.greedy, f11_mazes=args.f11_mazes,
                      conformity_mazes=args.conformity_mazes, n_splits=args.splits, n_boot=args.boot,
                      wandb_mode=args.wandb, unseen_mazes=args.unseen_mazes, solver=args.solver,
                      max_maze_size=resolve_max_size(args.max_maze_size, args.checkpoint))
    progress = not args.no_progress
    if args.shard is not None:
        from mazeagent.experiments.shards import parse_shard
        from mazeagent.experiments.study import run_shard

        i, k = parse_shard(args.shard)
        if k > cfg.mazes:
            raise ValueError(f"--shard {args.shard}: more shards than mazes ({cfg.mazes})")
        npz, _ = run_shard(NetPolicy.load(args.checkpoint), args.out, cfg, i, k, checkpoint=args.checkpoint,
                           progress=progress)
        print(f"shard {i}/{k}: {npz.resolve()}")
        return 0
    if args.merge is not None:
        from mazeagent.experiments.study import merge_study

        if not 1 <= args.merge <= cfg.mazes:
            raise ValueError(f"--merge K needs 1 <= K <= --mazes ({cfg.mazes}), got {args.merge}")
        _done(merge_study(NetPolicy.load(args.checkpoint), args.out, cfg, args.merge, checkpoint=args.checkpoint,
                          progress=progress))
        return 0
    _done(run_study(NetPolicy.load(args.checkpoint), args.out, cfg, checkpoint=args.checkpoint, progress=progress))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from mazeagent.experiments.sizes import resolve_max_size
    from mazeagent.experiments.study import DEMO, bundled_checkpoint, demo_policy, run_study

    out = Path(args.out)
    cfg = replace(DEMO, seed=args.seed, greedy=args.greedy, wandb_mode=args.wandb, solver=args.solver,
                  max_maze_size=resolve_max_size(args.max_maze_size, bundled_checkpoint()),
                  **({"mazes": args.mazes} if args.mazes else {}))
    policy, name = demo_policy(out, args.seed, train=args.train, progress=not args.no_progress)
    _done(run_study(policy, out, cfg, checkpoint=name, progress=not args.no_progress))
    return 0


def _done(paths: dict) -> None:
    print(f"report: {paths['html'].resolve()}")
    print(f"        {paths['markdown'].resolve()}")
    print(f"numbers: {paths['results'].resolve()}  (timings: {paths['timing'].name})")
