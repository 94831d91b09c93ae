"""Runs that survive: atomic checksummed checkpoints, clear errors on corrupt/mismatched ones, logging without gaps
or duplicates, and kill (SIGTERM / SIGKILL) + --resume ending bitwise equal to an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from mazeagent.ppo.checkpoint import list_checkpoints, load_checkpoint, resolve, save_checkpoint
from mazeagent.ppo.config import preset
from mazeagent.ppo.logging import RunLogger, read_metrics
from mazeagent.ppo.runner import READY_FILE
from wandb_files import read_run, read_segment, steps

CFG = preset("tiny")


class _Adam(NamedTuple):
    count: jax.Array
    mu: dict


@struct.dataclass
class _State:
    params: dict
    opt: tuple
    rng: jax.Array
    step: jax.Array


def _state(seed: int = 0, width: int = 3) -> _State:
    k = jax.random.PRNGKey(seed)
    params = {"params": {"fc": {"kernel": jax.random.normal(k, (4, width)), "bias": jnp.zeros(width)}}}
    return _State(params=params, opt=(_Adam(jnp.int32(5), jax.tree_util.tree_map(jnp.ones_like, params)), ()),
                  rng=jax.random.split(k)[0], step=jnp.int32(7))


def test_checkpoint_round_trip_is_bitwise(tmp_path):
    s = _state()
    path = save_checkpoint(tmp_path, s, CFG, 12, extra={"env_steps": 99})
    assert path.name == "step_00000012" and not list(tmp_path.glob(".tmp-*"))
    ck = load_checkpoint(tmp_path, target=jax.eval_shape(lambda: s))
    assert ck.step == 12 and ck.config == CFG and ck.meta["extra"] == {"env_steps": 99}
    for a, b in zip(jax.tree_util.tree_leaves(ck.state), jax.tree_util.tree_leaves(s), strict=True):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
    assert isinstance(ck.state, _State) and isinstance(ck.state.opt[0], _Adam)
    plain = load_checkpoint(tmp_path).state  # no target: nested dicts, params where load_policy looks
    assert np.array_equal(plain["params"]["params"]["fc"]["kernel"], np.asarray(s.params["params"]["fc"]["kernel"]))


def test_keep_prunes_and_resolve_finds_latest(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    for step in (2, 4, 6, 8):
        save_checkpoint(root, _state(step), CFG, step, keep=2)
    assert [p.name for p in list_checkpoints(root)] == ["step_00000006", "step_00000008"]
    assert resolve(tmp_path / "run").name == "step_00000008"  # a run dir works too
    assert resolve(root, step=6).name == "step_00000006"
    with pytest.raises(ValueError, match=r"no checkpoint for step 2 .*have \[6, 8\]"):
        resolve(root, step=2)
    with pytest.raises(ValueError, match="does not exist"):
        resolve(tmp_path / "nope")
    (root / ".tmp-step_00000010-1").mkdir()  # a save that crashed half-way: ignored, then cleaned up
    assert resolve(root).name == "step_00000008"
    save_checkpoint(root, _state(), CFG, 10, keep=2)
    assert not list(root.glob(".tmp-*"))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path, _state(), CFG, 1)
    data = bytearray((path / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "arrays.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.*sha256"):
        load_checkpoint(tmp_path)
    (path / "meta.json").write_text('{"format": "mazeagent-checkpoint-v1", "step"')
    with pytest.raises(ValueError, match="corrupt.*meta.json"):
        load_checkpoint(path)
    (path / "meta.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a mazeagent-checkpoint-v1 checkpoint"):
        load_checkpoint(path)


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, _state(width=3), CFG, 1)
    with pytest.raises(ValueError, match=r"does not match.*params/params/fc/kernel: checkpoint float32\[4, 3\] vs "
                                         r"expected float32\[4, 5\]"):
        load_checkpoint(tmp_path, target=jax.eval_shape(lambda: _state(width=5)))
    with pytest.raises(ValueError, match=r"does not match.*missing extra"):
        load_checkpoint(tmp_path, target={**load_checkpoint(tmp_path).state, "extra": jnp.zeros(2)})


def test_checkpoint_never_unpickles(tmp_path):
    """An object array (what a pickle payload needs) can neither be saved nor loaded."""
    with pytest.raises(ValueError, match="cannot checkpoint leaf 'params'"):
        save_checkpoint(tmp_path, {"params": np.array([{"a": 1}], dtype=object)}, CFG, 1)
    path = save_checkpoint(tmp_path, {"params": np.zeros(2)}, CFG, 2)
    with open(path / "arrays.npz", "wb") as f:
        np.savez(f, params=np.array([{"a": 1}], dtype=object))
    meta = json.loads((path / "meta.json").read_text())
    from mazeagent.ppo.checkpoint import file_sha256
    meta["sha256"] = file_sha256(path / "arrays.npz")  # even with a matching checksum
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="cannot read arrays.npz.*pickle"):
        load_checkpoint(path)


def test_logger_cuts_metrics_back_to_the_resumed_step(tmp_path):
    cfg = CFG.replace(wandb_mode="offline")
    log = RunLogger(tmp_path, cfg)
    for s in (10, 20, 30, 40):
        log.log({"step": s, "x": s / 10})
    log.close()
    with pytest.raises(ValueError, match="already holds metrics.*--resume"):
        RunLogger(tmp_path, cfg)
    log = RunLogger(tmp_path, cfg, resume_step=20)
    for s in (30, 40, 50):
        log.log({"step": s, "x": s / 10})
    log.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50]
    first, second = read_run(tmp_path)
    assert steps(first) == [10, 20, 30, 40] and first["exit_code"] == 0
    assert first["config"]["num_envs"] == cfg.num_envs
    # wandb: the resumed segment re-logged metrics.jsonl up to the resumed step (20), then logged on: alone it holds
    # the whole history, each step once, with metrics.jsonl's values (what a sync of its segments ends with)
    assert steps(second) == [10, 20, 30, 40, 50] and second["exit_code"] == 0
    assert [{k: h[k] for k in r if k != "step"} for h, r in zip(second["history"], rows, strict=True)] == \
           [{k: v for k, v in r.items() if k != "step"} for r in rows]
    # a SIGKILLed segment ends anywhere, even mid-record: wandb's reader (what the tests read killed segments with)
    # returns the readable prefix and no exit record. Cuts every 160 bytes back from the end (a row's records take
    # several hundred) until no row is left, then the header's first bytes.
    data, cut = first["path"].read_bytes(), tmp_path / "cut.wandb"
    counts = {}
    for k in [len(data) - 1 - 160 * i for i in range(len(data) // 160)] + [7, 0]:
        cut.write_bytes(data[:k])
        seg = read_segment(cut)
        assert seg["exit_code"] is None and seg["history"] == first["history"][:len(seg["history"])], k
        counts[k] = len(seg["history"])
        if k > 7 and not counts[k]:
            break
    assert [counts[k] for k in sorted(counts)] == sorted(counts.values()) and set(counts.values()) == {0, 1, 2, 3, 4}


# ---- end to end: kill a real training process and resume it --------------------------------------------------
N_UPDATES = 4
RUN = CFG.replace(num_envs=4, num_steps=8, update_epochs=1, num_minibatches=2, total_timesteps=4 * 8 * N_UPDATES,
                  wandb_mode="offline", checkpoint_every=1, keep_checkpoints=2, eval_episodes=4)
RUN_SETS = [f"{k}={v}" for k, v in RUN.to_dict().items() if v != getattr(CFG, k)]


def _train_cmd(out: Path, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "mazeagent", "train", "--preset", "tiny", "--seed", "3", "--out", str(out),
           "--no-progress"]
    for s in RUN_SETS:
        cmd += ["--set", s]
    return cmd + (["--resume"] if resume else [])


def _env(cache: Path) -> dict[str, str]:
    # one compilation cache for the four processes, so they compile the update once: the test session's (conftest),
    # which this run's other processes share, else one private to this test
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR", str(cache)),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
            "WANDB_SILENT": "true"}


READY_TIMEOUT = 900  # s: process start, imports and (cold) compiles on a small, loaded CPU machine


def _start(out: Path, env: dict, resume: bool = False) -> tuple[subprocess.Popen, Path]:
    """A training process; stderr goes to a file (a pipe nobody reads could fill up and stall it)."""
    err = out.parent / f"{out.name}-{time.monotonic_ns()}.err"
    out.mkdir(parents=True, exist_ok=True)
    with open(err, "w") as f:
        proc = subprocess.Popen(_train_cmd(out, resume), env=env, stdout=subprocess.DEVNULL, stderr=f, text=True)
    return proc, err


def _wait_ready(proc: subprocess.Popen, out: Path, err: Path) -> dict:
    """The trainer's READY record for *this* process (a resumed run's predecessor left its own), within a bound."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            info = json.loads((out / READY_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            info = None
        if info and info["pid"] == proc.pid:
            return info
        assert proc.poll() is None, f"exited with {proc.returncode} before it was ready:\n{err.read_text()[-2000:]}"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"not ready after {READY_TIMEOUT} s:\n{err.read_text()[-2000:]}")


def _interrupt(proc: subprocess.Popen, out: Path, err: Path, sig: int) -> dict:
    """Send ``sig`` as soon as the trainer is ready, i.e. before or during its first update: the whole run (updates,
    final evaluation, media) is still ahead, so the signal cannot arrive after it finished."""
    info = _wait_ready(proc, out, err)
    assert proc.poll() is None, f"finished before the signal: {err.read_text()[-2000:]}"
    proc.send_signal(sig)
    proc.wait(timeout=300)
    return info


def _final_params(out: Path):
    ck = load_checkpoint(out / "checkpoints")
    assert ck.step == N_UPDATES
    return jax.tree_util.tree_leaves(ck.state["params"]), ck.state


@pytest.mark.slow
def test_sigterm_and_sigkill_then_resume_match_an_uninterrupted_run(tmp_path):
    """One run is stopped twice: SIGTERM on the fresh run (it checkpoints and exits 143), then SIGKILL on its resumed
    continuation (no warning at all), then a second resume finishes. The result is bitwise the uninterrupted run."""
    env = _env(tmp_path / "jax-cache")
    ref = tmp_path / "ref"
    res = subprocess.run(_train_cmd(ref), env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    ref_leaves, ref_state = _final_params(ref)
    ref_rows = read_metrics(ref)
    batch = RUN.batch_size
    assert [r["step"] for r in ref_rows] == [batch * (i + 1) for i in range(N_UPDATES)]

    out = tmp_path / "run"
    proc, err = _start(out, env)
    assert _interrupt(proc, out, err, signal.SIGTERM)["update"] == 0
    text = err.read_text()
    assert proc.returncode == 128 + signal.SIGTERM and "got SIGTERM; checkpointed update" in text, text[-2000:]
    stopped_at = int(text.split("checkpointed update ")[1].split()[0])
    assert 0 <= stopped_at < N_UPDATES and list_checkpoints(out / "checkpoints")[-1].name == f"step_{stopped_at:08d}"

    proc, err = _start(out, env, resume=True)
    assert _interrupt(proc, out, err, signal.SIGKILL)["update"] == stopped_at  # resumed where SIGTERM left it
    assert proc.returncode == -signal.SIGKILL

    res = subprocess.run(_train_cmd(out, resume=True), env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    leaves, state = _final_params(out)
    for a, b in zip(leaves, ref_leaves, strict=True):
        assert np.array_equal(a, b), "parameters differ from the uninterrupted run"
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(ref_state), strict=True):
        assert np.array_equal(a, b)  # optimizer, env, normalisation, RNG: the whole state
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]  # no gaps, no duplicates
    for r, rr in zip(rows, ref_rows, strict=True):
        assert {k: v for k, v in r.items() if not k.startswith("perf/")} == \
               {k: v for k, v in rr.items() if not k.startswith("perf/")}
    segments = sorted((out / "wandb").glob("offline-run-*"))
    assert len(segments) == 3 and len({s.name.split("-")[3] for s in segments}) == 1, segments  # one run id
    # wandb: the newest segment alone holds every step once, with metrics.jsonl's values; no segment holds a step
    # metrics.jsonl lacks; the SIGTERMed segment recorded its exit code, the SIGKILLed one none, the last one 0
    termed, killed, last = read_run(out)
    assert steps(last) == [r["step"] for r in rows], f"wandb steps {steps(last)}"
    for h, r in zip(last["history"], rows, strict=True):
        assert {k: h[k] for k in r if k != "step"} == {k: v for k, v in r.items() if k != "step"}
    assert steps(termed) == [batch * (u + 1) for u in range(stopped_at)] and set(steps(killed)) <= set(steps(last))
    assert (termed["exit_code"], killed["exit_code"], last["exit_code"]) == (128 + signal.SIGTERM, None, 0)
    # checkpoints: the last segment logged the one it resumed from and every later one, "latest" and "step-N" each;
    # a checkpoint logged by two segments has one digest (so wandb keeps one version of it)
    assert termed["artifacts"][-1]["metadata"]["update"] == stopped_at
    arts = last["artifacts"]
    start = arts[0]["metadata"]["update"]
    assert stopped_at <= start < N_UPDATES
    assert [a["metadata"]["env_steps"] for a in arts] == [batch * u for u in range(start, N_UPDATES + 1)]
    assert all(set(a["aliases"]) == {"latest", f"step-{a['metadata']['env_steps']}"} for a in arts)
    digests: dict[int, set[str]] = {}
    for seg in (termed, killed, last):
        for a in seg["artifacts"]:
            digests.setdefault(a["metadata"]["env_steps"], set()).add(a["digest"])
    assert all(len(d) == 1 for d in digests.values()), digests


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, capsys):
    """An absurd learning rate blows the parameters up: the run stops with exit code 3 and a clear message, and
    the newest checkpoint is the last state whose update was finite (it loads and holds finite parameters)."""
    from mazeagent.ppo.runner import EXIT_NONFINITE, run

    cfg = RUN.replace(lr=1e30, anneal_lr=False, wandb_mode="disabled", checkpoint_every=100)
    assert run(cfg, tmp_path, progress=False) == EXIT_NONFINITE
    err = capsys.readouterr().err
    assert "produced a non-finite" in err and "last good state" in err
    rows = read_metrics(tmp_path)
    ck = load_checkpoint(tmp_path / "checkpoints")
    assert ck.step == len(rows) < N_UPDATES  # the bad update was neither logged nor saved
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(ck.state["params"]))
