"""``ma.video`` and the API pieces under it (``Agent.play``, ``ma.clamp_channel``), with the bundled agent: episodes
as the rollout engine plays them, GIFs side by side, the same seed giving the same bytes."""
from __future__ import annotations

import numpy as np
import pytest

import mazeagent as ma
from mazeagent.experiments.rollouts import GROUP_ACTION
from mazeagent.api import VIDEO_GAP
from mazeagent.env.mazes import observations
from mazeagent.maze.level import OBS, WORLD
from mazeagent.media import read_gif
from mazeagent.nets.actions import GROUP_NAMES
from mazeagent.probes.interventions import SetMasked


@pytest.fixture(scope="module")
def agent():
    return ma.load_agent()


def always(group: str) -> dict:
    """A patch that changes behaviour whatever the net: the policy logits set to favour one move group."""
    logits = np.full(15, -30.0, np.float32)
    logits[GROUP_ACTION[GROUP_NAMES.index(group)]] = 30.0
    return {"fc_policy_out": SetMasked(np.ones(15, bool), logits)}


def test_play_is_the_rollout_engines_episode_cut_to_length(agent):
    m = ma.Maze.from_seed(0)
    full = agent.play(m, seed=4)
    assert full.squares.shape == (full.steps + 1, 2) and tuple(full.squares[0]) == m.mouse
    assert full.facing.shape == (full.steps + 1,) and set(full.actions) <= set("LDURN")
    short = agent.play(m, 20, seed=4)
    assert short.actions == full.actions[:20] and (short.squares == full.squares[:21]).all()
    assert agent.play(m, 20, seed=4).actions == short.actions  # same seed, same episode
    with agent.patched(always("up")):
        up = agent.play(m, 12, seed=4)
    assert m.level.walls[1, 0] and up.actions == "U" * 12 and (up.squares == 0).all()  # against the wall above
    with agent.patched(always("right")):
        won = agent.play(m.with_cheese(0, 1), seed=4)
    assert won.cheese and won.actions == "R" and won.squares.tolist() == [[0, 0], [0, 1]]  # ends on the cheese
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 500\], got 0"):
        agent.play(m, 0)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*31\), got -1"):
        agent.play(m, seed=-1)


def test_clamp_channel_is_the_retargeting_clamp_and_checks_its_input(agent):
    m = ma.Maze.from_seed(0)
    hooks = ma.clamp_channel(agent, m, (m.size - 1, m.size - 1), 1)
    (layer, edit), = hooks.items()
    mask = np.asarray(edit.mask)
    assert mask.sum() == 1 and mask[..., 1].any() and np.asarray(edit.values)[mask][0] == pytest.approx(5.5)
    with pytest.raises(ValueError, match=r"clamp square \(13, 0\) is outside the 13x13 maze"):
        ma.clamp_channel(agent, m, (13, 0), 1)
    with pytest.raises(ValueError, match="channel indices must be in"):
        ma.clamp_channel(agent, m, (0, 0), 10_000)
    with pytest.raises(ValueError, match="needs a spatial"):
        ma.clamp_channel(agent, m, (0, 0), 0, layer="embedder.fc_out")
    with pytest.raises(ValueError, match="finite number"):
        ma.clamp_channel(agent, m, (0, 0), 0, value=float("nan"))


def test_video_puts_the_patched_episode_beside_the_original(agent, tmp_path):
    m = ma.Maze.from_seed(0)
    alone = ma.video(agent, m, steps=12, seed=1)
    run = agent.play(m, 12, seed=1)
    margin = (WORLD - m.size) // 2
    want = np.asarray(observations(m.mazes, np.zeros(run.steps + 1, np.int64), run.squares + margin, run.facing))
    np.testing.assert_array_equal(alone, want)  # one frame per square visited, start and end included
    both = ma.video(agent, m, patched=always("up"), steps=12, seed=1)
    assert both.shape == (13, OBS, 2 * OBS + VIDEO_GAP, 3)
    np.testing.assert_array_equal(both[: len(alone), :, :OBS], alone)
    assert (both[:, :, OBS:OBS + VIDEO_GAP] == 255).all()
    assert (both[1:, :, OBS + VIDEO_GAP:] != both[1:, :, :OBS]).any()  # the patch changes what happens
    after = ma.video(agent, m, patched=always("up"), side_by_side=False, steps=12, seed=1)
    assert after.shape == (len(alone) + 13, OBS, OBS, 3)


def test_the_same_seed_writes_the_same_gif(agent, tmp_path):
    m = ma.Maze.from_seed(0)
    a = ma.video(agent, m, patched=always("right"), steps=10, seed=2, path=tmp_path / "a.gif")
    b = ma.video(agent, m, patched=always("right"), steps=10, seed=2, path=tmp_path / "b.gif")
    assert a == tmp_path / "a.gif" and a.read_bytes() == b.read_bytes()
    frames, _ = read_gif(a)
    assert frames.shape[1:] == (4 * OBS, 4 * (2 * OBS + VIDEO_GAP), 3)
