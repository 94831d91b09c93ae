"""The maze-size curriculum: schedule validation and parsing, the stage rules, and real tiny runs that switch sizes
at the right update, generate only mazes the stage allows, resume bitwise across a stage boundary, and leave a run
without a curriculum as it was."""
from __future__ import annotations

import json
import os
import signal

import jax
import numpy as np
import pytest

from mazeagent.ppo.checkpoint import list_checkpoints, load_checkpoint
from mazeagent.ppo.config import PPOConfig, make_config, preset
from mazeagent.ppo.curriculum import Curriculum, stage_at
from mazeagent.ppo.logging import RunLogger, read_metrics
from mazeagent.ppo.runner import run

# Runs share one shape (one compiled update per size for all of them): 4 envs x 8 steps, 6 updates, and stock
# cheese placement with timeout 8 so that even an untrained policy finds cheese (~20% on 3x3 mazes).
N = 6
BASE = preset("tiny").replace(num_envs=4, num_steps=8, update_epochs=1, num_minibatches=2, total_timesteps=4 * 8 * N,
                              rand_region=None, timeout=8, max_maze_size=5, checkpoint_every=1, keep_checkpoints=N + 1,
                              eval_episodes=4)
B = BASE.batch_size
STEPS = BASE.replace(curriculum=((0, 3), (3 * B, 5)))  # 3x3 for updates 1-3, then 5x5
ADVANCE = BASE.replace(curriculum=((0, 3), (5 * B, 5)), curriculum_advance_at=0.1, curriculum_window=8)


# ---- schedule -----------------------------------------------------------------------------------------------------
def test_set_parses_the_schedule_and_json_round_trips():
    cfg = make_config("tiny", ["curriculum=0:3, 1_024:5,2e3:7", "curriculum_advance_at=0.8", "curriculum_window=64"])
    assert cfg.curriculum == ((0, 3), (1024, 5), (2000, 7)) and cfg.curriculum_advance_at == 0.8
    assert PPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # JSON lists -> nested tuples
    assert make_config("tiny", ["curriculum=none"]).curriculum is None
    with pytest.raises(ValueError, match="curriculum=.*should be comma-separated START:SIZE pairs"):
        PPOConfig.from_dict({**cfg.to_dict(), "curriculum": [[0, 3, 1]]})


@pytest.mark.parametrize("pairs, match", [
    (["curriculum=0:3,1024:4"], r"maze sizes must be odd ints in \[3, 15\] in easy mode, got \[4\]"),
    (["curriculum=0:1"], r"odd ints in \[3, 15\]"),
    (["curriculum=100:3,1024:5"], "first stage must start at env step 0, got 100"),
    (["curriculum=0:3,1024:5,1024:7"], r"starts must increase, got \[0, 1024, 1024\]"),
    (["curriculum=0:5,1024:3"], r"maze sizes must increase .* got \[5, 3\]"),
    (["curriculum=0:3,1024:9"], "last size 9 exceeds max_maze_size=7"),
    (["curriculum=0:3,99999:5"], "start 99999 is never reached: the last update starts at env step 11776"),
    (["curriculum=0-3"], "cannot parse curriculum='0-3' as comma-separated START:SIZE pairs"),
    (["curriculum=0:3.5"], "cannot parse curriculum"),
    (["curriculum_advance_at=0.5"], "curriculum_advance_at=0.5 needs a curriculum"),
    (["curriculum=0:3", "curriculum_advance_at=1.5"], r"curriculum_advance_at must be None or in \(0, 1\]"),
    (["curriculum=0:3", "curriculum_window=0"], "curriculum_window must be > 0"),
])
def test_bad_schedules_are_clear_errors(pairs, match):
    with pytest.raises(ValueError, match=match):
        make_config("tiny", pairs)


def test_hard_mode_allows_sizes_up_to_25_and_late_starts_with_the_advance_rule():
    cfg = make_config("paper", ["curriculum=0:5,1e6:13,5e6:25"])
    assert cfg.curriculum[-1] == (5_000_000, 25)
    make_config("tiny", ["curriculum=0:3,10e9:5", "curriculum_advance_at=0.9"])  # reached only by the cheese rate


def test_stage_at():
    sched = ((0, 3), (100, 5), (250, 7))
    assert [stage_at(sched, s) for s in (0, 99, 100, 249, 250, 10**9)] == [0, 0, 1, 1, 2, 2]


def test_rolling_cheese_rate_advances_a_stage_and_round_trips():
    b = preset("tiny").batch_size
    cfg = preset("tiny").replace(curriculum=((0, 3), (5 * b, 5), (10 * b, 7)), curriculum_advance_at=0.5,
                                 curriculum_window=10)
    c = Curriculum(cfg)
    assert c.begin(0) == 3
    c.observe(6, 4 / 6)
    c.observe(6, 1 / 6)  # 5 cheese in 12 episodes < 0.5
    assert c.stage == 0 and c.window == [(6, 4), (6, 1)]
    c.observe(6, 5 / 6)  # the newest updates covering >= 10 episodes: 6 cheese in 12
    assert c.stage == 1 and c.window == []
    assert c.begin(3) == 5  # ahead of the step schedule: stays
    c.observe(4, 0.25)
    back = Curriculum.restore(cfg, json.loads(json.dumps({"curriculum": c.to_json()})))
    assert (back.stage, back.window) == (1, [(4, 1)])
    assert back.begin(10) == 7 and back.window == []  # update 10 starts at env step 10 * b: the schedule catches up
    back.observe(10, 1.0)
    assert back.stage == 2  # the last stage stays
    assert Curriculum(cfg).begin(7) == 5 and Curriculum.restore(cfg, {}).stage == 0
    steps_only = Curriculum(cfg.replace(curriculum_advance_at=None))
    steps_only.observe(100, 1.0)
    assert steps_only.stage == 0 and steps_only.window == []


# ---- real runs ----------------------------------------------------------------------------------------------------
def _stop_after(monkeypatch: pytest.MonkeyPatch, update: int) -> None:
    """SIGTERM this process once ``update`` is logged: the runner checkpoints it and returns 143."""
    log = RunLogger.log

    def stopping(self, row, media=None):
        log(self, row, media)
        if row["update"] == update:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(RunLogger, "log", stopping)


def _final(out) -> tuple[list[np.ndarray], list[dict]]:
    ck = load_checkpoint(out / "checkpoints")
    assert ck.step == N
    rows = [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in read_metrics(out)]
    return jax.tree_util.tree_leaves(ck.state), rows


def _assert_same(a, b) -> None:
    (la, ra), (lb, rb) = a, b
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert ra == rb


@pytest.fixture(scope="module")
def steps_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("steps")
    assert run(STEPS, out, progress=False) == 0
    return out


@pytest.mark.slow
def test_sizes_switch_at_the_scheduled_update_and_envs_stay_within_them(steps_run):
    rows = read_metrics(steps_run)
    assert [r["curriculum/max_maze_size"] for r in rows] == [3, 3, 3, 5, 5, 5]
    assert [r["curriculum/stage"] for r in rows] == [0, 0, 0, 1, 1, 1]
    seen = []
    for path in list_checkpoints(steps_run / "checkpoints"):  # one per update: every level any env holds
        ck = load_checkpoint(path)
        sizes = ck.state["env_state"]["bank"]["maze_size"]
        assert sizes.max() <= rows[ck.step - 1]["curriculum/max_maze_size"], (ck.step, sizes)
        assert ck.meta["extra"]["curriculum"] == {"stage": int(ck.step > 3), "window": []}  # its last update's
        seen.append(int(sizes.max()))
    assert seen == [3, 3, 3] + seen[3:] and 5 in seen[3:], seen  # stage 1 really plays 5x5 mazes


@pytest.mark.slow
def test_resume_across_the_scheduled_boundary_is_bitwise(steps_run, tmp_path, monkeypatch):
    _stop_after(monkeypatch, 2)
    assert run(STEPS, tmp_path, progress=False) == 128 + signal.SIGTERM
    assert load_checkpoint(tmp_path / "checkpoints").step == 2
    monkeypatch.undo()
    assert run(STEPS, tmp_path, resume=True, progress=False) == 0
    _assert_same(_final(tmp_path), _final(steps_run))


@pytest.mark.slow
def test_cheese_rate_advance_resumes_bitwise_with_its_window(tmp_path, monkeypatch):
    """The rolling window lives in the checkpoint: a run stopped while it holds episodes resumes to the same
    stages, states and metrics as an uninterrupted run, which moved on before the step schedule would have."""
    ref = tmp_path / "ref"
    assert run(ADVANCE, ref, progress=False) == 0
    rows = read_metrics(ref)
    replay = Curriculum(ADVANCE)
    for u, r in enumerate(rows):
        replay.begin(u)
        assert (r["curriculum/stage"], r["curriculum/max_maze_size"]) == (replay.stage, replay.size)
        replay.observe(r["rollout/episodes"], r["rollout/cheese_rate"])
    sizes = [r["curriculum/max_maze_size"] for r in rows]
    assert sizes.index(5) < 5, sizes  # advanced by the cheese rate, ahead of the step start at update 6
    window = load_checkpoint(ref / "checkpoints", step=1).meta["extra"]["curriculum"]
    assert window["stage"] == 0 and window["window"], window  # update 1 (4-8 episodes) cannot fill a window of 8

    out = tmp_path / "run"
    _stop_after(monkeypatch, 1)
    assert run(ADVANCE, out, progress=False) == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert run(ADVANCE, out, resume=True, progress=False) == 0
    _assert_same(_final(out), _final(ref))


@pytest.mark.slow
def test_no_curriculum_is_unchanged_and_one_stage_equals_none(tmp_path):
    """Without a curriculum nothing new is logged or saved; a one-stage curriculum at max_maze_size trains
    bitwise the same run (it only adds its two metrics columns)."""
    none, one = tmp_path / "none", tmp_path / "one"
    assert run(BASE, none, progress=False) == 0
    assert run(BASE.replace(curriculum=((0, 5),)), one, progress=False) == 0
    assert not any(k.startswith("curriculum/") for r in read_metrics(none) for k in r)
    assert "curriculum" not in load_checkpoint(none / "checkpoints").meta["extra"]
    leaves, rows = _final(one)
    assert all(r.pop("curriculum/max_maze_size") == 5 and r.pop("curriculum/stage") == 0 for r in rows)
    _assert_same((leaves, rows), _final(none))
