"""wandb media and artifacts, read back from the real offline run files (through wandb's own reader,
:mod:`wandb_files`): training checkpoints as model artifacts (copied when small, by reference when large, logged again
after a kill), eval rollout GIFs that decode to the env's frames, and the study's and probes' media."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from mazeagent import media
from mazeagent.ppo.record import record_episodes
from mazeagent.ppo.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from mazeagent.ppo.config import preset
from mazeagent.ppo.logging import REFERENCE_ENV, RunLogger, read_metrics
from wandb_files import read_run, read_segment, steps

# 4 updates of 4 envs x 8 steps; checkpoints and evaluations (with videos) at updates 2 and 4
RUN = preset("tiny").replace(num_envs=4, num_steps=8, update_epochs=1, num_minibatches=2, total_timesteps=4 * 8 * 4,
                             use_backgrounds=False, wandb_mode="offline", checkpoint_every=2, eval_every=2,
                             eval_episodes=4, keep_checkpoints=2, seed=3)
BATCH = RUN.batch_size


def _md5_b64(path: Path) -> str:
    return base64.b64encode(hashlib.md5(Path(path).read_bytes()).digest()).decode()


def _rows_with(seg: dict, key: str) -> list[dict]:
    return [r for r in seg["history"] if any(k.startswith(key) for k in r)]


def _cut(path: Path) -> None:
    """Truncate a segment as a SIGKILL would: mid-file, so its tail (the update-4 rows and checkpoint, the exit
    record) never reached the disk."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run killed after its update-2 checkpoint (wandb tail lost, update-4 checkpoint never written), resumed."""
    from mazeagent.ppo.runner import checkpoint_dir, run

    out = tmp_path_factory.mktemp("train")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_DATA_DIR", str(out / "wandb-data"))  # wandb's artifact staging: inside the test's folder
    try:
        assert run(RUN, out, progress=False) == 0
        (seg1,) = read_run(out)
        # the kill: the checkpoint of update 4 and the second half of what wandb wrote are gone
        for ck in list_checkpoints(checkpoint_dir(out)):
            if ck.name.endswith("4"):
                ck.rename(ck.with_name(".tmp-killed"))
        _cut(seg1["path"])
        assert run(RUN, out, resume=True, progress=False) == 0
    finally:
        mp.undo()
    return out, seg1


@pytest.mark.slow
def test_checkpoints_are_model_artifacts_with_step_aliases(trained):
    out, first = trained
    # the uninterrupted segment logged one version per checkpoint, each with the config hash and env steps
    assert [set(a["aliases"]) for a in first["artifacts"]] == [{"latest", f"step-{2 * BATCH}"},
                                                               {"latest", f"step-{4 * BATCH}"}]
    segs = read_run(out)
    assert len(segs) == 2 and segs[0]["exit_code"] is None  # the cut took the first segment's tail
    assert 4 * BATCH not in steps(segs[0]) + [a["metadata"]["env_steps"] for a in segs[0]["artifacts"]]
    arts = segs[1]["artifacts"]
    # the resumed segment logged the checkpoint it resumed from, then the new one; the first is the very content
    # (same digest) the killed segment logged, so wandb adds no version for it
    assert [a["metadata"]["env_steps"] for a in arts] == [2 * BATCH, 4 * BATCH]
    assert arts[0]["digest"] == first["artifacts"][0]["digest"] and arts[0]["metadata"] == first["artifacts"][0][
        "metadata"]
    assert {a["name"] for a in arts} == {f"ckpt-{json.loads((out / 'run.json').read_text())['wandb_id']}"}
    assert all(a["type"] == "model" and a["metadata"]["config_hash"] == first["artifacts"][0]["metadata"]
               ["config_hash"] for a in arts)
    final = arts[-1]
    assert final["metadata"]["update"] == 4 and not final["metadata"]["by_reference"]
    ckpt = Path(final["metadata"]["checkpoint"])
    assert ckpt == list_checkpoints(out / "checkpoints")[-1]
    files = {f["path"]: f for f in final["files"]}
    assert set(files) == {"arrays.npz", "meta.json"}
    for name, f in files.items():  # small: a staged copy (under WANDB_DATA_DIR) equal to the real checkpoint file
        staged = Path(f["local_path"])
        assert staged.is_relative_to(out / "wandb-data")
        assert staged.read_bytes() == (ckpt / name).read_bytes() and f["digest"] == _md5_b64(ckpt / name)
    # metrics: the resumed segment alone holds every step once, with metrics.jsonl's values; the killed one holds
    # nothing else; the run ended with exit code 0
    rows = read_metrics(out)
    assert steps(segs[1]) == [r["step"] for r in rows] == [BATCH * u for u in (1, 2, 3, 4)]
    for h, r in zip(segs[1]["history"], rows, strict=True):
        assert {k: h[k] for k in r if k != "step"} == {k: v for k, v in r.items() if k != "step"}
    assert set(steps(segs[0])) <= set(steps(segs[1])) and segs[1]["exit_code"] == 0
    # not vacuous: the resumed segment holds the new media rows and files
    assert _rows_with(segs[1], "eval/train/rollout/0/video") and any(f.endswith(".gif") for f in segs[1]["files"])


@pytest.mark.slow
def test_eval_videos_decode_to_the_env_frames(trained):
    from PIL import Image

    from mazeagent.env.core import observe
    from mazeagent.maze.level import CHEESE, WALL
    from mazeagent.ppo.runner import EVAL_VIDEOS, checkpoint_dir
    from mazeagent.ppo.train import make_train

    out, first = trained
    assert [int(r["_step"]) for r in _rows_with(first, "eval/train/rollout/0/video")] == [2 * BATCH, 4 * BATCH]
    seg = read_run(out)[-1]
    (row,) = _rows_with(seg, "eval/stock/rollout/0/video")  # the re-logged update-2 row carries no media
    assert int(row["_step"]) == 4 * BATCH
    trainer = make_train(RUN)
    state = load_checkpoint(checkpoint_dir(out), target=jax.eval_shape(trainer.init, jax.random.PRNGKey(0))).state
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(RUN.seed), 2), 4)
    env_states = state.env_state.env_states()
    render = jax.jit(observe, static_argnums=1)
    recorded = record_episodes(RUN, state, key, EVAL_VIDEOS)
    for dist, eps in recorded.items():
        assert len(eps) == EVAL_VIDEOS
        for i, ep in enumerate(eps):
            rel = row[f"eval/{dist}/rollout/{i}/video.path"]
            assert rel in seg["files"] and row[f"eval/{dist}/rollout/{i}/video._type"] == "video-file"
            frames, ms = media.read_gif(seg["path"].parent / "files" / rel)
            assert ms == media.FRAME_MS and frames.shape == (ep.steps, 256, 256, 3) and 1 <= ep.steps <= RUN.timeout
            np.testing.assert_array_equal(frames, ep.frames.repeat(4, 1).repeat(4, 2))  # <= 256 colours: exact
            one = jax.tree_util.tree_map(lambda a: a[i], env_states)
            level = np.asarray(one.grid)
            assert np.array_equal(ep.grid == WALL, level == WALL) and (ep.grid == CHEESE).sum() == 1
            if dist == "train":  # stock: the same maze, the cheese drawn anew
                np.testing.assert_array_equal(ep.grid, level)
            assert ep.grid[tuple(ep.squares[0])] != CHEESE
            for t in range(ep.steps):  # the frames are the env's own renders of the squares played
                np.testing.assert_array_equal(ep.frames[t], render(
                    one.replace(grid=ep.grid, mouse=ep.squares[t], reflected=ep.reflected[t]), trainer.env.params))
            with Image.open(seg["path"].parent / "files" / row[f"eval/{dist}/rollout/{i}/path.path"]) as im:
                assert im.size == (256, 256)
    assert (out / "media" / f"{4 * BATCH:012d}" / "eval_stock_rollout_1.gif").is_file()


def test_large_checkpoints_are_logged_by_reference(tmp_path, monkeypatch):
    cfg = preset("tiny").replace(wandb_mode="offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv(REFERENCE_ENV, "0.001")  # ~1 KB: this 40 KB checkpoint counts as large
    log = RunLogger(tmp_path, cfg)
    path = save_checkpoint(tmp_path / "checkpoints", {"params": np.arange(10_000, dtype=np.float32)}, cfg, 5)
    log.log_checkpoint(path, 5, 5 * 64)
    log.close()
    (seg,) = read_run(tmp_path)
    (art,) = seg["artifacts"]
    assert art["metadata"]["by_reference"] and set(art["aliases"]) == {"latest", "step-320"}
    refs = {f["path"]: f for f in art["files"]}
    assert set(refs) == {"arrays.npz", "meta.json"}
    for name, f in refs.items():
        assert f["ref"] == (path / name).resolve().as_uri() and f["digest"] == _md5_b64(path / name)
    assert not (tmp_path / "wandb-data").exists() or not any((tmp_path / "wandb-data").rglob("*.npz"))
    monkeypatch.setenv(REFERENCE_ENV, "lots")
    with pytest.raises(ValueError, match=f"{REFERENCE_ENV}='lots' must be a number of MiB"):
        RunLogger(tmp_path / "again", cfg)


def test_gif_with_backgrounds_is_close_and_bad_input_is_clear(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)  # far more than 256 colours
    frames[2] = frames[1]  # GIF merges repeats; read_gif expands them again
    path = media.save_gif(frames, tmp_path / "x.gif", scale=2)
    back, ms = media.read_gif(path)
    assert back.shape == (5, 128, 128, 3) and ms == media.FRAME_MS
    np.testing.assert_array_equal(back[2], back[1])
    assert np.abs(back[:, ::2, ::2].astype(int) - frames).mean() < 40  # a fitted palette, not garbage
    with pytest.raises(ValueError, match="must end in .gif"):
        media.save_gif(frames, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=r"uint8 array \(T, H, W, 3\)"):
        media.save_gif(frames[..., :2], tmp_path / "y.gif")
    with pytest.raises(ValueError, match="multiple of 10"):
        media.save_gif(frames, tmp_path / "z.gif", frame_ms=25)


def test_study_logs_example_rollouts(tmp_path, monkeypatch):
    from mazeagent.experiments.report import Report, Section, log_wandb
    from mazeagent.experiments.policies import oracle_policy
    from mazeagent.experiments.rollouts import RolloutConfig, replay, rollout
    from mazeagent.experiments.study import EXAMPLES_PER_OUTCOME, OUTCOMES, example_media, replay_episodes
    from mazeagent.env.core import EnvParams, observe, state_from_level
    from mazeagent.env.mazes import generate_mazes

    mazes = generate_mazes(6, seed=1)
    ro = rollout(oracle_policy("top_right"), mazes, RolloutConfig(horizon=256, chunk=8), progress=False)
    ckpt = save_checkpoint(tmp_path / "agent", {"params": np.zeros(2)}, preset("tiny"), 1)  # whose tags it gets
    monkeypatch.setenv("WANDB_RUN_GROUP", "study-x")  # as study.sbatch sets them
    monkeypatch.setenv("WANDB_TAGS", "mine")
    rep = Report(tmp_path, meta={"checkpoint": str(ckpt)})
    rep.add(Section("b1", "B1", results={"n": len(mazes)}))
    log_wandb(rep, rep.results(), "offline", media=example_media(mazes, ro.episodes, tmp_path / "media"))
    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    seg = read_segment(log)
    assert seg["run"]["job_type"] == "study" and seg["run"]["project"] == "mazeagent-study"
    assert seg["run"]["group"] == "study-x" and seg["run"]["tags"] == ["mine", "rand_region:2", "scale:1"]
    (row,) = seg["history"]
    df = ro.episodes
    outcome = {"cheese": df["cheese_256"], "top_right": df["top_right_256"] & ~df["cheese_256"],
               "neither": df["neither_256"]}
    assert outcome["top_right"].sum() >= 1  # the oracle walks to the top-right square
    render = jax.jit(observe, static_argnums=1)
    for name in OUTCOMES:
        picked = df[outcome[name]].head(EXAMPLES_PER_OUTCOME)
        assert sorted(k for k in row if k.startswith(f"examples/{name}/") and k.endswith("/video.path")) == \
               [f"examples/{name}/{i}/video.path" for i in range(len(picked))]
        for i, r in enumerate(picked.itertuples()):
            for kind in ("video", "path", "maze"):
                assert row[f"examples/{name}/{i}/{kind}.path"] in seg["files"]
            (ep,) = replay_episodes(mazes, [int(r.maze)], [r.actions])
            frames, _ = media.read_gif(log.parent / "files" / row[f"examples/{name}/{i}/video.path"])
            assert frames.shape == (len(r.actions), 256, 256, 3) == (ep.steps, 256, 256, 3)
            # textured backgrounds exceed 256 colours: the GIF is close, the replayed frames are exact
            assert np.abs(frames[:, ::4, ::4].astype(int) - ep.frames).mean() < 4
            state = state_from_level(mazes.level(int(r.maze)), background=int(mazes.background[r.maze]))
            for t, sq in enumerate(replay(mazes, int(r.maze), r.actions)[:-1]):  # the env's own render
                np.testing.assert_array_equal(ep.squares[t], sq)
                view = render(state.replace(mouse=np.asarray(sq, np.int32), reflected=np.bool_(ep.reflected[t])),
                              EnvParams())
                np.testing.assert_array_equal(ep.frames[t], np.asarray(view))


def test_probe_runs_log_the_vector_field_figure(tmp_path):
    from mazeagent.cli import main

    tiny = ["--random-init", "1", "--retarget-mazes", "2", "--targets", "1", "--channel-mazes", "2",
            "--placements", "4", "--horizon", "24", "--no-progress"]
    assert main(["probes", "--out", str(tmp_path), *tiny, "--experiments", "o1"]) == 0
    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    seg = read_segment(log)
    assert seg["run"]["job_type"] == "probe"
    (row,) = seg["history"]
    rel = row["figures/probes_o1_vfield.path"]
    assert row["figures/probes_o1_vfield._type"] == "image-file" and rel in seg["files"]
    from PIL import Image
    with Image.open(log.parent / "files" / rel) as im, Image.open(tmp_path / "figures" / "probes_o1_vfield.png") as ref:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), np.asarray(ref.convert("RGB")))
