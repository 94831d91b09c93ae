"""End to end on a real local Slurm (started by `.ci/run` via `bash slurm/ci/slurm_ci.sh start`).

One module-scoped submission feeds every test, so the whole file costs one JAX compile per job: a 2-task training
array (seeds 0 and 1), a single training run with seed 0 that is preempted with `scancel --signal=USR1 --batch`
(it must requeue, resume and end bitwise equal to array task 0), and a 4-shard study + merge compared with a
single-process study. Every wait is bounded.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
MAZEAGENT = [sys.executable, "-m", "mazeagent"]
# A little longer than the tiny preset's 8 updates, so that USR1 lands mid-run with margin.
TRAIN = ["--preset", "tiny", "--set", "total_timesteps=8192", "--time", "15", "--cpus", "1", "--signal-lead", "60"]
JOB_TIMEOUT = 240  # s, per wait


def _controller_up() -> str | None:
    if shutil.which("scontrol") is None or shutil.which("sbatch") is None:
        return "Slurm client tools not installed (run: bash slurm/ci/slurm_ci.sh start)"
    try:
        p = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "scontrol ping timed out"
    if "is UP" not in p.stdout:
        return f"no Slurm controller answers ({(p.stdout + p.stderr).strip()}); run: bash slurm/ci/slurm_ci.sh start"
    return None


_WHY = _controller_up()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([*MAZEAGENT, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    if check and p.returncode != 0:
        raise AssertionError(f"mazeagent {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def _job_ids(stdout: str) -> list[str]:
    return [line.split()[3] for line in stdout.splitlines() if line.startswith("submitted ")]


def _in_queue(job_id: str) -> list[str]:
    p = subprocess.run(["squeue", "-h", "-r", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0 and "Invalid job id" in p.stderr:
        return []
    assert p.returncode == 0, p.stderr
    return p.stdout.split("\n")[:-1]


def _wait(job_ids: list[str], timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.time() + timeout
    while any(_in_queue(j) for j in job_ids):
        if time.time() > deadline:
            subprocess.run(["scancel", *job_ids], timeout=30)
            raise AssertionError(f"jobs {job_ids} not done after {timeout} s; cancelled")
        time.sleep(0.5)


def _job_fields(job_id: str) -> list[dict[str, str]]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout
    return [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in out.splitlines()]


def _logs(out: Path) -> str:
    return "\n".join(f"==== {p}\n{p.read_text()}" for p in sorted((out / "slurm" / "logs").glob("*.out")))


def _params(run: Path) -> dict[str, np.ndarray]:
    from mazeagent.ppo.checkpoint import load_checkpoint

    flat: dict[str, np.ndarray] = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}/{k}", v)
        else:
            flat[prefix] = np.asarray(node)

    walk("", load_checkpoint(run / "checkpoints").state["params"])
    return flat


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Submit the training array and the run to be preempted; preempt it once it is training; wait for all."""
    root = tmp_path_factory.mktemp("slurm")
    sweep, single = root / "sweep", root / "preempted"
    p = _cli("submit", "sweep", *TRAIN, "--grid", "seed=0,1", "--out", str(sweep))
    (sweep_id,) = _job_ids(p.stdout)
    p = _cli("submit", "train", *TRAIN, "--seed", "0", "--out", str(single))
    (train_id,) = _job_ids(p.stdout)
    # Preempt once the run is inside its training loop (a metrics row exists, so the trainer's signal handler is
    # installed) and well before its last update.
    deadline = time.time() + JOB_TIMEOUT
    metrics = single / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert time.time() < deadline and _in_queue(train_id), f"run never started training\n{_logs(single)}"
        time.sleep(0.1)
    subprocess.run(["scancel", "--signal=USR1", "--batch", train_id], check=True, timeout=30)
    _wait([sweep_id, train_id])
    return {"sweep": sweep, "single": single, "sweep_id": sweep_id, "train_id": train_id}


def test_training_array_tasks_complete_with_checkpoint_and_wandb(jobs):
    from mazeagent.ppo.checkpoint import load_policy
    from mazeagent.ppo.logging import read_wandb_file, read_wandb_history

    tasks = _job_fields(jobs["sweep_id"])
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1"], tasks
    assert all(t["JobState"] == "COMPLETED" and t["ExitCode"] == "0:0" for t in tasks), _logs(jobs["sweep"])
    runs = sorted(p for p in jobs["sweep"].iterdir() if (p / "checkpoints").is_dir())
    assert [r.name for r in runs] == ["000-seed_0", "001-seed_1"]
    for seed, run in enumerate(runs):
        _net, _params_, config = load_policy(run)
        assert config.seed == seed and config.wandb_mode == "offline"
        steps = [config.batch_size * (u + 1) for u in range(config.num_updates)]
        assert sorted(int(r["_step"]) for r in read_wandb_history(run)) == steps
        (log,) = run.glob("wandb/offline-run-*/run-*.wandb")
        assert read_wandb_file(log)["exit_code"] == 0
        meta = _run_record(log)
        assert meta["group"] == f"sweep-{jobs['sweep'].name}" and meta["job_type"] == "train"
        assert {"rand_region:5", "scale:1", "preset:tiny"} <= set(meta["tags"])
    p0, p1 = _params(runs[0]), _params(runs[1])
    assert any(p0[k].tobytes() != p1[k].tobytes() for k in p0)  # the seeds really differ


def _run_record(wandb_file: Path) -> dict:
    """Group, job type and tags from the run record (read_wandb_file keeps config/history/summary/exit only)."""
    from wandb.proto import wandb_internal_pb2 as pb

    from mazeagent.ppo.logging import _records

    for raw in _records(wandb_file.read_bytes()):
        rec = pb.Record.FromString(raw)
        if rec.WhichOneof("record_type") == "run":
            return {"group": rec.run.run_group, "job_type": rec.run.job_type, "tags": list(rec.run.tags)}
    raise AssertionError(f"no run record in {wandb_file}")


def test_preempted_run_requeues_resumes_and_matches_uninterrupted(jobs):
    from mazeagent.ppo.config import make_config
    from mazeagent.ppo.logging import read_wandb_history

    single, log = jobs["single"], _logs(jobs["single"])
    (job,) = _job_fields(jobs["train_id"])
    assert job["JobState"] == "COMPLETED" and int(job["Restarts"]) == 1, log
    assert "USR1: asking the run to checkpoint" in log and "command exited with 138" in log, log
    assert "restart=1" in log and log.count("command exited with 0") == 1, log
    # bitwise the same parameters as the uninterrupted array task with the same config
    a, b = _params(single), _params(jobs["sweep"] / "000-seed_0")
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    # two wandb segments of one run id, every env step exactly once across them
    segments = sorted(single.glob("wandb/offline-run-*"))
    assert len(segments) == 2 and len({s.name.rsplit("-", 1)[1] for s in segments}) == 1, segments
    cfg = make_config("tiny", ["total_timesteps=8192"])
    steps = [int(r["_step"]) for r in read_wandb_history(single)]
    assert sorted(steps) == [cfg.batch_size * (u + 1) for u in range(cfg.num_updates)]
    # `mazeagent status` finds the job, its state and its log
    text = _cli("status", str(single)).stdout
    assert jobs["train_id"] in text and "COMPLETED" in text and "restarts=1" in text
    assert "wandb sync" in text


def test_bad_submission_queues_nothing(tmp_path, jobs):
    before = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout
    for args, msg in [(["train", "--preset", "nope"], "unknown preset"),
                      (["sweep", "--preset", "tiny", "--grid", "seed=0,1", "--array", "0-x"], "invalid array spec"),
                      (["study", "--checkpoint", str(tmp_path / "missing"), "--mazes", "4", "--shards", "2"],
                       "does not exist")]:
        p = _cli("submit", *args, "--out", str(tmp_path / "o"), check=False)
        assert p.returncode == 2 and msg in p.stderr, p.stderr
    after = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout
    assert after == before and not (tmp_path / "o").exists()
