"""Our JAX env vs real procgen 0.10.7, step by step with the same random actions (the parity harness), and the
env benchmark command. Acceptance: >= 1,000 levels (stock and rand_region 5), >= 20,000 env-steps, 0 mismatches."""
import json

import numpy as np
import pytest

from mazeagent.cli import main
from mazeagent.env.parity import run_parity


def _assert_exact(report):
    assert report.ok, report.first_mismatches
    assert report.frames == report.envs * (report.steps + 1)
    assert report.env_steps == report.envs * report.steps


def test_stock_1000_levels_20000_steps_exact():
    report = run_parity(rand_seed=913_746_205, envs=1000, steps=20, progress=False)
    _assert_exact(report)
    assert report.levels >= 1000 and report.env_steps >= 20_000


def test_rand_region_5_1000_levels_exact():
    report = run_parity(rand_seed=77_001, envs=1000, steps=8, rand_region=5, progress=False)
    _assert_exact(report)
    assert report.levels >= 1000


EASY = ["--distribution-mode", "easy", "--envs", "8", "--json", "--no-progress"]


def test_parity_cli_easy_long_episodes_one_json_line(capsys):
    """Few envs, many steps: timeouts at 500, cheese, auto-resets and the seed stream past the first levels."""
    rc = main(["env", "parity", "--rand-seed", "31337", "--steps", "700", *EASY])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert rc == 0 and out["ok"] and out["mismatches"] == 0, out["first_mismatches"]
    for k in ("levels", "frames", "mismatched_frames", "mismatched_rewards", "mismatched_dones",
              "mismatched_level_seeds"):
        assert isinstance(out[k], int)
    assert out["frames"] == 8 * 701 and out["levels"] > 16  # every env timed out at least once


def test_harness_detects_another_level_stream(monkeypatch, capsys):
    """The harness can fail: if our env replays another rand_seed's levels, the CLI says so and exits 1."""
    from mazeagent.env import levelgen

    real = levelgen.env_seed_words
    monkeypatch.setattr(levelgen, "env_seed_words", lambda rand_seed, n: real(rand_seed + 1, n))
    rc = main(["env", "parity", "--rand-seed", "31337", "--steps", "3", *EASY])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and not out["ok"]
    assert out["mismatched_level_seeds"] >= 8 and out["mismatched_frames"] >= 8
    assert out["first_mismatches"][0]["step"] == 0


@pytest.mark.parametrize("argv, message", [
    (["--envs", "0"], "--envs"),
    (["--steps", "-1"], "--steps"),
    (["--rand-region", "26"], "rand_region"),
    (["--rand-seed", str(2**31)], "--rand-seed"),
])
def test_parity_cli_bad_input_is_a_clear_error(argv, message, capsys):
    base = {"--rand-seed": "1", "--envs": "2", "--steps": "1"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    rc = main(["env", "parity", *[x for kv in base.items() for x in kv], "--no-progress"])
    assert rc == 2 and message in capsys.readouterr().err


def test_bench_env_cli_json(capsys):
    rc = main(["bench", "env", "--envs", "8", "--seconds", "0.3", "--chunk", "4", "--distribution-mode", "easy",
               "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert rc == 0 and out["device"] == "cpu"
    assert out["procgen_sps"] > 0 and out["ours_sps"] > 0
    assert out["procgen_cpu_us_per_step"] > 0 and out["ours_cpu_us_per_step"] > 0
    assert np.isclose(out["ratio"], out["ours_sps"] / out["procgen_sps"], rtol=0.01)
    with pytest.raises(SystemExit):
        main(["bench", "env", "--envs", "x"])
