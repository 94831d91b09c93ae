"""Sharded study: K shards + merge write the same results.json, byte for byte, as one process with the same seed;
a merge with missing or mismatched shards is a clear error."""
import json

import jax
import numpy as np
import pytest

from mazeagent.experiments import rollouts as R
from mazeagent.experiments.policies import NetPolicy
from mazeagent.experiments.shards import parse_shard, shard_paths
from mazeagent.experiments.study import StudyConfig, merge_study, run_shard, run_study
from mazeagent.nets import ImpalaCNN

CFG = StudyConfig(mazes=30, chunk=16, f11_mazes=3, conformity_mazes=2, n_splits=4, n_boot=8, wandb_mode="disabled")


def policy(seed=0):
    net = ImpalaCNN(scale=1)
    return NetPolicy(net, net.init(jax.random.PRNGKey(seed), np.zeros((1, 64, 64, 3), np.uint8)))


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    pol = policy()
    single, sharded = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("sharded")
    run_study(pol, single, CFG, checkpoint="ckpt", progress=False)
    for i in (2, 0, 1):  # any order: the merge joins in maze order
        run_shard(pol, sharded, CFG, i, 3, checkpoint="ckpt", progress=False)
    assert not (sharded / "results.json").exists()  # shards never write the report
    merge_study(pol, sharded, CFG, 3, checkpoint="ckpt", progress=False)
    return pol, single, sharded


def test_shards_plus_merge_equal_one_process_byte_for_byte(studies):
    _, single, sharded = studies
    a, b = ((d / "results.json").read_bytes() for d in (single, sharded))
    assert a == b
    assert (single / "episodes.csv").read_bytes() == (sharded / "episodes.csv").read_bytes()
    res = json.loads(a)
    assert "seconds" not in res["meta"] and "policy_evals" not in res["meta"]
    timing = json.loads((sharded / "timing.json").read_text())
    assert timing["shards"] == 3 and timing["policy_evals"] > 0 and "total" in timing["seconds"]
    assert json.loads((single / "timing.json").read_text())["shards"] == 1


def test_shard_split_is_a_partition_in_maze_order():
    parts = [R.shard_indices(10, i, 4) for i in range(4)]
    assert np.array_equal(np.concatenate(parts), np.arange(10)) and min(map(len, parts)) >= 2
    with pytest.raises(ValueError, match="shards"):
        R.shard_indices(3, 0, 4)
    with pytest.raises(ValueError, match="shard index"):
        R.shard_indices(10, 4, 4)
    assert parse_shard("3/8") == (3, 8)
    for bad in ("8/8", "3", "a/b", "-1/4", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_merge_rejects_missing_and_mismatched_shards(studies, tmp_path):
    pol, _, sharded = studies
    with pytest.raises(ValueError, match=r"4 of 4 shards missing.*found: \['shard-00000-of-00003"):
        merge_study(pol, sharded, CFG, 4, checkpoint="ckpt", progress=False)  # made as 3 shards
    npz, _ = shard_paths(sharded, 2, 3)
    npz.rename(tmp_path / "moved.npz")
    try:
        with pytest.raises(ValueError, match=r"1 of 3 shards missing .*\[2\].*--shard I/3"):
            merge_study(pol, sharded, CFG, 3, checkpoint="ckpt", progress=False)
    finally:
        (tmp_path / "moved.npz").rename(npz)
    from dataclasses import replace

    with pytest.raises(ValueError, match="seed: shard has 0, merge has 1"):
        merge_study(pol, sharded, replace(CFG, seed=1), 3, checkpoint="ckpt", progress=False)
    with pytest.raises(ValueError, match="mazes: shard has 30"):
        merge_study(pol, sharded, replace(CFG, mazes=31), 3, checkpoint="ckpt", progress=False)
    with pytest.raises(ValueError, match="params_sha256"):
        merge_study(policy(seed=1), sharded, CFG, 3, checkpoint="ckpt", progress=False)
    # a shard of another checkpoint dropped into the directory is caught too, and nothing is overwritten
    before = (sharded / "results.json").read_bytes()
    _, js = shard_paths(sharded, 1, 3)
    meta = json.loads(js.read_text())
    js.write_text(json.dumps({**meta, "checkpoint": "other"}))
    try:
        with pytest.raises(ValueError, match="shard 1 .* checkpoint: shard has 'other'"):
            merge_study(pol, sharded, CFG, 3, checkpoint="ckpt", progress=False)
    finally:
        js.write_text(json.dumps(meta))
    assert (sharded / "results.json").read_bytes() == before


def test_cli_shard_and_merge_match_one_process(tmp_path, capsys):
    """The command lines the Slurm templates run (study.sbatch / study_merge.sbatch) on a saved checkpoint."""
    from mazeagent.cli import main
    from mazeagent.ppo.checkpoint import save_checkpoint
    from mazeagent.ppo.config import make_config

    config = make_config("tiny", ["net_widths=none"])  # the policy here is the published-width scale-1 net
    ckpt = save_checkpoint(tmp_path / "run", {"params": policy(seed=2).params}, config, step=1)
    common = ["--checkpoint", str(ckpt), "--mazes", "12", "--seed", "3", "--f11-mazes", "2", "--conformity-mazes",
              "0", "--splits", "3", "--boot", "4", "--wandb", "disabled", "--no-progress"]
    assert main(["study", *common, "--out", str(tmp_path / "one")]) == 0
    for i in range(2):
        assert main(["study", *common, "--out", str(tmp_path / "two"), "--shard", f"{i}/2"]) == 0
    assert main(["study", *common, "--out", str(tmp_path / "two"), "--merge", "2"]) == 0
    assert (tmp_path / "one/results.json").read_bytes() == (tmp_path / "two/results.json").read_bytes()
    capsys.readouterr()
    assert main(["study", *common, "--out", str(tmp_path / "two"), "--shard", "2/2"]) == 2
    assert main(["study", *common, "--out", str(tmp_path / "two"), "--merge", "13"]) == 2
    assert main(["study", *common, "--out", str(tmp_path / "x"), "--merge", "2"]) == 2  # no shards there
    err = capsys.readouterr().err
    assert "--shard I/K needs" in err and "--merge K needs" in err and "2 of 2 shards missing" in err
