"""End to end on a real local Slurm (started by `.ci/run` via `bash slurm/ci/slurm_ci.sh start`).

One module-scoped submission feeds every test, to pay for as few JAX compiles as possible: a
2-task training array whose tasks train the same thing (they differ only in ``checkpoint_every``, a key that does not
change what is learned). Task 1 is preempted with `scancel --signal=USR1 --batch` once it is training: it must
requeue, resume and end bitwise equal to the uninterrupted task 0, with every env step once in its wandb run. Task 0's
checkpoint then feeds a 4-shard study + merge, compared with a single-process study. Every wait is bounded.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mazeagent.ppo.runner import READY_FILE
from required import require
from wandb_files import read_run, steps

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
MAZEAGENT = [sys.executable, "-m", "mazeagent"]
# 16 updates of 8 envs x 8 steps and a 16-episode final evaluation (an eighth of the tiny preset's batch; the claims
# do not depend on sizes): the USR1 sent at READY lands with all 16 updates still ahead.
TRAIN_SETS = ["total_timesteps=1024", "num_envs=8", "num_steps=8", "eval_episodes=16"]
TRAIN = ["--preset", "tiny", *(a for s in TRAIN_SETS for a in ("--set", s)), "--time", "60", "--cpus", "1",
         "--signal-lead", "60"]
JOB_TIMEOUT = float(os.environ.get("MAZEAGENT_SLURM_TEST_TIMEOUT", 600))  # s, per wait (raise on a loaded machine)
# Jobs inherit the submitting environment: cache every compile, so the requeued task reuses what it compiled.
JOB_ENV = {**os.environ, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "WANDB_SILENT": "true"}


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
require(_WHY is None, f"Slurm: {_WHY}")


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([*MAZEAGENT, *args], capture_output=True, text=True, timeout=JOB_TIMEOUT, cwd=REPO, env=JOB_ENV)
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
    """Submit the training array; preempt task 1 once it is in its training loop; wait for both tasks."""
    sweep = tmp_path_factory.mktemp("slurm") / "sweep"
    # --max-parallel 1: task 1 starts after task 0 and loads its compiled update from the sweep's JAX cache.
    p = _cli("submit", "sweep", *TRAIN, "--grid", "checkpoint_every=2,3", "--max-parallel", "1", "--out", str(sweep))
    (sweep_id,) = _job_ids(p.stdout)
    runs = [sweep / "000-checkpoint_every_2", sweep / "001-checkpoint_every_3"]
    # READY: the trainer's handlers are installed and it is about to run its first update, so the whole run is
    # still ahead (the wrapper's USR1 trap was set before the trainer started)
    deadline = time.time() + JOB_TIMEOUT
    while not (runs[1] / READY_FILE).exists():
        if time.time() > deadline or not _in_queue(sweep_id):
            subprocess.run(["scancel", sweep_id], timeout=30)
            raise AssertionError(f"task 1 never started training (within {JOB_TIMEOUT} s); cancelled\n{_logs(sweep)}")
        time.sleep(0.05)
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{sweep_id}_1"], check=True, timeout=30)
    _wait([sweep_id])
    return {"sweep": sweep, "sweep_id": sweep_id, "runs": runs}


def test_training_array_tasks_complete_with_checkpoint_and_wandb(jobs):
    from mazeagent.ppo.checkpoint import load_policy

    tasks = _job_fields(jobs["sweep_id"])
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1"], tasks
    assert all(t["JobState"] == "COMPLETED" and t["ExitCode"] == "0:0" for t in tasks), _logs(jobs["sweep"])
    # requeueing task 1 must not rerun the finished task 0 (task 1's job id is the array's master id)
    assert [t["Restarts"] for t in sorted(tasks, key=lambda t: t["ArrayTaskId"])] == ["0", "1"], tasks
    for every, run in zip((2, 3), jobs["runs"], strict=True):
        _net, _params_, config = load_policy(run)
        assert config.checkpoint_every == every and config.wandb_mode == "offline"
        last = read_run(run)[-1]  # the newest segment holds the whole history
        assert steps(last) == [config.batch_size * (u + 1) for u in range(config.num_updates)]
        assert last["exit_code"] == 0
        meta = last["run"]
        assert meta["group"] == f"sweep-{jobs['sweep'].name}" and meta["job_type"] == "train"
        assert meta["name"] == f"sweep-{jobs['sweep'].name}/{run.name}"
        assert {f"rand_region:{config.rand_region}", "scale:1", "preset:tiny"} <= set(meta["tags"])


def test_preempted_run_requeues_resumes_and_matches_uninterrupted(jobs):
    from mazeagent.ppo.config import make_config
    from mazeagent.ppo.logging import read_metrics

    sweep, (ref, run) = jobs["sweep"], jobs["runs"]
    log = (sweep / "slurm" / "logs" / f"sweep-{sweep.name}-{jobs['sweep_id']}_1.out").read_text()
    (task,) = [t for t in _job_fields(jobs["sweep_id"]) if t["ArrayTaskId"] == "1"]
    assert task["JobState"] == "COMPLETED" and int(task["Restarts"]) == 1, log
    assert "USR1: asking the run to checkpoint" in log and "command exited with 138" in log, log
    assert "restart=1" in log and log.count("command exited with 0") == 1, log
    # bitwise the same parameters as the uninterrupted task with the same training config
    a, b = _params(run), _params(ref)
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    # two wandb segments of one run id: the preempted one ended with 138; the requeued one alone holds every env
    # step once, with metrics.jsonl's values, and ended with 0
    segments = sorted(run.glob("wandb/offline-run-*"))
    assert len(segments) == 2 and len({s.name.split("-")[3] for s in segments}) == 1, segments
    first, last = read_run(run)
    cfg = make_config("tiny", TRAIN_SETS)
    rows = read_metrics(run)
    assert steps(last) == [r["step"] for r in rows] == [cfg.batch_size * (u + 1) for u in range(cfg.num_updates)]
    for h, r in zip(last["history"], rows, strict=True):
        assert {k: h[k] for k in r if k != "step"} == {k: v for k, v in r.items() if k != "step"}
    assert set(steps(first)) <= set(steps(last)) and (first["exit_code"], last["exit_code"]) == (138, 0)
    # the requeued segment logged the checkpoint it resumed from and every later one
    arts = [a["metadata"]["update"] for a in last["artifacts"]]
    assert arts and arts[-1] == cfg.num_updates and arts[0] == first["artifacts"][-1]["metadata"]["update"]
    # `mazeagent status` finds the array, each task's state and log, and what to `wandb sync`
    text = _cli("status", str(sweep)).stdout
    assert f"{jobs['sweep_id']}_1 COMPLETED" in text and "restarts=1" in text, text
    assert f"wandb sync {sweep}/*/wandb/offline-run-*" in text


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


STUDY = ["--mazes", "48", "--seed", "0"]
VOLATILE_META = ("seconds", "rollout_mazes_per_second", "policy_evals")
STUDY_SMALL = ["--f11-mazes", "4", "--conformity-mazes", "2", "--splits", "5", "--boot", "10", "--wandb", "disabled",
               "--no-progress"]


def test_sharded_study_equals_one_process(jobs, tmp_path):
    ckpt = jobs["runs"][0]
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    # the single-process reference first: it also fills the JAX cache that the shards then load from
    _cli("study", "--checkpoint", str(ckpt), "--out", str(single), *STUDY, *STUDY_SMALL)
    p = _cli("submit", "study", "--checkpoint", str(ckpt), "--out", str(sharded), *STUDY, "--shards", "4",
             "--time", "30", "--cpus", "1", *(f"--study-arg={a}" for a in STUDY_SMALL))
    shard_id, merge_id = _job_ids(p.stdout)
    _wait([shard_id, merge_id])
    assert all(t["JobState"] == "COMPLETED" for t in _job_fields(shard_id) + _job_fields(merge_id)), _logs(sharded)
    assert len(_job_fields(shard_id)) == 4
    a, b = (json.loads((d / "results.json").read_text()) for d in (single, sharded))
    for r in (a, b):  # wall-clock timings and work counters describe the run, not its results
        for k in VOLATILE_META:
            r["meta"].pop(k, None)
    assert a == b
