"""Attainment bookkeeping on hand-built mazes with scripted policies whose outcomes are known, and parity of the
memoised rollout engine with real procgen."""
import os

import jax
import numpy as np
import pytest

from mazeagent.experiments import policies as P
from mazeagent.experiments import rollouts as R
from mazeagent.env.mazes import generate_mazes
from mazeagent.maze.batch import Mazes
from mazeagent.maze.level import Level, inner_to_world

# A 5x5 tree maze (inner coordinates, row 0 at the bottom): the bottom row, the right column and the top row form a
# U from the start (0,0) to the top-right (4,4) and on to the top-left; (2,2) hangs off (2,4), (2,0) off (4,0).
PASSAGES = [(0, 1), (0, 3), (1, 4), (3, 4), (4, 3), (4, 1), (2, 3), (3, 0)]


def u_maze(cheese):
    walls = np.ones((5, 5), bool)
    walls[0::2, 0::2] = False
    for sq in PASSAGES:
        walls[sq] = False
    return Level(walls=walls, mouse=(0, 0), cheese=cheese)


def world(sq):
    return np.array(inner_to_world(sq, 5))


def test_always_up_right_reaches_top_right_never_a_cheese_behind_it():
    mazes = Mazes.from_levels([u_maze((2, 0))] * 64)
    ro = R.rollout(P.constant_policy({"up": 1, "right": 1}), mazes, R.RolloutConfig(seed=1, chunk=64), progress=False)
    df = ro.episodes
    assert df["top_right_256"].all() and not df["cheese_500"].any()
    assert not df["neither_256"].any()
    assert (df["t_cheese"] == -1).all() and (df["episode_length"] == 500).all()
    assert (df["t_top_right"] >= 8).all()  # 8 moves is the shortest route
    for i in range(3):  # every recorded path replays to squares that only move up/right and end at the corner
        path = R.replay(mazes, i, df["actions"][i])
        assert set(df["actions"][i]) <= {"U", "R"}
        assert (path[-1] == world((4, 4))).all()
        assert (np.diff(path, axis=0) >= 0).all()


def test_oracle_walks_the_shortest_path_and_passes_the_corner():
    mazes = Mazes.from_levels([u_maze((2, 0)), u_maze((0, 4)), u_maze((2, 2))])
    df = R.rollout(P.oracle_policy("cheese"), mazes, R.RolloutConfig(chunk=64), progress=False).episodes
    assert df["t_cheese"].tolist() == [14, 4, 8]
    assert df["cheese_256"].all() and df["cheese_500"].all()
    assert df["t_top_right"].tolist() == [8, -1, -1]  # only the first route passes the top-right square
    assert df["top_right_256"].tolist() == [True, False, False]
    assert df["actions"][0] == "RRRRUUUULLLLDD"
    assert df["episode_length"].tolist() == [14, 4, 8]
    assert df["region_256"].all() and (df["t_region"] == 0).all()  # a 5x5 maze is all top-right region
    assert (R.replay(mazes, 2, df["actions"][2])[-1] == world((2, 2))).all()


def exact_reach_probability(level, horizon):
    """P(uniform random play reaches the cheese within ``horizon`` steps), by powers of the absorbing chain."""
    probs = {"left": 3 / 15, "down": 1 / 15, "up": 1 / 15, "right": 3 / 15, "noop": 7 / 15}
    deltas = {"left": (0, -1), "down": (-1, 0), "up": (1, 0), "right": (0, 1), "noop": (0, 0)}
    squares = [tuple(s) for s in np.argwhere(~level.walls)]
    index = {s: i for i, s in enumerate(squares)}
    P = np.zeros((len(squares), len(squares)))
    for s in squares:
        if s == level.cheese:
            P[index[s], index[s]] = 1.0
            continue
        for g, p in probs.items():
            t = (s[0] + deltas[g][0], s[1] + deltas[g][1])
            P[index[s], index[t] if t in index else index[s]] += p
    dist = np.zeros(len(squares))
    dist[index[level.mouse]] = 1.0
    return (dist @ np.linalg.matrix_power(P, horizon))[index[level.cheese]]


def test_random_policy_matches_the_exact_absorbing_chain():
    level = u_maze((0, 4))
    n = 1024
    df = R.rollout(P.uniform_policy(), Mazes.from_levels([level] * n), R.RolloutConfig(seed=7, chunk=64),
                   progress=False).episodes
    for h, col in ((20, None), (256, "cheese_256")):
        p = exact_reach_probability(level, h)
        got = ((df["t_cheese"] > 0) & (df["t_cheese"] <= h)).mean() if col is None else df[col].mean()
        assert abs(got - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-9, (h, got, p)
    assert 0 < exact_reach_probability(level, 20) < 0.9  # the check above is not vacuous


def test_same_seed_same_result_and_chunking_does_not_matter():
    mazes = Mazes.from_levels([u_maze((2, 2))] * 40)
    a = R.rollout(P.uniform_policy(), mazes, R.RolloutConfig(seed=3, chunk=64), progress=False).episodes
    b = R.rollout(P.uniform_policy(), mazes, R.RolloutConfig(seed=3, chunk=16), progress=False).episodes
    c = R.rollout(P.uniform_policy(), mazes, R.RolloutConfig(seed=4, chunk=64), progress=False).episodes
    assert a.equals(b)
    assert not a["actions"].equals(c["actions"])


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="horizon"):
        R.RolloutConfig(horizon=600)
    with pytest.raises(ValueError, match="group"):
        P.constant_policy({"jump": 1})
    with pytest.raises(ValueError, match="positive int"):
        generate_mazes(0)


def test_generated_mazes_replay_like_real_procgen():
    """Actions recorded by our rollouts, played in real procgen on the same level seeds, give the same frames as
    our renderer at our replayed squares (dynamics, facing and level generation all agree)."""
    from procgen import ProcgenGym3Env

    from mazeagent.env.render import load_tables, render

    mazes = generate_mazes(3, seed=11)
    df = R.rollout(P.uniform_policy(), mazes, R.RolloutConfig(seed=2, chunk=64), progress=False).episodes
    rep = {"L": 1, "D": 3, "U": 5, "R": 7, "N": 4}
    tables = load_tables("hard")
    frame = jax.jit(lambda g, p, r, b: render(g, p, r, b, tables))
    for i in range(len(mazes)):
        env = ProcgenGym3Env(num=1, env_name="maze", distribution_mode="hard", start_level=int(mazes.seed[i]),
                             num_levels=1)
        walls = mazes.batch.walls[i:i + 1]
        pos, ref = mazes.mouse[i:i + 1].astype(np.int32), np.zeros(1, bool)
        for t, ch in enumerate(df["actions"][i], start=1):
            g = R.MOVE_CHARS.index(ch)
            env.act(np.array([rep[ch]]))
            rew, obs, first = env.observe()
            pos, ref = R.move_host(walls, pos, ref, np.array([g]))
            if first[0]:  # cheese or timeout: procgen has already reset
                got = rew[0] == 10
                assert got == (pos[0] == mazes.cheese[i]).all() and got == (df["t_cheese"][i] == t)
                assert got or t == R.TIMEOUT
                break
            ours = np.asarray(frame(mazes.grid[i], pos[0], ref[0], mazes.background[i]))
            assert np.array_equal(ours, obs["rgb"][0])


_HOST_DEVICES = r"""
import hashlib, sys, jax, numpy as np
from mazeagent.experiments.policies import NetPolicy
from mazeagent.experiments.rollouts import RolloutConfig, rollout
from mazeagent.env.mazes import generate_mazes
from mazeagent.nets import ImpalaCNN
net = ImpalaCNN(widths=(4, 8, 8))
policy = NetPolicy(net, net.init(jax.random.PRNGKey(0), np.zeros((1, 64, 64, 3), np.uint8)))
assert (policy.model.mesh is not None) == (jax.device_count() == 2)
ro = rollout(policy, generate_mazes(40, seed=3), RolloutConfig(seed=1, chunk=32), progress=False)
obs = np.random.default_rng(0).integers(0, 256, (48, 64, 64, 3), dtype=np.uint8)  # 48: split; 47: one device
lg, v = policy.apply(obs)
np.savez(sys.argv[1], lg=np.asarray(lg), v=np.asarray(v), lg47=np.asarray(policy.apply(obs[:47])[0]))
print(jax.device_count(), hashlib.md5(ro.episodes.to_csv().encode()).hexdigest())
"""


def test_policy_split_over_host_devices_matches_one_device(tmp_path):
    """``mazeagent study`` runs with two XLA host devices and splits policy batches over them; episodes must be
    exactly those of one device, logits and values equal to float rounding (batches that don't divide stay on
    one device)."""
    import subprocess
    import sys

    out = []
    for n in (1, 2):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        res = subprocess.run([sys.executable, "-c", _HOST_DEVICES, str(tmp_path / f"{n}.npz")], env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        out.append(res.stdout.split())
    assert [o[0] for o in out] == ["1", "2"]
    assert out[0][1] == out[1][1]  # the same episodes
    one, two = np.load(tmp_path / "1.npz"), np.load(tmp_path / "2.npz")
    for k in ("lg", "v", "lg47"):
        np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=1e-6)


def test_cli_gives_policy_commands_one_host_device_per_core(monkeypatch):
    from mazeagent import cli

    monkeypatch.setattr(cli, "host_device_count", lambda: 2)
    for command, expect in (("study", True), ("bench rollouts", True), ("train", False)):
        monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
        cli._use_host_devices(command)
        flags = os.environ["XLA_FLAGS"]
        assert flags.startswith("--xla_cpu_enable_fast_math=false")
        assert ("--xla_force_host_platform_device_count=2" in flags) == expect
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    cli._use_host_devices("study")
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"  # the user's choice wins
