"""``mazeagent probes`` (the mechanistic experiments ME1, ME2, ME3/IG, ME6, O1, O2, O3 and the cheese vector on a
checkpoint) and ``mazeagent bench vfield`` (vector-field latency). Heavy imports happen in the handlers."""
from __future__ import annotations

import argparse
from pathlib import Path

from mazeagent.experiments.sizes import add_size_option
from mazeagent.ppo.config import DEFAULT_WANDB_MODE, WANDB_MODES
from mazeagent.probes import EXPERIMENTS



def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probes", help="mechanistic experiments: probes, steering, ablations, retargeting",
                              description="Runs the chosen experiments on a checkpoint and writes report.md, "
                                          "index.html, figures/ and results.json into --out (and a wandb run).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="run directory, checkpoints/ directory, step_* directory or published .pth file")
    src.add_argument("--random-init", type=int, metavar="SCALE",
                     help="an untrained ImpalaCNN of this width scale (pipeline checks only: no findings)")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--experiments", default=",".join(EXPERIMENTS),
                   help=f"comma-separated subset of {','.join(EXPERIMENTS)} (default: all, in that order)")
    p.add_argument("--seed", type=int, default=0, help="seed for mazes, sampling and controls (default 0)")
    p.add_argument("--layer", default=None, help="hook name (default embedder.block2.res1.resadd_out)")
    add_size_option(p)
    p.add_argument("--me1-mazes", type=int, default=1000,
                   help="decision-square mazes for ME1, half to choose the patch, half to score it (default 1000)")
    p.add_argument("--cv-mazes", type=int, default=100,
                   help="decision-square mazes for the cheese-vector distribution (default 100)")
    p.add_argument("--cv-seeds", default=None, metavar="SEEDS",
                   help="explicit level seeds for the cheese vector instead, e.g. 0-99 as procgen-tools (those "
                        "with a decision square and within --max-maze-size are used)")
    p.add_argument("--me3-mazes", type=int, default=200, help="decision-square mazes for ME3 (default 200)")
    p.add_argument("--probe-mazes", type=int, default=1000, help="mazes for the ME2 probes (default 1000)")
    p.add_argument("--retarget-mazes", type=int, default=100, help="mazes for ME6/O1/O3 (default 100)")
    p.add_argument("--targets", type=int, default=4, help="destinations per retargeting maze (default 4)")
    p.add_argument("--retarget-episodes", type=int, default=2,
                   help="episodes per destination, unedited and edited alike (default 2)")
    p.add_argument("--channel-mazes", type=int, default=20, help="mazes for channel discovery (default 20)")
    p.add_argument("--placements", type=int, default=16, help="cheese squares per discovery maze (default 16)")
    p.add_argument("--value", type=float, default=5.5, help="clamp value for retargeting (default 5.5)")
    p.add_argument("--retarget-channels", default=None, metavar="LISTS",
                   help="channel lists and magnitudes for the path-probability protocol, e.g. "
                        "'55:5.5;8,55,77,82,88,89,113:2.3' (default: the published lists on a net that has them, "
                        "else this net's best cheese trackers)")
    p.add_argument("--horizon", type=int, default=500,
                   help="episode horizon, <= 500 (default 500, procgen's timeout; procgen-tools' statistics use 256)")
    p.add_argument("--wandb", default=DEFAULT_WANDB_MODE, choices=WANDB_MODES,
                   help="wandb mode (default offline, written under --out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_probes)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("vfield", help="vector field of one 25x25 maze: latency after compilation")
    p.add_argument("--scale", type=int, default=4, help="ImpalaCNN width scale (published agents: 4)")
    p.add_argument("--checkpoint", default=None, help="use this checkpoint's net instead of a random init")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed for the maze and the init (default 0)")
    p.set_defaults(func=_bench)


def _net(checkpoint: str | None, scale: int | None, seed: int):
    import jax
    import jax.numpy as jnp

    if checkpoint is not None:
        if not Path(checkpoint).exists():
            raise ValueError(f"checkpoint {checkpoint} does not exist")
        from mazeagent.ppo.checkpoint import load_policy

        net, params, _ = load_policy(checkpoint)
        return net, params
    from mazeagent.nets import ImpalaCNN

    net = ImpalaCNN(scale=scale)
    return net, net.init(jax.random.PRNGKey(seed), jnp.zeros((1, 64, 64, 3), jnp.uint8))


def _probes(args: argparse.Namespace) -> int:
    from mazeagent.probes.experiments import ProbeStudyConfig, run

    exps = tuple(e.strip().lower() for e in args.experiments.split(",") if e.strip())
    bad = [e for e in exps if e not in EXPERIMENTS]
    if bad or not exps:
        raise ValueError(f"--experiments must list some of {','.join(EXPERIMENTS)}, got {args.experiments!r}")
    kw = {} if args.layer is None else {"layer": args.layer}
    if args.layer is not None:
        from mazeagent.nets.hooks import check_names, hook_shapes

        check_names([args.layer])
        if len(hook_shapes()[args.layer]) != 3:
            raise ValueError(f"--layer must be a spatial (conv) hook point, got {args.layer!r}")
    from mazeagent.experiments.sizes import resolve_max_size
    from mazeagent.probes.exp_patch import seed_list
    from mazeagent.probes.exp_paths import parse_channel_lists

    net, params = _net(args.checkpoint, args.random_init, args.seed)
    cv_seeds = None if args.cv_seeds is None else seed_list(args.cv_seeds)
    lists = None if args.retarget_channels is None else parse_channel_lists(args.retarget_channels)
    cfg = ProbeStudyConfig(seed=args.seed, horizon=args.horizon, n_channel_mazes=args.channel_mazes,
                           placements=args.placements, n_probe_mazes=args.probe_mazes, n_me1_mazes=args.me1_mazes,
                           n_cv_mazes=args.cv_mazes, cv_seeds=cv_seeds,
                           n_me3_mazes=args.me3_mazes, n_retarget_mazes=args.retarget_mazes,
                           targets_per_maze=args.targets, retarget_episodes=args.retarget_episodes,
                           retarget_value=args.value, retarget_channels=lists, progress=not args.no_progress,
                           max_maze_size=resolve_max_size(args.max_maze_size, args.checkpoint), **kw)
    paths = run(net, params, args.out, cfg, exps, checkpoint=args.checkpoint, wandb_mode=args.wandb)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from mazeagent.env.mazes import generate_mazes
    from mazeagent.probes.vfield import vector_field

    net, params = _net(args.checkpoint, args.scale, args.seed)
    pool = generate_mazes(64, seed=args.seed)
    big = np.nonzero(pool.size == 25)[0]
    if not len(big):
        raise ValueError("no 25x25 maze among the first 64 seeds; try another --seed")
    i = int(big[0])
    t0 = time.perf_counter()
    vf = vector_field(net, params, pool, i)
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(args.reps):
        t0, c0 = time.perf_counter(), time.process_time()
        vector_field(net, params, pool, i)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(f"vector field of a 25x25 maze ({len(vf.squares)} squares, scale {net.scale}): first call {first:.2f} s "
          f"(compilation), then median {np.median(times):.3f} s wall (min {min(times):.3f} s), "
          f"{np.median(cpu):.3f} s CPU over {args.reps} runs")
    return 0
