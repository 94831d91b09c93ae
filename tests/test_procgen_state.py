"""procgen maze state bytes: byte-exact round trip on real procgen, levels as docs/maze-spec.md describes them,
clear errors."""
import struct

import numpy as np
import pytest

from mazeagent.maze.level import CHEESE, WALL
from mazeagent.procgen.backend import level_from_grid
from mazeagent.procgen.state import InvalidStateError, parse_state, serialize_state, validate_state
from required import require_module

procgen = require_module("procgen", "state bytes are checked against real procgen")


def raw_env(num, seed, mode="hard"):
    return procgen.ProcgenGym3Env(num=num, env_name="maze", distribution_mode=mode, rand_seed=seed, num_threads=0)


@pytest.fixture(scope="module")
def hard_states():
    env = raw_env(500, seed=11)
    states = env.callmethod("get_state")
    infos = env.get_info()
    env.close()
    return states, infos


def test_round_trip_is_byte_identical_for_500_fresh_levels(hard_states):
    states, _ = hard_states
    assert len({parse_state(b).level_seed for b in states}) == 500
    for b in states:
        assert serialize_state(parse_state(b)) == b


def test_round_trip_mid_episode_and_easy_mode():
    rng = np.random.default_rng(0)
    for mode in ("hard", "easy"):
        env = raw_env(32, seed=5, mode=mode)
        seen_reward = False
        for t in range(60):
            env.act(rng.integers(0, 15, 32).astype(np.int32))
            seen_reward |= bool((env.observe()[0] > 0).any())
            if t % 20 == 19:
                for b in env.callmethod("get_state"):
                    st = parse_state(b)
                    W = 25 if mode == "hard" else 15
                    assert st.distribution_mode == mode and st.grid.shape == (W, W) and st.world_dim == W
                    assert serialize_state(st, distribution_mode=mode) == b
        env.close()
        # a cheese reached means an auto-reset happened before a later check: those states were covered too
        assert seen_reward, f"{mode}: no episode reached the cheese, so no post-reset state was round-tripped"


def test_fields_agree_with_procgen_info_and_maze_spec(hard_states):
    states, infos = hard_states
    sizes = set()
    for b, info in zip(states, infos, strict=True):
        st = parse_state(b)
        assert st.level_seed == info["level_seed"] and st.fields["prev_level_seed"] == info["prev_level_seed"] == 0
        assert st.time == 0 and st.fields["done"] == 1 and not st.reflected and 0 <= st.background < 9
        assert len(st.mt_words("rg_state")) == 625 and 3 < st.mt_words()[-1] <= 624  # draws made by the reset
        n = st.maze_size
        sizes.add(n)
        m = (25 - n) // 2
        assert st.mouse == (m, m)  # world square of inner (0, 0)
        level = level_from_grid(st.grid, n, st.mouse, seed=st.level_seed)
        check_procgen_level(level)
        # everything outside the maze is wall
        outside = np.ones((25, 25), bool)
        outside[m:m + n, m:m + n] = False
        assert (st.grid[outside] == WALL).all() and (st.grid == CHEESE).sum() == 1
    assert sizes == set(range(3, 26, 2))


def check_procgen_level(level):
    """The invariants of a freshly generated level (docs/maze-spec.md §2-§3.1): a Kruskal spanning tree over the
    rooms."""
    n, walls = level.size, level.walls
    assert n % 2 == 1 and 3 <= n <= 25 and level.mouse == (0, 0)
    assert level.cheese is not None and level.cheese != (0, 0)
    assert not walls[0::2, 0::2].any(), "every room (even, even) is open"
    assert walls[1::2, 1::2].all(), "every (odd, odd) square is a wall"
    c = (n + 1) // 2
    open_ = ~walls
    assert open_.sum() == 2 * c * c - 1
    links = (open_[1:] & open_[:-1]).sum() + (open_[:, 1:] & open_[:, :-1]).sum()
    assert links == open_.sum() - 1  # a tree: with the count above, c*c rooms joined by c*c - 1 corridors
    seen, todo = {(0, 0)}, [(0, 0)]  # connected
    while todo:
        r, q = todo.pop()
        for nb in ((r + 1, q), (r - 1, q), (r, q + 1), (r, q - 1)):
            if 0 <= nb[0] < n and 0 <= nb[1] < n and open_[nb] and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    assert len(seen) == open_.sum()


def _aisc_bytes(stock: bytes, extra=(0, 0, 0, 5, 0)) -> bytes:
    # procgenAISC master: 5 option ints right after use_sequential_levels (byte 44 in a "maze" state)
    return stock[:48] + struct.pack("<5i", *extra) + stock[48:]


def test_aisc_layout_round_trip_and_refused_for_stock_procgen(hard_states):
    stock = hard_states[0][0]
    aisc = _aisc_bytes(stock)
    st = parse_state(aisc)
    assert st.layout == "aisc" and st.fields["rand_region"] == 5 and st.fields["step_penalty"] == 0
    assert serialize_state(st, validate=False) == aisc
    assert parse_state(aisc, layout="aisc").grid.tolist() == parse_state(stock).grid.tolist()
    with pytest.raises(InvalidStateError, match="aisc"):
        validate_state(st)
    with pytest.raises(InvalidStateError):
        parse_state(aisc, layout="stock")


def test_truncated_and_garbled_bytes_raise(hard_states):
    b = hard_states[0][1]
    rng = np.random.default_rng(1)
    for cut in [0, 3, 10, 60, 90, len(b) // 2, len(b) - 2600, len(b) - 12, len(b) - 4, len(b) - 1,
                *rng.integers(1, len(b), 40)]:
        with pytest.raises(InvalidStateError):
            parse_state(b[:cut])
    with pytest.raises(InvalidStateError, match="trailing"):
        parse_state(b + b"\0\0\0\0")
    with pytest.raises(InvalidStateError, match="end marker"):
        parse_state(b[:-4] + struct.pack("<i", 7))
    with pytest.raises(InvalidStateError, match="version"):
        parse_state(struct.pack("<i", 3) + b[4:])
    with pytest.raises(InvalidStateError, match="game_name"):
        parse_state(b[:4] + struct.pack("<i", 10 ** 6) + b[8:])
    with pytest.raises(InvalidStateError, match="game_name"):
        parse_state(b[:4] + struct.pack("<i", -5) + b[8:])
    with pytest.raises(InvalidStateError, match="bytes"):
        parse_state("not bytes")
    rejected = 0
    for _ in range(60):  # random corruption anywhere: a clean error, or a valid state that round-trips exactly
        g = bytearray(b)
        g[int(rng.integers(0, len(b)))] ^= 0xFF
        try:
            assert serialize_state(parse_state(bytes(g))) == bytes(g)
        except InvalidStateError:
            rejected += 1
    assert rejected > 40  # most bytes are mt19937 text, where a flipped byte is no longer a digit or space


@pytest.mark.parametrize("edit, match", [
    (lambda st: st.fields.update(game_name="coinrun"), "game name"),
    (lambda st: st.fields.update(background_index=9), "background_index"),
    (lambda st: st.fields.update(maze_dim=4), "maze_dim"),
    (lambda st: st.fields.update(grid_size=600), "grid_size"),
    (lambda st: st.fields.update(rg_state=b"1 2 3"), "mt19937"),
    (lambda st: st.fields.update(cur_time=-1), "cur_time"),
    (lambda st: st.set_mouse((30, 3)), "outside"),
    (lambda st: st.set_mouse((0, 0)), "wall"),
    (lambda st: st.entities[0].update(x=st.entities[0]["x"] + 0.25), "centre"),
    (lambda st: st.entities[0].update(is_reflected=3), "is_reflected"),
    (lambda st: st.entities[0].update(type=5), "PLAYER"),
    (lambda st: st.grid.__setitem__((0, 0), 7), "grid codes"),
    (lambda st: setattr(st, "grid", st.grid[:15, :15]), "grid shape"),
    (lambda st: st.fields.update(level_seed_low=2 ** 40), "fit"),
    (lambda st: st.fields.update(use_generated_assets=1), "use_generated_assets"),
    (lambda st: st.fields.pop("cur_time"), "missing fields"),
    (lambda st: st.entities.clear(), "PLAYER"),
])
def test_validating_writer_rejects_bad_states(hard_states, edit, match):
    st = parse_state(hard_states[0][2])
    edit(st)
    with pytest.raises(InvalidStateError, match=match):
        serialize_state(st)


def test_writer_checks_distribution_mode_and_keeps_edits(hard_states):
    st = parse_state(hard_states[0][3])
    with pytest.raises(InvalidStateError, match="easy"):
        serialize_state(st, distribution_mode="easy")
    edited = st.copy()
    r, c = edited.cheese_squares()[0]
    edited.grid[r, c] = 100
    edited.fields["cur_time"] = 42
    back = parse_state(serialize_state(edited))
    assert back.cheese_squares() == [] and back.time == 42 and st.cheese_squares() == [(r, c)]
