"""``mazeagent train``, ``mazeagent eval`` and ``mazeagent bench train`` (heavy imports happen in the handlers)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mazeagent.ppo.config import PPOConfig


def _add_config_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    from mazeagent.ppo.config import PRESETS

    p.add_argument("--preset", default=default_preset, choices=sorted(PRESETS),
                   help=f"starting config (default {default_preset})")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set lr=3e-4 rand_region=none (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    p.add_argument("--init-from", default=None, metavar="CKPT",
                   help="start from this checkpoint's network params (a run, checkpoints/ or step_* directory; "
                        "same as --set init_from=CKPT), e.g. to finetune on another distribution")


def _config(args: argparse.Namespace, extra: list[str] | tuple[str, ...] = ()) -> "PPOConfig":
    """The config a command line asks for: preset, ``--set`` overrides, ``--init-from``, ``--seed``."""
    from mazeagent.ppo.config import make_config

    init = [f"init_from={args.init_from}"] if getattr(args, "init_from", None) is not None else []
    return make_config(args.preset, [*extra, *args.overrides, *init], args.seed)


def _add_run_args(p: argparse.ArgumentParser, out_help: str) -> None:
    """--out, --resume, --no-progress: what every resumable training command takes."""
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out, if any")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a PPO maze agent (checkpoints, --resume, wandb)",
                              description="Train PPO. Exit codes: 0 done; 143/138 stopped by SIGTERM/SIGUSR1 after "
                                          "checkpointing (requeue with --resume); 3 non-finite loss (last good "
                                          "checkpoint kept).")
    _add_config_args(p, "paper")
    _add_run_args(p, "run directory (checkpoints/, metrics.jsonl, wandb/)")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("eval", help="evaluate a checkpoint on the training and stock distributions")
    p.add_argument("--checkpoint", required=True, help="run directory, checkpoints/ directory, step_* directory or published .pth file")
    p.add_argument("--episodes", type=int, default=256, help="episodes per distribution (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling")
    p.add_argument("--distributions", default="train,stock", metavar="LIST",
                   help="comma-separated subset of train,stock (default both; each one's result is the same "
                        "whichever others run)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_eval)
    _add_bc_parser(subparsers)

    p = subparsers.add_parser("curve", help="plot the learning curve of one run or of stages chained end to end",
                              description="Reads each run's metrics.jsonl and lays the stages end to end on one frame "
                                          "axis (e.g. BC, then DAgger, then PPO from it).")
    p.add_argument("runs", nargs="+", metavar="[LABEL=]RUN", help="run directories (or metrics.jsonl), in order")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--target", type=float, default=0.9, help="draw this cheese rate as a line (default 0.9)")
    p.set_defaults(func=_curve)


def _add_bc_parser(subparsers: argparse._SubParsersAction) -> None:
    from mazeagent.ppo.bc import BCConfig

    p = subparsers.add_parser("bc", help="behaviour-clone shortest-path moves (a CPU warm start for PPO)",
                              description="Behaviour cloning of the shortest-path move to the cheese on the config's "
                                          "training mazes. The result is a checkpoint for --init-from or any "
                                          "--checkpoint option; it is labelled recipe=bc.")
    _add_config_args(p, "cpu")
    _add_run_args(p, "run directory (checkpoints/, metrics.jsonl)")
    p.add_argument("--until", type=int, default=None, help="stop (checkpointed) after this many steps; --resume goes on")
    for f, v in BCConfig().__dict__.items():
        p.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=v, dest=f"bc_{f}",
                       help=f"(default {v})")
    p.set_defaults(func=_bc)


def _bc(args: argparse.Namespace) -> int:
    from mazeagent.ppo.bc import BCConfig, run

    config = _config(args)
    bc = BCConfig(**{k[3:]: v for k, v in vars(args).items() if k.startswith("bc_")})
    return run(config, bc, args.out, resume=args.resume, progress=not args.no_progress, until=args.until)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("train", help="env-steps/s of the PPO update and its parts")
    _add_config_args(p, "paper")
    p.add_argument("--seconds", type=float, default=10.0, help="time spent on whole updates (parts get 1/4 each)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--vs-torch", action="store_true",
                   help="time the learning phase against the same written plainly in PyTorch (CPU), at scale-1 and "
                        "cpu-preset widths; prints ours, torch and ratio (default preset for this mode: cpu)")
    p.add_argument("--num-envs", type=int, default=None,
                   help="override the preset's num_envs (--vs-torch default: 32, so that the scale-1 learning phase, "
                        "unrolled on CPU, fits in 16 GB)")
    p.add_argument("--num-steps", type=int, default=None, help="override the preset's num_steps")
    p.add_argument("--repeats", type=int, default=3, help="--vs-torch: timed learning phases per side (best counts)")
    p.set_defaults(func=_bench, preset=None)


def _train(args: argparse.Namespace) -> int:
    from mazeagent.ppo.runner import run

    config = _config(args)
    return run(config, args.out, resume=args.resume, progress=not args.no_progress)


def _eval(args: argparse.Namespace) -> int:
    import jax

    from mazeagent.ppo.checkpoint import load_policy
    from mazeagent.ppo.evaluate import DISTRIBUTIONS, make_evaluator

    if args.episodes <= 0:
        raise ValueError(f"--episodes must be > 0, got {args.episodes}")
    dists = tuple(d.strip() for d in args.distributions.split(",") if d.strip())
    if not dists or len(set(dists)) != len(dists) or not set(dists) <= set(DISTRIBUTIONS):
        raise ValueError(f"--distributions must be a comma-separated subset of {','.join(DISTRIBUTIONS)} without "
                         f"repeats, got {args.distributions!r}")
    _net, params, config = load_policy(args.checkpoint)
    result = make_evaluator(config, episodes=args.episodes, greedy=args.greedy,
                            distributions=dists, progress=True)(params, jax.random.PRNGKey(args.seed))
    result = {"checkpoint": args.checkpoint, "episodes": args.episodes, "rand_region": config.rand_region, **result}
    _print(result, args.json)
    return 0


def _curve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mazeagent.ppo.curve import load_stage, plot_learning_curve

    stages = [load_stage(*(r.split("=", 1) if "=" in r else (Path(r).name, r))) for r in args.runs]
    fig = plot_learning_curve(stages, target=args.target)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from mazeagent.ppo.bench import bench_train, bench_vs_torch

    preset = args.preset or ("cpu" if args.vs_torch else "paper")
    num_envs = 32 if args.vs_torch and args.num_envs is None else args.num_envs
    sizes = [f"{k}={v}" for k, v in (("num_envs", num_envs), ("num_steps", args.num_steps)) if v is not None]
    args.preset = preset
    config = _config(args, sizes)
    if args.vs_torch:
        result = {"preset": preset, **bench_vs_torch(config, args.repeats, progress=not args.json)}
    else:
        result = {"preset": preset, **bench_train(config, args.seconds)}
    _print(result, args.json)
    return 0


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v:.4g}" if isinstance(v, float) else f"{k:>28}: {v}", file=sys.stdout)
