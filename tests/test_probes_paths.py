"""The procgen-tools retargeting protocol on a small random net: the path probability is the geometric mean of the
vector field's probability of each shortest-path move, the per-example cell clamp equals the plain clamp, and
channel lists parse and are checked against the net."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.experiments.report import Report
from mazeagent.env.mazes import generate_mazes, observations
from mazeagent.maze.paths import next_step_towards, shortest_paths
from mazeagent.maze.level import world_to_activation
from mazeagent.nets import HookedImpala, ImpalaCNN
from mazeagent.probes import exp_paths as P
from mazeagent.probes import interventions as I
from mazeagent.probes import vfield as V
from mazeagent.probes.common import ProbeStudy, ProbeStudyConfig

LAYER = "embedder.block2.res1.resadd_out"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    net = ImpalaCNN(widths=(4, 8, 8))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3), jnp.uint8))
    rep = Report(tmp_path_factory.mktemp("rep"))
    return ProbeStudy(net, params, ProbeStudyConfig(max_maze_size=9, progress=False), rep)


def test_path_probability_is_the_geometric_mean_along_the_shortest_path(study):
    mz = study.mazes(3, 1).without_cheese()
    targets = np.stack([np.argwhere(~mz.batch.walls[i])[-1] for i in range(3)]).astype(np.int32)
    got = P.path_probability(study, mz, targets)
    paths, lengths = shortest_paths(mz.batch.walls, mz.mouse, targets)
    moves = next_step_towards(mz.batch, targets)
    for i in range(3):
        vf = V.vector_field(study.net, study.params, mz, i)
        p = [vf.at(sq)[moves[i, sq[0], sq[1]]] for sq in paths[i, :lengths[i]]]
        np.testing.assert_allclose(got[i], np.exp(np.mean(np.log(p))), rtol=1e-4)
    clamped = P.path_probability(study, mz, targets, ((0, 3), 50.0))
    assert clamped.shape == (3,) and not np.allclose(clamped, got)


def test_cell_clamp_matches_the_plain_clamp(study):
    mz = generate_mazes(2, seed=4)
    obs = observations(mz, np.array([0, 1]))
    shape = study.shape
    cells = world_to_activation(mz.cheese, shape[0])
    chans = np.zeros((2, shape[-1]), bool)
    chans[:, [1, 5]] = True
    model = HookedImpala(study.net, study.params, pad=False)
    per_row = model.run_with_hooks(obs, {LAYER: I.ClampCell(chans, cells, np.full(2, 3.0))})[0]
    for k in range(2):
        one = model.run_with_hooks(obs[k:k + 1], {LAYER: I.clamp([1, 5], cells[k], 3.0, shape)})[0]
        np.testing.assert_allclose(np.asarray(per_row)[k], np.asarray(one)[0], atol=1e-5)


def test_channel_lists_parse_and_default_to_the_nets_own_trackers(study):
    assert P.parse_channel_lists("55:5.5; 8,55,77:2.3") == (("channel 55", (55,), 5.5),
                                                           ("channels 8,55,77", (8, 55, 77), 2.3))
    for bad in ("55", "a:1", ":2", ""):
        with pytest.raises(ValueError, match="channel list"):
            P.parse_channel_lists(bad)
    study.cache["tracking"] = {"cheese": {LAYER: (np.arange(8)[None] * np.ones((2, 1), int), np.array([8, 8]))},
                               "top_right": {LAYER: np.zeros((2, 8), bool)}, "layers": (LAYER,), "n_mazes": 2}
    lists = P.channel_lists(study)
    assert [ch for _, ch, _ in lists] == [(7,), (7,), (7,)] and [v for *_, v in lists] == [5.5, 2.3, 1.0]
    from dataclasses import replace

    wide = ProbeStudy(study.net, study.params, replace(study.cfg, retarget_channels=(("x", (55,), 5.5),)),
                      study.report)
    with pytest.raises(ValueError, match="not channels of"):
        P.channel_lists(wide)
