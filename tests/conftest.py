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


# The files that take minutes, longest first (CI, idle two-core box). `make test` runs two pytest-xdist workers with
# `--dist loadfile --no-loadscope-reorder`: each file runs whole on one worker, in this order, so the long ones start
# first and the many short files fill in behind them; the workers then finish close together. (xdist's default order,
# most tests first, left a few-test file of several minutes for the end.) A file not named keeps its collected place.
LONGEST_FIRST = (
    "test_slurm.py", "test_ppo_train.py", "test_ppo_curriculum.py", "test_notebooks.py", "test_experiments_shards.py",
    "test_ppo_recipe.py", "test_ppo_resume.py", "test_wandb_media.py", "test_demo.py", "test_probes_experiments.py",
    "test_ppo_bench_torch.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest stay in collected order
