"""`mazeagent <command>`: a thin dispatcher. Each package owns its sub-commands in its own `cli.py`
(a `register(subparsers)` function, and optionally `register_bench(bench_subparsers)`); handlers import heavy modules (jax, procgen) only when they run."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that add sub-commands. A missing module is skipped so the CLI works while packages grow.
COMMAND_MODULES = [
    "mazeagent.maze.cli",       # maze show / stats
    "mazeagent.env.cli",        # env parity, bench env
    "mazeagent.ppo.cli",        # train, eval, bench train
    "mazeagent.nets.cli",       # import-torch, export-torch, pth-info
    "mazeagent.experiments.cli",          # study, demo
    "mazeagent.probes.cli",               # probe experiments
    "mazeagent.cluster.cli",    # submit, status
    "mazeagent.viewer.cli",     # view
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mazeagent",
        description="JAX experiment suite for procgen maze agents: bit-exact env, PPO, studies, probes, Slurm.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    bench = sub.add_parser("bench", help="benchmarks: ours vs procgen, trainer throughput")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH")
    bench_sub.required = True
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue
            raise
        mod.register(sub)
        if hasattr(mod, "register_bench"):  # e.g. `mazeagent bench env`, `mazeagent bench train`
            mod.register_bench(bench_sub)
    return parser


def _enable_compile_cache() -> None:
    """Persist XLA compilations across CLI runs: the level generator and env compile in ~10 s, reused afterwards."""
    cache = os.environ.get("MAZEAGENT_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mazeagent", "jax"))
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)


# Commands that mostly run the policy forward on big batches of independent frames (no training): on a CPU they
# split each batch over two XLA host devices (mazeagent.experiments.policies.NetPolicy), faster than one device's intra-op
# threads on a CPU with few cores (README: measured numbers). Per-frame results agree to float rounding (bitwise for the scale-1 net on our CPU).
HOST_PARALLEL_COMMANDS = {"study", "demo", "probes", "bench rollouts", "bench vfield"}


def host_device_count() -> int:
    """2 on any multi-core machine, else 1. A property of the machine, not of the job's CPU allocation, so a
    one-process study and its Slurm shards (whatever their --cpus) split batches the same way."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def _use_host_devices(command: str) -> None:
    """Ask XLA for several CPU devices (must happen before JAX starts its backends, so only in a fresh process)."""
    flags = os.environ.get("XLA_FLAGS", "")
    n = host_device_count()
    if command in HOST_PARALLEL_COMMANDS and n > 1 and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def main(argv: list[str] | None = None) -> int:
    _enable_compile_cache()
    # A wandb service token inherited from a parent process (a notebook, a test session) would make this command's
    # runs share the parent's service, which still holds the run id of a killed predecessor: resuming then fails with
    # "run ID is in use". Each `mazeagent` command is its own process and starts its own service.
    if argv is None:
        os.environ.pop("WANDB_SERVICE", None)
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:
        _use_host_devices(" ".join(filter(None, (args.command, getattr(args, "bench_command", None)))))
    try:
        rc = args.func(args)
    except ValueError as e:  # bad user input: a clear message, not a traceback
        print(f"mazeagent: error: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
