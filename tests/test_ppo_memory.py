"""The memory guard: a run too big for the machine fails before anything compiles, with estimated vs available bytes
and what fits; the cpu and tiny presets pass; the escape hatch works; the estimate tracks XLA's own buffer sizes."""
from __future__ import annotations

import time

import jax
import pytest

from mazeagent.cli import main
from mazeagent.ppo import memory, train
from mazeagent.ppo.config import preset
from mazeagent.ppo.train import make_train

BOX = 20e9  # available bytes of a 23 GB CPU machine with a little running beside (the machine `box` pretends to be)


@pytest.fixture
def box(monkeypatch):
    """Pretend to be that machine, so the verdicts do not depend on where the tests run."""
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: int(BOX))
    monkeypatch.delenv(memory.SKIP_ENV, raising=False)


def _not_built(*_a, **_k):
    raise AssertionError("the env (and so the jitted update) was built before the memory check")


def test_too_big_fails_before_compiling_with_a_clear_message(box, monkeypatch):
    monkeypatch.setattr(train, "make_env", _not_built)
    cfg = preset("tiny").replace(num_envs=2**16, total_timesteps=2**24)
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as e:
        make_train(cfg)
    assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert "estimated" in msg and "20.0 GB is available" in msg, msg
    assert "2 epochs x 1,048,576 samples" in msg and memory.SKIP_ENV in msg, msg
    assert "--set num_envs=" in msg and "--preset cpu or tiny" in msg, msg
    n = int(msg.split("--set num_envs=")[1].split(")")[0])  # the suggestion itself fits
    memory.check_memory(cfg.replace(num_envs=n))


def test_train_preset_fast_stops_with_the_message_not_an_xla_oom(box, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(train, "make_env", _not_built)
    assert main(["train", "--preset", "fast", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "mazeagent: error: this run needs an estimated" in err and "3 epochs x 65,536 samples" in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_xla_scheduler_flag_is_offered_and_honoured(box, monkeypatch):
    """Without XLA:CPU's concurrency-optimised scheduler one unrolled learning step is live at a time: a run that
    needs that is told so, and passes once the flag is set."""
    cfg = preset("cpu").replace(net_widths=(16, 32, 32), num_envs=128, total_timesteps=10**6)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(ValueError, match=f"XLA_FLAGS=--{memory.NO_CONCURRENCY_FLAG}"):
        memory.check_memory(cfg)
    monkeypatch.setenv("XLA_FLAGS", f"--{memory.NO_CONCURRENCY_FLAG}")
    memory.check_memory(cfg)
    assert memory.estimate_bytes(cfg)["learn"] < memory.estimate_bytes(cfg, unrolled=True)["learn"] / 5


def test_cpu_and_tiny_presets_pass(box):
    for name in ("cpu", "tiny"):
        memory.check_memory(preset(name))
        assert memory.estimate_bytes(preset(name))["total"] < 0.6 * BOX


def test_escape_hatch_and_unknown_memory(box, monkeypatch):
    fast = preset("fast")
    with pytest.raises(ValueError, match="estimated"):
        memory.check_memory(fast)
    monkeypatch.setenv(memory.SKIP_ENV, "1")
    memory.check_memory(fast)
    monkeypatch.delenv(memory.SKIP_ENV)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: None)
    memory.check_memory(fast)


def test_real_available_memory_is_read():
    avail = memory.available_bytes()
    assert avail is None or avail > 0


def test_estimate_tracks_xla_buffer_sizes():
    """The analytic learning-phase estimate against XLA's own temp buffer of the compiled tiny learning phase, and
    of the measured sizes that set the factor (fast preset 485.8 GB, cpu 10.8 GB: compiled once, too slow here)."""
    cfg = preset("tiny")
    tr = make_train(cfg)
    state = jax.eval_shape(tr.init, jax.random.PRNGKey(0))
    args = jax.eval_shape(tr.rollout, state)
    temp = jax.jit(tr.learn).lower(*args).compile().memory_analysis().temp_size_in_bytes
    assert 0.9 < memory.estimate_bytes(cfg)["learn"] / temp < 1.2, temp
    for name, measured in (("fast", 485.793e9), ("cpu", 10.756e9)):
        assert 0.95 < memory.estimate_bytes(preset(name))["learn"] / measured < 1.1
