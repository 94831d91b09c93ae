"""The table renderer against real procgen 0.10.7 frames (bit-exact), its tables against the shipped PNGs, and the
coordinate conventions between a level, our render and the pixel boxes of :mod:`mazeagent.maze.level`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.env import tables as tables_mod
from mazeagent.env.render import composite_mouse, human_view, load_tables, render, render_static
from mazeagent.env.tables import TABLE_KEYS, build_tables, load_table_arrays
from mazeagent.maze.level import CHEESE, SPACE, WALL, Level, inner_to_world, world_to_pixel_box
from mazeagent.procgen import ProcgenMaze

N_LEVELS = 200
_static = jax.jit(render_static)
_batched = jax.jit(jax.vmap(render, in_axes=(0, 0, 0, 0, None, None)), static_argnums=5)


def ours(states, tables, use_backgrounds=True):
    """Our frames for a list of parsed procgen states (grid, mouse, facing, background all read from procgen)."""
    grid = jnp.asarray(np.stack([s.grid for s in states]))
    mouse = jnp.asarray(np.array([s.mouse for s in states], np.int32))
    refl = jnp.asarray(np.array([s.reflected for s in states]))
    bg = jnp.asarray(np.array([s.background for s in states], np.int32))
    return np.asarray(_batched(grid, mouse, refl, bg, tables, use_backgrounds))


def n_exact(a, b):
    return int(np.all(a == b, axis=(1, 2, 3)).sum())


@pytest.mark.parametrize("mode", ["hard", "easy"])
def test_committed_tables_equal_a_fresh_build_from_the_pngs(mode):
    fresh, committed = build_tables(mode), load_table_arrays(mode)
    for k in TABLE_KEYS:
        assert fresh[k].dtype == committed[k].dtype and np.array_equal(fresh[k], committed[k]), k


def test_tables_script_writes_loadable_tables(tmp_path, capsys):
    tables_mod.main(["--out", str(tmp_path), "--mode", "easy"])
    assert capsys.readouterr().out.strip().endswith("render_tables_easy.npz")
    with np.load(tmp_path / "render_tables_easy.npz") as z:
        assert int(z["world"]) == 15 and len(str(z["assets_sha256"])) == 64
        assert np.array_equal(z["texels"], load_table_arrays("easy")["texels"])


@pytest.mark.parametrize("mode", ["hard", "easy"])
def test_initial_frames_and_random_mouse_placements_match_procgen(mode):
    tables = load_tables(mode)
    rng = np.random.default_rng(7)
    with ProcgenMaze(N_LEVELS, seed=4242, distribution_mode=mode) as env:
        states = [env.get_state(i) for i in range(N_LEVELS)]
        assert n_exact(ours(states, tables), env.observe()[1]) == N_LEVELS
        # every mouse square is fair game, including the cheese square; both facings
        for i, st in enumerate(states):
            free = np.argwhere(st.grid != WALL)
            st.set_mouse(tuple(free[rng.integers(len(free))]))
            st.entities[st.agent_index]["is_reflected"] = int(rng.integers(2))
            env.set_state(i, st)
        assert len({s.mouse for s in states}) > 50 and 0 < sum(s.reflected for s in states) < N_LEVELS
        assert n_exact(ours(states, tables), env.observe()[1]) == N_LEVELS


@pytest.mark.parametrize("mode", ["hard", "easy"])
def test_random_grids_with_many_cheeses_match_procgen(mode):
    """Non-maze grids stress every wall/cheese/space combination on the bleed lines and their crossings."""
    tables, n = load_tables(mode), 40
    rng = np.random.default_rng(11)
    with ProcgenMaze(n, seed=5, distribution_mode=mode) as env:
        states = []
        for i in range(n):
            st = env.get_state(i)
            st.grid = rng.choice([WALL, SPACE, CHEESE], size=st.grid.shape, p=[0.45, 0.4, 0.15]).astype(np.int32)
            mouse = tuple(int(v) for v in rng.integers(0, st.grid.shape[0], 2))
            st.grid[mouse] = SPACE
            st.set_mouse(mouse)
            st.entities[st.agent_index]["is_reflected"] = int(rng.integers(2))
            st.fields["background_index"] = int(rng.integers(9))
            env.set_state(i, st)
            states.append(st)
        assert n_exact(ours(states, tables), env.observe()[1]) == n


def test_no_backgrounds_matches_procgen():
    tables = load_tables("hard")
    with ProcgenMaze(24, seed=3, use_backgrounds=False) as env:
        states = [env.get_state(i) for i in range(24)]
        frames = ours(states, tables, use_backgrounds=False)
        assert n_exact(frames, env.observe()[1]) == 24
    assert n_exact(frames, ours(states, tables)) == 0  # the flag really changes the frame


def test_static_frame_plus_mouse_is_the_frame():
    tables = load_tables("hard")
    level = Level(walls=np.zeros((5, 5), bool), mouse=(1, 2), cheese=(4, 4))
    grid, mouse = jnp.asarray(level.world_codes()), jnp.asarray(inner_to_world(level.mouse, 5))
    static = jax.jit(render_static)(grid, 3, tables)
    full = _batched(grid[None], mouse[None], jnp.array([True]), jnp.array([3]), tables, True)[0]
    assert np.array_equal(jax.jit(composite_mouse)(static, mouse, True, tables), full)
    assert not np.array_equal(static, full)  # the mouse is visible in this cell


def test_coordinates_level_square_to_pixel_box():
    """A cheese / mouse at a level square changes only the pixels of that square's box (row 0 = bottom)."""
    tables = load_tables("hard")
    n = 9
    walls = np.zeros((n, n), bool)
    for cheese, mouse in [((0, n - 1), (n - 1, 0)), ((n - 1, 2), (3, n - 1)), ((5, 5), (0, 0))]:
        with_cheese = Level(walls=walls, mouse=mouse, cheese=cheese)
        without = Level(walls=walls, mouse=mouse)
        bg = _static(jnp.asarray(without.world_codes()), 0, tables)
        drawn = _static(jnp.asarray(with_cheese.world_codes()), 0, tables)
        m_world = inner_to_world(mouse, n)
        moused = jax.jit(composite_mouse)(bg, jnp.asarray(m_world), False, tables)
        for frame, sq in ((drawn, inner_to_world(cheese, n)), (moused, m_world)):
            changed = np.argwhere(np.any(np.asarray(frame) != np.asarray(bg), axis=-1))
            top, bottom, left, right = world_to_pixel_box(sq)
            assert len(changed) > 0
            assert ((changed[:, 0] >= top) & (changed[:, 0] < bottom)).all()
            assert ((changed[:, 1] >= left) & (changed[:, 1] < right)).all()
    # inner (0, 0) of a 25x25 maze is the bottom-left world square, drawn in the bottom-left pixels
    assert world_to_pixel_box(inner_to_world((0, 0), 25)) == (61, 64, 0, 3)


def test_env_state_of_a_level_shows_that_level():
    """Level -> env state (mazeagent.env.state_from_level) -> frame: the mouse is drawn in its square's box."""
    from mazeagent.env import EnvParams, observe, state_from_level

    tables, n = load_tables("hard"), 7
    level = Level(walls=np.zeros((n, n), bool), mouse=(n - 1, 2), cheese=(0, n - 1))
    frame = np.asarray(observe(state_from_level(level, EnvParams(), background=4), EnvParams()))
    static = np.asarray(_static(jnp.asarray(level.world_codes()), 4, tables))
    changed = np.argwhere(np.any(frame != static, axis=-1))
    top, bottom, left, right = world_to_pixel_box(inner_to_world(level.mouse, n))
    assert len(changed) and (changed.min(0) >= (top, left)).all() and (changed.max(0) < (bottom, right)).all()


def test_human_view_is_an_exact_integer_upscale():
    obs = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    big = human_view(obs, scale=4)
    assert isinstance(big, np.ndarray) and big.shape == (2, 256, 256, 3)
    assert np.array_equal(big[:, ::4, ::4], obs) and np.array_equal(big[:, 3::4, 3::4], obs)
    assert human_view(jnp.asarray(obs[0])).shape == (512, 512, 3)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="distribution_mode"):
        load_tables("memory")
    with pytest.raises(ValueError, match="grid must be"):
        render_static(jnp.zeros((15, 15), jnp.int32), 0, load_tables("hard"))
    with pytest.raises(ValueError, match="scale"):
        human_view(np.zeros((64, 64, 3), np.uint8), scale=0)
    with pytest.raises(ValueError, match="shape"):
        human_view(np.zeros((32, 32, 3), np.uint8))
