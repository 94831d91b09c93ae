"""sbatch rendering and validation (no Slurm needed): what `mazeagent submit` writes, and what it refuses."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mazeagent.cli import build_parser, main
from mazeagent.cluster import sbatch as B, submit as S
from mazeagent.cluster.status import format_report, sync_globs
from mazeagent.ppo.config import make_config

LIB = B.template_dir() / "lib" / "job.sh"


def _bash_ok(script: str, tmp_path: Path) -> None:
    path = tmp_path / "check.sbatch"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)


def _sbatch_options(script: str) -> list[str]:
    return [line.split(None, 1)[1] for line in script.splitlines() if line.startswith("#SBATCH ")]


# ---- primitives -------------------------------------------------------------------------------------------------
def test_render_fills_fields_and_drops_empty_optional_lines():
    text = "a={{x}}\n{{opt}}\nb={{x}}{{y}}\n"
    assert B.render(text, {"x": "1", "opt": "", "y": "2"}) == "a=1\nb=12\n"
    assert B.render(text, {"x": "1", "opt": "#SBATCH --qos=hi", "y": ""}) == "a=1\n#SBATCH --qos=hi\nb=1\n"
    with pytest.raises(ValueError, match=r"missing: \['y'\]"):
        B.render(text, {"x": "1", "opt": ""})
    with pytest.raises(ValueError, match=r"unknown: \['z'\]"):
        B.render(text, {"x": "1", "opt": "", "y": "", "z": "3"})


@pytest.mark.parametrize("spec,seconds", [("90", 5400), ("1:30", 90), ("4:00:00", 14400), ("1-12", 129600),
                                          ("2-0:30", 174600), ("0-0:0:45", 45)])
def test_parse_time(spec, seconds):
    assert B.parse_time(spec) == seconds


@pytest.mark.parametrize("spec", ["", "abc", "1:2:3:4", "0", "-5", "1h"])
def test_parse_time_rejects(spec):
    with pytest.raises(ValueError, match="time limit"):
        B.parse_time(spec)


@pytest.mark.parametrize("spec,ids", [("0-3", [0, 1, 2, 3]), ("1,5,3", [1, 3, 5]), ("0-30:10", [0, 10, 20, 30]),
                                      ("0-3%2", [0, 1, 2, 3]), ("7", [7]), ("0-2,2-4", [0, 1, 2, 3, 4])])
def test_parse_array_spec(spec, ids):
    assert B.parse_array_spec(spec) == ids


@pytest.mark.parametrize("spec", ["", "a-b", "3-1", "0-4:0", "1,,2", "0-3%0", "0-3%x", "-1", "0-999999999", "1.5"])
def test_parse_array_spec_rejects(spec):
    with pytest.raises(ValueError, match="invalid array spec"):
        B.parse_array_spec(spec)


def test_parse_grid_is_the_cartesian_product_first_axis_slowest():
    pts = B.parse_grid(["rand_region=1..3", "seed=0,7"])
    assert pts == [{"rand_region": r, "seed": s} for r in ("1", "2", "3") for s in ("0", "7")]
    assert B.parse_grid(["lr=3e-4"]) == [{"lr": "3e-4"}]


@pytest.mark.parametrize("axes,msg", [([], "at least one"), (["seed"], "KEY=V1"), (["seed=3..1"], "empty range"),
                                      (["seed=1,,2"], "empty value"), (["seed=1,1"], "repeats"),
                                      (["seed=1", "seed=2"], "twice")])
def test_parse_grid_rejects(axes, msg):
    with pytest.raises(ValueError, match=msg):
        B.parse_grid(axes)


# ---- rendered scripts -------------------------------------------------------------------------------------------
def test_train_script_has_the_sbatch_lines_a_cluster_user_expects(tmp_path):
    res = B.Resources(time="2:00:00", cpus_per_task=6, signal_lead_s=120)
    plan = S.plan_train("tiny", tmp_path / "run", ["lr=3e-4"], seed=4, resources=res)
    (job,) = plan.jobs
    opts = _sbatch_options(job.script)
    assert "--requeue" in opts and "--signal=B:USR1@120" in opts and "--open-mode=append" in opts
    assert "--time=2:00:00" in opts and "--cpus-per-task=6" in opts
    assert f"--output={tmp_path / 'run'}/slurm/logs/%x-%j.out" in opts
    assert not any(o.startswith(("--gres", "--partition", "--account", "--mem", "--array")) for o in opts)
    assert "--set lr=3e-4" in job.script and "--set seed=4" in job.script and "--set wandb_mode=offline" in job.script
    assert f"WANDB_TAGS=rand_region:{make_config('tiny').rand_region},scale:1,preset:tiny" in job.script
    assert f"source {LIB}" in job.script and "--resume" in job.script
    assert plan.tasks[0]["config"] == make_config("tiny", ["lr=3e-4", "seed=4", "wandb_mode=offline"]).to_dict()
    _bash_ok(job.script, tmp_path)


def test_optional_lines_for_gpu_partition_account(tmp_path):
    res = B.Resources(gpus=2, gpu_type="a100", partition="gpu", account="interp", qos="high", mem="64G",
                      constraint="h100|a100".replace("|", ","), extra=("--exclusive",))
    opts = _sbatch_options(S.plan_train("tiny", tmp_path / "r", resources=res).jobs[0].script)
    for line in ("--gres=gpu:a100:2", "--partition=gpu", "--account=interp", "--qos=high", "--mem=64G",
                 "--constraint=h100,a100", "--exclusive"):
        assert line in opts


def _fake_python(tmp_path: Path) -> Path:
    """Stands in for the venv python inside a rendered script: records its argv (one arg per line)."""
    fake = tmp_path / "fakepython"
    fake.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {tmp_path}/argv.txt\n')
    fake.chmod(0o755)
    return fake


def test_sweep_tasks_reach_the_trainer_parser_with_their_own_config(tmp_path, monkeypatch):
    """Run the rendered array script (bash, no Slurm) as task 3 and parse what it passes to `mazeagent train` with
    the real CLI parser: quoting, task selection and overrides all survive."""
    monkeypatch.setattr(sys, "executable", str(_fake_python(tmp_path)))
    out = tmp_path / "sweep"
    plan = S.plan_sweep("tiny", out, ["rand_region=none,2", "seed=0,1"], ["lr=1e-3"], max_parallel=2,
                        wandb=B.WandbOptions(tags=("paper-repro",)))
    (job,) = plan.jobs
    assert "--array=0-3%2" in _sbatch_options(job.script)
    assert [t["task"] for t in plan.tasks] == [0, 1, 2, 3] and len({t["out"] for t in plan.tasks}) == 4
    script = tmp_path / "sweep.sbatch"
    script.write_text(job.script)
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "3"}
    subprocess.run(["bash", str(script)], check=True, env=env, timeout=30, capture_output=True)
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert argv[:3] == ["-m", "mazeagent", "train"]
    args = build_parser().parse_args(argv[2:])
    assert args.out == plan.tasks[3]["out"] and args.resume
    assert make_config(args.preset, args.overrides, args.seed).to_dict() == plan.tasks[3]["config"]
    assert plan.tasks[3]["config"]["rand_region"] == 2 and plan.tasks[3]["config"]["seed"] == 1
    assert plan.tasks[0]["config"]["rand_region"] is None and plan.tasks[0]["config"]["lr"] == 1e-3
    # a task id outside the sweep is an error, not a silent default run
    bad = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": "9"}, capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "not part of this sweep" in bad.stderr


def test_sweep_subset_and_throttle(tmp_path):
    plan = S.plan_sweep("tiny", tmp_path / "s", ["seed=0..4"], array="1,3%1")
    assert "--array=1,3%1" in _sbatch_options(plan.jobs[0].script)
    with pytest.raises(ValueError, match="grid has only 5 points"):
        S.plan_sweep("tiny", tmp_path / "s", ["seed=0..4"], array="0-5")
    with pytest.raises(ValueError, match="not both"):
        S.plan_sweep("tiny", tmp_path / "s", ["seed=0..4"], array="0-4%2", max_parallel=3)


# ---- bad submissions fail before sbatch, with a clear message -----------------------------------------------------
@pytest.mark.parametrize("argv,msg", [
    (["train", "--preset", "huge"], "unknown preset 'huge'"),
    (["sweep", "--preset", "tiny", "--grid", "rand_regoin=1,2"], "did you mean 'rand_region'"),
    (["sweep", "--preset", "tiny", "--grid", "lr=fast"], "cannot parse lr='fast'"),
    (["sweep", "--preset", "tiny", "--grid", "seed=0..3", "--array", "0-3:0"], "invalid array spec"),
    (["sweep", "--preset", "tiny", "--grid", "seed=0..3", "--array", "2-9"], "grid has only 4 points"),
    (["sweep", "--preset", "tiny", "--grid", "seed=0,1", "--set", "seed=3"], "both --grid and --set"),
    (["train", "--preset", "tiny", "--time", "5", "--signal-lead", "600"], "must be shorter than the time limit"),
    (["train", "--preset", "tiny", "--time", "1:00:00:00"], "invalid time limit"),
    (["train", "--preset", "tiny", "--partition", "gpu; rm -rf"], "may only contain"),
    (["train", "--preset", "tiny", "--sbatch-arg=--array=0-3"], "set by the template"),
    (["study", "--checkpoint", "{tmp}/nowhere", "--mazes", "8", "--shards", "2"], "does not exist"),
    (["study", "--checkpoint", "{tmp}", "--mazes", "8", "--shards", "2"], "no checkpoint found"),
])
def test_bad_submission_is_refused_before_sbatch(tmp_path, capsys, monkeypatch, argv, msg):
    calls = tmp_path / "sbatch-calls"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "sbatch").write_text(f"#!/bin/sh\necho called >> {calls}\necho 1\n")
    (fake_bin / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["submit", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.startswith("mazeagent: error:")
    assert not calls.exists() and not out.exists()


def test_refuses_an_out_dir_that_holds_a_different_run(tmp_path):
    import numpy as np

    from mazeagent.ppo.checkpoint import save_checkpoint

    run = tmp_path / "run"
    other_lr = f"lr={make_config('tiny').lr * 3}"  # a training config that differs from the preset's
    save_checkpoint(run / "checkpoints", {"params": {"w": np.zeros(2, np.float32)}},
                    make_config("tiny", [other_lr]), 2)
    with pytest.raises(ValueError, match="cannot resume"):
        S.plan_train("tiny", run)
    # same training config (wandb settings may differ): a resubmission that resumes it is fine
    assert S.plan_train("tiny", run, [other_lr]).tasks[0]["out"] == str(run)


def test_dry_run_prints_scripts_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["submit", "sweep", "--preset", "tiny", "--grid", "seed=0,1", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "#SBATCH --array=0-1" in text and "dry run" in text and not out.exists()


# ---- the requeue wrapper (slurm/lib/job.sh), with scontrol replaced by a recorder ---------------------------------
_CHILD = textwrap.dedent("""
    import signal, sys, time
    got = []
    signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    print("ready", flush=True)
    for _ in range(400):
        if got:
            print("checkpointed", flush=True); sys.exit(128 + got[0])
        time.sleep(0.05)
    sys.exit(0)
""")


def _wrapper(tmp_path: Path, restarts: int, array: tuple[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.txt\n')
    (bin_dir / "scontrol").chmod(0o755)
    (tmp_path / "child.py").write_text(_CHILD)
    job = tmp_path / "job.sh"
    job.write_text(f"set -euo pipefail\nsource {shlex.quote(str(LIB))}\n"
                   f"run_requeueable {shlex.quote(sys.executable)} {tmp_path}/child.py\necho wrapper-exit=$?\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "77",
           "SLURM_RESTART_COUNT": str(restarts), "MAZEAGENT_MAX_RESTARTS": "2"}
    env.pop("SLURM_ARRAY_TASK_ID", None)
    if array:
        env |= {"SLURM_ARRAY_JOB_ID": array[0], "SLURM_ARRAY_TASK_ID": array[1]}
    proc = subprocess.Popen(["bash", str(job)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, tmp_path / "scontrol.txt"


def _wait_ready(proc: subprocess.Popen) -> list[str]:
    lines = []
    deadline = time.time() + 20
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.strip() == "ready":
            return lines
    raise AssertionError(f"child never started: {lines}")


def _children(pid: int, name: str) -> list[int]:
    """Live child processes of ``pid`` called ``name`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        if head.split("(", 1)[1] == name and int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _wait_requeued(proc: subprocess.Popen, record: Path, timeout: float = 20) -> None:
    """Until the wrapper has called ``scontrol requeue`` and sits in its wait for Slurm's TERM: its ``sleep`` child
    exists, and the wrapper set its TERM trap before starting it."""
    deadline = time.time() + timeout
    while not (record.exists() and record.read_text().strip() and _children(proc.pid, "sleep")):
        assert proc.poll() is None, f"wrapper exited before requeueing: {proc.communicate()[0]}"
        assert time.time() < deadline, f"no requeue within {timeout} s"
        time.sleep(0.02)


def _terminate(proc: subprocess.Popen) -> str:
    """TERM the wrapper once, as Slurm does after ``scontrol requeue``, and return its output (bounded wait)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"wrapper still running 20 s after TERM: {proc.communicate()[0]}") from None


@pytest.mark.parametrize("array,requeued", [(None, "77"), (("77", "1"), "77_1")])
def test_usr1_is_forwarded_and_the_job_requeued(tmp_path, array, requeued):
    """An array task requeues itself as MASTER_TASK: its SLURM_JOB_ID may equal the master id, and requeueing that
    would restart every task of the array (seen on Slurm 22.05)."""
    proc, record = _wrapper(tmp_path, restarts=0, array=array)
    _wait_ready(proc)
    proc.send_signal(signal.SIGUSR1)  # what `scancel --signal=USR1 --batch` does to the batch shell
    _wait_requeued(proc, record)
    text = _terminate(proc)  # what Slurm does to the shell after `scontrol requeue`
    assert "checkpointed" in text and "command exited with 138" in text and proc.returncode == 0, text
    assert record.read_text().split() == ["requeue", requeued]


def test_no_requeue_after_max_restarts_and_exit_code_passes_through(tmp_path):
    proc, record = _wrapper(tmp_path, restarts=2)
    _wait_ready(proc)
    proc.send_signal(signal.SIGUSR1)
    text = proc.communicate(timeout=20)[0]
    assert "not requeueing: already restarted 2 times" in text and proc.returncode == 138, text
    assert not record.exists()


# ---- status formatting ------------------------------------------------------------------------------------------
def test_sync_globs_and_report(tmp_path):
    out = str(tmp_path)
    runs = [f"{out}/000-seed_0/wandb/offline-run-1-a", f"{out}/001-seed_1/wandb/offline-run-2-b"]
    assert sync_globs(out, runs) == [f"{out}/*/wandb/offline-run-*"]
    assert sync_globs(out, [f"{out}/wandb/offline-run-1-a"]) == [f"{out}/wandb/offline-run-*"]
    report = {"submissions": [{"out": out, "time": "t", "kind": "sweep", "wandb_offline_runs": runs, "jobs": [
        {"id": "5", "name": "sweep-x", "path": "p", "logs": "/x/%x-%A_%a.out", "after": None,
         "tasks": [{"id": "5_0", "state": "COMPLETED", "exit": "0:0", "log": "/x/sweep-x-5_0.out"},
                   {"id": "5_1", "state": "PENDING", "exit": "", "reason": "Resources"}]}]}]}
    text = format_report(report)
    assert "5_0 COMPLETED" in text and "reason=Resources" in text
    assert "log /x/sweep-x-5_0.out" in text and "log /x/sweep-x-5_1.out" in text
    assert f"wandb sync {out}/*/wandb/offline-run-*" in text


def test_status_without_submissions_is_a_clear_error(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "no submissions recorded" in capsys.readouterr().err


def test_study_plan_is_a_shard_array_plus_a_dependent_merge(tmp_path):
    import numpy as np

    from mazeagent.ppo.checkpoint import save_checkpoint

    ckpt = tmp_path / "agent"
    save_checkpoint(ckpt / "checkpoints", {"params": {"w": np.zeros(2, np.float32)}}, make_config("tiny"), 8)
    kw = dict(seed=3, study_args=("--greedy",), max_parallel=2)
    from mazeagent.cli import build_parser

    ns = build_parser().parse_args(["study", "--checkpoint", "c", "--out", "o", "--shard", "1/4"])
    assert ns.shard == "1/4" and build_parser().parse_args(["study", "--checkpoint", "c", "--out", "o", "--merge", "4"]).merge == 4
    plan = S.plan_study(ckpt, 100, tmp_path / "study", 4, **kw)
    shards, merge = plan.jobs
    assert "--array=0-3%2" in _sbatch_options(shards.script) and merge.after == 0
    assert '--shard "${SLURM_ARRAY_TASK_ID:?not an array task}/4"' in shards.script
    assert "--merge 4" in merge.script and "--seed 3" in merge.script and "--greedy" in merge.script
    assert S.sbatch_command(merge, "41")[2:4] == ["--dependency=afterok:41", "--kill-on-invalid-dep=yes"]
    for job in plan.jobs:
        _bash_ok(job.script, tmp_path)
    with pytest.raises(ValueError, match="--shards must be between 1 and --mazes"):
        S.plan_study(ckpt, 3, tmp_path / "study", 4)
