"""Test-session settings: one XLA compilation cache shared by this run's processes (CLI subprocesses reuse the
level generator / env compilations instead of recompiling), fresh per run so nothing stale leaks in."""
import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="mazeagent-jax-cache-"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_DATA_DIR", tempfile.mkdtemp(prefix="mazeagent-wandb-data-"))  # staged artifacts
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_report_header(config):
    from required import SWITCH, required_coverage

    state = "on: a missing procgen/torch/Slurm/browser fails the run" if required_coverage() else \
        f"off: tests needing a missing reference are skipped (set {SWITCH}=1 to make that a failure)"
    return f"required coverage {state}"
