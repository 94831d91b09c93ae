"""Test-session settings: one XLA compilation cache shared by this run's processes (CLI subprocesses and the
pytest-xdist workers reuse each other's compilations instead of recompiling), fresh per run so nothing stale leaks
in."""
import os
import tempfile
from pathlib import Path


def _session_cache() -> str:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one `pytest -n` run
    if run is None:
        return tempfile.mkdtemp(prefix="mazeagent-jax-cache-")
    path = Path(tempfile.gettempdir()) / f"mazeagent-jax-cache-{run}"
    path.mkdir(exist_ok=True)
    return str(path)


os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _session_cache())
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_DATA_DIR", tempfile.mkdtemp(prefix="mazeagent-wandb-data-"))  # staged artifacts
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_report_header(config):
    from required import SWITCH, required_coverage

    state = "on: a missing procgen/torch/Slurm/browser fails the run" if required_coverage() else \
        f"off: tests needing a missing reference are skipped (set {SWITCH}=1 to make that a failure)"
    return f"required coverage {state}"
