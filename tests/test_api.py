"""The notebook API (mazeagent.api): mazes as values with validated edits and files, and an agent whose answers
match the network run on real procgen's frame of the same edited maze."""
import json

import numpy as np
import pytest

import mazeagent as ma
from mazeagent.maze.level import inner_to_world
from mazeagent.nets.actions import ACTION_GROUPS, GROUP_NAMES, group_probs
from required import require_module

PICTURE = """
#....
#.##.
..#C.
.##..
M....
"""


def test_a_maze_from_a_seed_is_procgens_level_and_round_trips_through_json(tmp_path):
    from mazeagent.env.mazes import generate_mazes

    batch = generate_mazes(3, seed=0)
    for i in range(3):
        m = ma.Maze.from_seed(int(batch.seed[i]))
        assert m.level == batch.level(i) and m.background == int(batch.background[i])
        assert m.level.seed == int(batch.seed[i])
    maze = ma.Maze.from_seed(12345)
    saved = ma.Maze.load(maze.save(tmp_path / "m.json"))
    assert saved == maze and saved.level.seed == 12345
    assert json.loads((tmp_path / "m.json").read_text())["format"] == "mazeagent-maze-v1"
    with pytest.raises(ValueError, match="seed must be an int"):
        ma.Maze.from_seed(-1)


def test_pictures_edits_and_their_errors():
    m = ma.Maze.from_ascii(PICTURE.splitlines(), background=3)
    assert (m.size, m.mouse, m.cheese, m.background) == (5, (0, 0), (2, 3), 3)
    assert m.ascii() == PICTURE.strip()
    e = m.with_cheese(4, 4).without_wall(3, 2).with_wall(0, 4).with_mouse(0, 1)
    assert (e.cheese, e.mouse, bool(e.level.walls[3, 2]), bool(e.level.walls[0, 4])) == ((4, 4), (0, 1), False, True)
    assert m.cheese == (2, 3)  # edits return new mazes
    with pytest.raises(ValueError, match="on a wall"):
        m.with_cheese(1, 2)
    with pytest.raises(ValueError, match="mouse stands there"):
        m.with_wall(0, 0)
    with pytest.raises(ValueError, match="outside the 5x5 maze"):
        m.with_mouse(5, 0)
    with pytest.raises(ValueError, match="exactly one M"):
        ma.Maze.from_ascii(["...", ".C.", "..."])
    with pytest.raises(ValueError, match="unknown maze characters"):
        ma.Maze.from_ascii(["M..", ".x.", "..."])
    with pytest.raises(ValueError, match="not a maze file"):
        ma.Maze.from_json('{"rows": []}')
    with pytest.raises(ValueError, match="invalid JSON"):
        ma.Maze.from_json("{")


@pytest.fixture(scope="module")
def agent():
    return ma.load_agent()


def test_the_agent_answers_as_the_net_does_on_real_procgens_frame(agent):
    """act_probs / run_with_cache on edited mazes == the network applied to the frame real procgen renders."""
    require_module("procgen", "real procgen renders the reference frame")
    from mazeagent.procgen import ProcgenMaze

    base = ma.Maze.from_ascii(PICTURE.splitlines(), background=2)
    for m in (base, base.with_cheese(4, 4), base.with_mouse(4, 1), ma.Maze.from_seed(7)):
        with ProcgenMaze(1, 0) as env:
            env.write_level(0, m.level, background=m.background, reflected=False)
            frame = env.observe()[1]
        logits, _ = agent.net.apply(agent.params, frame)
        got = agent.act_probs(m)
        assert list(got) == list(GROUP_NAMES)
        np.testing.assert_allclose(list(got.values()), np.asarray(group_probs(logits))[0], atol=1e-5)
        logits_c, cache = agent.run_with_cache(m, ["embedder.block2.res1.resadd_out"])
        np.testing.assert_allclose(logits_c, np.asarray(logits)[0], atol=1e-4)
        assert cache["embedder.block2.res1.resadd_out"].shape[:2] == (16, 16)


def test_vector_field_and_patches(agent):
    m = ma.Maze.from_ascii(PICTURE.splitlines())
    vf = agent.vector_field(m)
    assert len(vf.squares) == int((~m.level.walls).sum()) - 1  # every open square but the cheese's
    sq = (4, 1)
    np.testing.assert_allclose(list(agent.act_probs(m, sq).values()), vf.at(inner_to_world(sq, 5)), atol=1e-6)
    # a planted patch: policy logits x 0 -> uniform over the 15 actions, so each group gets its share
    from mazeagent.probes.interventions import multiply

    flat = {"fc_policy_out": multiply(range(15), 15, pos=0.0)}
    uniform = [len(ACTION_GROUPS[g]) / 15 for g in GROUP_NAMES]
    with agent.patched(flat) as patched:
        np.testing.assert_allclose(list(patched.act_probs(m).values()), uniform, atol=1e-6)
        np.testing.assert_allclose(agent.vector_field(m).probs, np.tile(uniform, (len(vf.squares), 1)), atol=1e-6)
        flat_vf = agent.vector_field(m)
    assert agent.hooks is None
    np.testing.assert_allclose(agent.vector_field(m).probs, vf.probs)
    d = flat_vf - vf  # a field difference, drawable like a field
    np.testing.assert_allclose(d.probs, flat_vf.probs - vf.probs)
    quiver = d.plot().axes[0].collections[0]
    np.testing.assert_allclose(np.asarray(quiver.U), d.arrows[:, 0])
    with pytest.raises(ValueError, match="holds the cheese"):
        agent.act_probs(m, m.cheese)
    with pytest.raises(FileNotFoundError):
        ma.load_agent("/nonexistent/agent.pth")


def test_a_published_style_pth_loads_directly(tmp_path):
    """A scale-1 .pth (random weights: the published files cannot be fetched here) loads as an agent that answers
    exactly as the params it was written from."""
    import jax
    import jax.numpy as jnp

    from mazeagent.nets.torch_io import save_torch_checkpoint
    from mazeagent.ppo.config import preset
    from mazeagent.ppo.train import make_net

    cfg = preset("paper").replace(net_scale=1)
    net = make_net(cfg)
    params = net.init(jax.random.PRNGKey(3), jnp.zeros((1, 64, 64, 3), jnp.uint8))
    save_torch_checkpoint(params, tmp_path / "model_rand_region_5.pth")
    loaded = ma.load_agent(tmp_path / "model_rand_region_5.pth")
    assert loaded.config.rand_region == 5 and loaded.config.net_scale == 1
    m = ma.Maze.from_seed(11)
    want = ma.Agent(net, params, cfg).act_probs(m)
    np.testing.assert_allclose(list(loaded.act_probs(m).values()), list(want.values()), atol=1e-6)
    # every --checkpoint option reads a .pth the way import-torch converts it
    from mazeagent.ppo.checkpoint import load_policy
    from mazeagent.ppo.pth import import_torch

    _, imported, imported_cfg = load_policy(import_torch(tmp_path / "model_rand_region_5.pth", tmp_path / "ckpt"))
    assert imported_cfg == loaded.config
    for a, b in zip(jax.tree.leaves(imported), jax.tree.leaves(loaded.params), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(FileNotFoundError, match="no such .pth"):
        load_policy(tmp_path / "missing.pth")
    from mazeagent.experiments.sizes import training_max_size

    assert training_max_size(tmp_path / "model_rand_region_5.pth") is None  # published agents saw every size


def test_cheese_vector_patch_and_channel_heatmap(agent):
    """Subtracting a maze's own cheese vector at the start makes the agent see the maze as if without cheese (the
    vector is exactly that difference, so at the start square the patched logits equal the cheeseless ones)."""
    layer = "embedder.block2.res1.resadd_out"
    m = ma.Maze.from_seed(5)
    without = agent.run_with_cache(m.without_cheese(), [layer])[0]
    with agent.patched(ma.cheese_vector(agent, m, coeff=-1.0, layer=layer)):
        patched, cache = agent.run_with_cache(m, [layer])
    np.testing.assert_allclose(patched, without, atol=1e-4)
    plain, cache = agent.run_with_cache(m, [layer])
    assert np.abs(plain - without).max() > 1e-3  # the cheese matters to this net, so the check above has teeth
    fig = ma.plot_channel(m, cache, layer, 3)
    heat = fig.axes[0].get_images()[1].get_array()
    np.testing.assert_allclose(np.asarray(heat), cache[layer][..., 3])
    with pytest.raises(ValueError, match="not in the cache"):
        ma.plot_channel(m, cache, "embedder.block3.res1.resadd_out", 0)
    with pytest.raises(ValueError, match="channel must be"):
        ma.plot_channel(m, cache, layer, 999)
    with pytest.raises(ValueError, match="no cheese"):
        ma.cheese_vector(agent, m.without_cheese())


def test_procgen_state_bytes_and_saved_state_files(tmp_path):
    """Mazes read from real procgen's state bytes (and a pickle of them) are the levels procgen is playing; a pickle
    that would call a function is refused without running it."""
    require_module("procgen", "real procgen writes the state bytes")
    import pickle

    from mazeagent.procgen import ProcgenMaze

    with ProcgenMaze(3, 21) as env:
        states = [env.get_state_bytes(i) for i in range(3)]
        levels = [env.read_level(i) for i in range(3)]
    for data, lv in zip(states, levels, strict=True):
        m = ma.Maze.from_state_bytes(data)
        assert m.level == lv.level and m.background == lv.background and m.level.seed == lv.level_seed
    (tmp_path / "mazes.pkl").write_bytes(pickle.dumps(states))
    assert [m.level for m in ma.load_saved_states(tmp_path / "mazes.pkl")] == [lv.level for lv in levels]

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps([states[0], Boom()]))
    with pytest.raises(ValueError, match="refusing to load"):
        ma.load_saved_states(tmp_path / "evil.pkl")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "ints.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="expected procgen state bytes"):
        ma.load_saved_states(tmp_path / "ints.pkl")
