"""``mazeagent env parity`` (ours vs real procgen, counted) and ``mazeagent bench env`` (steps/s, both in one run).
Heavy modules (jax, procgen) are imported inside the handlers."""
from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    env = sub.add_parser("env", help="the JAX maze env: parity with real procgen")
    esub = env.add_subparsers(dest="env_command", metavar="ENV")
    esub.required = True
    p = esub.add_parser("parity", help="play our env and procgen side by side with the same random actions "
                                       "and count mismatches (exit code 1 on any)")
    p.add_argument("--rand-seed", type=int, required=True, metavar="S",
                   help="procgen's rand_seed (fixes every env's level sequence) and the action seed")
    p.add_argument("--envs", type=int, default=64, metavar="E", help="parallel envs (default 64)")
    p.add_argument("--steps", type=int, default=200, metavar="T", help="steps of random actions (default 200)")
    p.add_argument("--rand-region", type=int, default=None, metavar="R",
                   help="procgenAISC maze_aisc cheese rule (0 = exact top-right corner); default: stock maze")
    p.add_argument("--distribution-mode", choices=["hard", "easy"], default="hard")
    p.add_argument("--json", action="store_true", help="print one JSON line with the counts")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_parity)


def register_bench(bench_sub) -> None:
    p = bench_sub.add_parser("env", help="env-steps/s of real procgen and of our env, same envs, same run")
    p.add_argument("--envs", type=int, default=256, metavar="E", help="parallel envs (default 256)")
    p.add_argument("--seconds", type=float, default=10.0, metavar="T", help="timed seconds per env (default 10)")
    p.add_argument("--seed", type=int, default=0, help="action and level seed (default 0)")
    p.add_argument("--distribution-mode", choices=["hard", "easy"], default="hard")
    p.add_argument("--chunk", type=int, default=64, help="our steps per jitted call (default 64)")
    p.add_argument("--skip-procgen", action="store_true", help="only ours (e.g. where procgen is not installed)")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=_bench)


def _parity(args: argparse.Namespace) -> int:
    from mazeagent.env.parity import run_parity

    report = run_parity(args.rand_seed, args.envs, args.steps, rand_region=args.rand_region,
                        distribution_mode=args.distribution_mode, progress=not args.no_progress)
    result = report.to_dict()
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for k, v in result.items():
            if k != "first_mismatches" or v:
                print(f"{k:>24}: {v}")
    return 0 if report.ok else 1


def _bench(args: argparse.Namespace) -> int:
    from mazeagent.env.bench import bench_env

    result = bench_env(args.envs, args.seconds, seed=args.seed, distribution_mode=args.distribution_mode,
                       chunk=args.chunk, skip_procgen=args.skip_procgen)
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for k, v in result.items():
            print(f"{k:>18}: {v}")
    return 0
