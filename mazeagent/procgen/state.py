"""procgen maze state bytes (``get_state``/``set_state``) <-> a structured :class:`MazeState`, byte for byte.

Why a validating writer: procgen's deserializer ``fassert``s on malformed input, and a failed ``fassert`` calls
``exit(1)`` -- it kills the whole Python process, losing everything in it. So every state we hand to procgen goes
through :func:`validate_state` first, and a bad edit becomes a ``ValueError`` (:class:`InvalidStateError`) instead.

Layout (docs/maze-spec.md §6; procgen 0.10.7's ``serialize`` of ``Game``, ``BasicAbstractGame``, ``Entity``, ``Grid``
and ``MazeGame``):
native little-endian 4-byte ints and floats, strings as an int length plus raw bytes, the three ``RandGen``s as
``is_seeded`` plus libstdc++'s mt19937 text (624 words and the index). The ``aisc`` layout (procgenAISC master) has
five extra option ints after ``use_sequential_levels``; both write version 0, so :func:`parse_state` tries stock
first and falls back to AISC when the end marker does not line up.

The grid is kept as procgen stores it, ``grid[y, x]`` with y up -- the suite's ``[row, col]`` world convention
(:mod:`mazeagent.maze.level`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mazeagent.maze.level import CHEESE, SPACE, WALL, Square

Layout = Literal["stock", "aisc"]

END_OF_BUFFER = struct.unpack("<i", struct.pack("<I", 0xCAFECAFE))[0]
SERIALIZE_VERSION = 0
PLAYER = 0  # object-ids.h: the mouse entity's type
N_BACKGROUNDS = 9  # topdown_backgrounds (resources.cpp)
GRID_CODES = (WALL, SPACE, CHEESE)
DISTRIBUTION_MODES = {"easy": 0, "hard": 1}  # game.h DistributionMode (memory/extreme are not supported here)
WORLD_DIMS = {0: 15, 1: 25}  # maze.cpp choose_world_dim, by distribution_mode code
_MAX_STATE_SIZE = 2 ** 20  # procgen env.py MAX_STATE_SIZE

_OPTIONS = ("paint_vel_info", "use_generated_assets", "use_monochrome_assets", "restrict_themes", "use_backgrounds",
            "center_agent", "debug_mode", "distribution_mode", "use_sequential_levels")
_AISC_OPTIONS = ("random_percent", "key_penalty", "step_penalty", "rand_region", "continue_after_coin")
_GAME_REST = ("use_easy_jump", "plain_assets", "physics_mode", "grid_step", "level_seed_low", "level_seed_high",
              "game_type", "game_n", "lsrg_is_seeded")
_GAME_TAIL = "f:reward done level_complete action timeout current_level_seed prev_level_seed episodes_remaining " \
             "episode_done last_reward_timer f:last_reward default_action fixed_asset_seed cur_time " \
             "is_waiting_for_step grid_size num_ents"
_ENTITY = "f:x f:y f:vx f:vy f:rx f:ry type image_type image_theme render_z will_erase collides_with_entities " \
          "f:collision_margin f:rotation f:vrot is_reflected fire_time spawn_time life_time expire_time " \
          "use_abs_coords f:friction smart_step avoids_collisions auto_erase f:alpha f:health f:theta f:grow_rate " \
          "f:alpha_decay f:climber_spawn_x"
_BAG = "use_procgen_background background_index f:bg_tile_ratio f:bg_pct_x f:char_dim last_move_action " \
       "move_action special_action f:mixrate f:maxspeed f:max_jump f:action_vx f:action_vy f:action_vrot " \
       "f:center_x f:center_y random_agent_start has_useful_vel_info step_rand_int argen_is_seeded"
_FIXED = "main_width main_height out_of_bounds_object f:unit f:view_dim f:x_off f:y_off f:visibility " \
         "f:min_visibility grid_w grid_h grid_n"
_TAIL = "maze_dim world_dim end_of_buffer"


class _Block:
    """A run of 4-byte scalars read/written with one precompiled ``struct.Struct`` (fast, exact for ints and f32)."""

    def __init__(self, spec: str | tuple[str, ...]):
        items = spec.split() if isinstance(spec, str) else list(spec)
        self.names = tuple(s.removeprefix("f:") for s in items)
        self.struct = struct.Struct("<" + "".join("f" if s.startswith("f:") else "i" for s in items))


_BLOCKS = {
    "stock": _Block(_OPTIONS + _GAME_REST),
    "aisc": _Block(_OPTIONS + _AISC_OPTIONS + _GAME_REST),
}
_TAIL_GAME, _ENT, _BAG_B, _FIXED_B, _TAIL_B = (_Block(s) for s in (_GAME_TAIL, _ENTITY, _BAG, _FIXED, _TAIL))
_INT = struct.Struct("<i")
_FIELD_NAMES = {layout: {"version", "game_name", "lsrg_state", "rg_is_seeded", "rg_state", "argen_state",
                         *blk.names, *_TAIL_GAME.names, *_BAG_B.names, *_FIXED_B.names, *_TAIL_B.names}
                for layout, blk in _BLOCKS.items()}


class InvalidStateError(ValueError):
    """A state that procgen would reject (often by killing the process) or that is not a maze level we can play."""


@dataclass
class MazeState:
    """One env's full serialized state, every field named. Mutate a :meth:`copy`, then :func:`serialize_state`.

    ``fields``: all scalar fields in file order (ints, float32 values as Python floats, ``game_name`` as str,
    the three mt19937 texts ``lsrg_state``/``rg_state``/``argen_state`` as bytes); ``entities``: one dict per
    entity; ``grid``: (world_dim, world_dim) int32 procgen codes, ``[row=y, col=x]``, row 0 at the bottom.
    """

    fields: dict[str, Any]
    entities: list[dict[str, Any]]
    grid: np.ndarray
    layout: Layout = "stock"

    def copy(self) -> "MazeState":
        return MazeState({**self.fields}, [dict(e) for e in self.entities], self.grid.copy(), self.layout)

    # Named views of the fields the suite uses (docs/maze-spec.md §6.3) -------------------------------------
    @property
    def agent_index(self) -> int:
        """procgen's controllable agent is the LAST entity of type PLAYER (``find_entity_index``)."""
        idx = [i for i, e in enumerate(self.entities) if e["type"] == PLAYER]
        if not idx:
            raise InvalidStateError("state has no PLAYER entity (procgen would fassert and exit)")
        return idx[-1]

    @property
    def mouse(self) -> Square:
        """World (row, col) square of the mouse (its entity sits at the cell centre (col+.5, row+.5))."""
        a = self.entities[self.agent_index]
        return (int(np.floor(a["y"])), int(np.floor(a["x"])))

    def set_mouse(self, sq: Square) -> None:
        a = self.entities[self.agent_index]
        a["x"], a["y"] = float(sq[1]) + 0.5, float(sq[0]) + 0.5

    @property
    def reflected(self) -> bool:
        """True = the mouse faces right (it last moved right)."""
        return bool(self.entities[self.agent_index]["is_reflected"])

    @property
    def level_seed(self) -> int:
        return int(self.fields["current_level_seed"])

    @property
    def time(self) -> int:
        return int(self.fields["cur_time"])

    @property
    def background(self) -> int:
        return int(self.fields["background_index"])

    @property
    def maze_size(self) -> int:
        return int(self.fields["maze_dim"])

    @property
    def world_dim(self) -> int:
        return int(self.fields["world_dim"])

    @property
    def distribution_mode(self) -> str:
        code = int(self.fields["distribution_mode"])
        return next((k for k, v in DISTRIBUTION_MODES.items() if v == code), str(code))

    def cheese_squares(self) -> list[Square]:
        return [(int(r), int(c)) for r, c in np.argwhere(self.grid == CHEESE)]

    def mt_words(self, which: str = "rg_state") -> list[int]:
        """An mt19937 text as ints: 624 state words, then the index (the draw count after a fresh seed)."""
        return [int(t) for t in self.fields[which].split()]


# --------------------------------------------------------------------------------------------- parsing
def parse_state(data: bytes, layout: Layout | Literal["auto"] = "auto") -> MazeState:
    """Parse ``get_state`` bytes. ``layout="auto"`` tries stock, then procgenAISC master (docs/maze-spec.md §6.2).

    Raises :class:`InvalidStateError` (a ValueError) naming the problem for truncated or garbled bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidStateError(f"state must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if layout == "auto":
        try:
            return _parse(data, "stock")
        except InvalidStateError as stock_err:
            try:
                return _parse(data, "aisc")
            except InvalidStateError:
                raise stock_err from None
    if layout not in _BLOCKS:
        raise ValueError(f"layout must be 'stock', 'aisc' or 'auto', got {layout!r}")
    return _parse(data, layout)


def _parse(b: bytes, layout: Layout) -> MazeState:
    f: dict[str, Any] = {}
    off = 0

    def block(blk: _Block, into: dict[str, Any], what: str) -> None:
        nonlocal off
        if off + blk.struct.size > len(b):
            raise InvalidStateError(f"state truncated: {what} needs bytes [{off}, {off + blk.struct.size}) "
                                    f"but the state has {len(b)}")
        into.update(zip(blk.names, blk.struct.unpack_from(b, off)))
        off += blk.struct.size

    def integer(what: str) -> int:
        nonlocal off
        if off + 4 > len(b):
            raise InvalidStateError(f"state truncated: {what} at byte {off} but the state has {len(b)}")
        off += 4
        return _INT.unpack_from(b, off - 4)[0]

    def string(what: str) -> bytes:
        nonlocal off
        n = integer(f"length of {what}")
        if n < 0 or off + n > len(b):
            raise InvalidStateError(f"garbled state: {what} claims {n} bytes at offset {off} of {len(b)}")
        off += n
        return b[off - n:off]

    f["version"] = integer("version")
    if f["version"] != SERIALIZE_VERSION:
        raise InvalidStateError(f"garbled state: serialize version {f['version']}, expected {SERIALIZE_VERSION}")
    name = string("game_name")
    try:
        f["game_name"] = name.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidStateError(f"garbled state: game name {name[:32]!r} is not ASCII") from None
    block(_BLOCKS[layout], f, "game options")
    f["lsrg_state"] = string("level-seed generator text")
    f["rg_is_seeded"] = integer("rg_is_seeded")
    f["rg_state"] = string("level generator text")
    block(_TAIL_GAME, f, "game fields")
    n_ents = f["num_ents"]
    if not 0 <= n_ents <= (len(b) - off) // _ENT.struct.size:
        raise InvalidStateError(f"garbled state: num_ents={n_ents} does not fit the {len(b)}-byte state")
    ents = []
    for i in range(n_ents):
        e: dict[str, Any] = {}
        block(_ENT, e, f"entity {i}")
        ents.append(e)
    block(_BAG_B, f, "game fields")
    f["argen_state"] = string("asset generator text")
    block(_FIXED_B, f, "grid header")
    w, h, n = f["grid_w"], f["grid_h"], f["grid_n"]
    if not (0 < w <= 64 and h == w and n == w * h):
        raise InvalidStateError(f"garbled state: grid header w={w} h={h} n={n} (expected a square grid, n = w*h)")
    if off + 4 * n > len(b):
        raise InvalidStateError(f"state truncated: grid data needs {4 * n} bytes at {off}, state has {len(b)}")
    grid = np.frombuffer(b, dtype="<i4", count=n, offset=off).astype(np.int32).reshape(h, w)
    off += 4 * n
    block(_TAIL_B, f, "maze tail")
    if f["end_of_buffer"] != END_OF_BUFFER:
        raise InvalidStateError(f"garbled state: end marker {f['end_of_buffer'] & 0xFFFFFFFF:#x} != 0xcafecafe "
                                f"({layout} layout)")
    if off != len(b):
        raise InvalidStateError(f"garbled state: {len(b) - off} unexpected trailing bytes after the end marker")
    return MazeState(f, ents, grid, layout)


# --------------------------------------------------------------------------------------------- writing
def serialize_state(state: MazeState, *, validate: bool = True, game_name: str = "maze",
                    distribution_mode: str | None = None) -> bytes:
    """The bytes procgen's ``set_state`` reads. Validates first (see :func:`validate_state`) unless told not to."""
    if validate:
        validate_state(state, game_name=game_name, distribution_mode=distribution_mode)
    f = state.fields
    grid = np.ascontiguousarray(state.grid, dtype="<i4")
    out = [_INT.pack(f["version"]), _string(f["game_name"].encode("ascii")), _pack(_BLOCKS[state.layout], f),
           _string(f["lsrg_state"]), _INT.pack(f["rg_is_seeded"]), _string(f["rg_state"]),
           _pack(_TAIL_GAME, {**f, "num_ents": len(state.entities)})]
    out += [_pack(_ENT, e) for e in state.entities]
    out += [_pack(_BAG_B, f), _string(f["argen_state"]),
            _pack(_FIXED_B, {**f, "grid_h": grid.shape[0], "grid_w": grid.shape[1], "grid_n": grid.size}),
            grid.tobytes(), _pack(_TAIL_B, {**f, "end_of_buffer": END_OF_BUFFER})]
    return b"".join(out)


def _pack(blk: _Block, values: dict[str, Any]) -> bytes:
    try:
        return blk.struct.pack(*(values[k] for k in blk.names))
    except KeyError as e:
        raise InvalidStateError(f"state is missing field {e.args[0]!r}") from None
    except struct.error as e:
        bad = [k for k in blk.names if not _fits(blk, k, values[k])]
        raise InvalidStateError(f"state fields {bad} do not fit procgen's 4-byte ints/floats ({e})") from None


def _fits(blk: _Block, name: str, v: Any) -> bool:
    fmt = blk.struct.format[1 + blk.names.index(name)]
    try:
        struct.pack("<" + fmt, v)
        return True
    except struct.error:
        return False


def _is_mt_text(t: Any) -> bool:
    """libstdc++ ``os << mt19937``: 625 space-separated decimal numbers (624 words, then the index).

    Checked with C-speed bytes methods (a regex costs ~25 us per text, this ~10 us). Procgen does not crash on a
    bad text (its ``>>`` just fails), so this guards the level's randomness, not the process.
    """
    return (isinstance(t, bytes) and t.count(b" ") == 624 and not t.translate(None, b"0123456789 ")
            and t[:1].isdigit() and t[-1:].isdigit())


def _string(s: bytes) -> bytes:
    return _INT.pack(len(s)) + s


def validate_state(state: MazeState, *, game_name: str = "maze", distribution_mode: str | None = None) -> None:
    """Raise :class:`InvalidStateError` unless procgen can load ``state`` safely and it is a playable maze level.

    Checks what would make procgen ``fassert``/crash (name, version, grid shape, the PLAYER entity, mouse inside
    the world, background index, grid codes) and what makes the state not a maze level (sizes that disagree with
    the distribution mode, a mouse off the cell centres or on a wall, a malformed mt19937 text).
    """
    f, where = state.fields, "invalid procgen maze state"
    if state.layout not in _FIELD_NAMES or _FIELD_NAMES[state.layout] - f.keys():
        missing = sorted(_FIELD_NAMES.get(state.layout, set()) - f.keys())
        raise InvalidStateError(f"{where}: layout {state.layout!r}, missing fields {missing}")
    if any(set(_ENT.names) - e.keys() for e in state.entities):
        raise InvalidStateError(f"{where}: an entity lacks some of the fields {list(_ENT.names)}")
    if distribution_mode is not None and distribution_mode not in DISTRIBUTION_MODES:
        raise ValueError(f"distribution_mode must be one of {sorted(DISTRIBUTION_MODES)}, got {distribution_mode!r}")
    if state.layout != "stock":
        raise InvalidStateError(f"{where}: {state.layout!r}-layout bytes cannot be loaded into stock procgen "
                                "(its deserializer would misread them and exit)")
    if f.get("version") != SERIALIZE_VERSION:
        raise InvalidStateError(f"{where}: serialize version {f.get('version')} != {SERIALIZE_VERSION}")
    if f.get("game_name") != game_name:
        raise InvalidStateError(f"{where}: game name {f.get('game_name')!r}, this env runs {game_name!r}")
    flags = [k for k in _OPTIONS + _GAME_REST[:4] if k != "distribution_mode" and f[k] not in (0, 1)]
    if flags:
        raise InvalidStateError(f"{where}: option flags {flags} must be 0 or 1")
    for k, v in (("use_generated_assets", 0), ("use_procgen_background", 0), ("grid_step", 1)):
        if f[k] != v:  # procgen fasserts use_generated_assets == 0; maze always runs the other two this way
            raise InvalidStateError(f"{where}: {k}={f[k]}, a procgen maze has {v}")
    code = f["distribution_mode"]
    if code not in WORLD_DIMS:
        raise InvalidStateError(f"{where}: distribution_mode code {code} is not easy (0) or hard (1)")
    if distribution_mode is not None and code != DISTRIBUTION_MODES[distribution_mode]:
        raise InvalidStateError(f"{where}: a {state.distribution_mode!r}-mode state for a {distribution_mode!r} env")
    W = WORLD_DIMS[code]
    grid = np.asarray(state.grid)
    if grid.shape != (W, W):
        raise InvalidStateError(f"{where}: grid shape {grid.shape}, a {state.distribution_mode} maze needs {(W, W)}")
    for k in ("grid_size", "main_width", "main_height", "world_dim"):
        expect = W * W if k == "grid_size" else W
        if f[k] != expect:
            raise InvalidStateError(f"{where}: {k}={f[k]}, expected {expect}")
    if not ((grid == WALL) | (grid == SPACE) | (grid == CHEESE)).all():
        bad_codes = sorted(set(np.unique(grid).tolist()) - set(GRID_CODES))
        raise InvalidStateError(f"{where}: grid codes {bad_codes} are not wall {WALL}, space {SPACE} "
                                f"or cheese {CHEESE}")
    n = f["maze_dim"]
    if not (isinstance(n, int) and n % 2 == 1 and 3 <= n <= W):
        raise InvalidStateError(f"{where}: maze_dim={n}, expected an odd size in [3, {W}]")
    if not 0 <= f["background_index"] < N_BACKGROUNDS:
        raise InvalidStateError(f"{where}: background_index={f['background_index']} not in [0, {N_BACKGROUNDS})")
    if not f["cur_time"] >= 0:
        raise InvalidStateError(f"{where}: cur_time={f['cur_time']} is negative")
    for k in ("done", "level_complete"):
        if f[k] not in (0, 1):
            raise InvalidStateError(f"{where}: {k}={f[k]}, expected 0 or 1")
    for e in state.entities:  # maze's only entity kind is the mouse; other kinds index assets it never loaded
        if (e["type"], e["image_type"], e["image_theme"]) != (PLAYER, PLAYER, 0):
            raise InvalidStateError(f"{where}: entity of type/image {e['type']}/{e['image_type']}/"
                                    f"{e['image_theme']}; a maze holds only PLAYER entities (0/0/0)")
    agent = state.entities[state.agent_index]
    x, y = agent["x"], agent["y"]
    if not (0 <= x < W and 0 <= y < W):
        raise InvalidStateError(f"{where}: mouse at (x={x}, y={y}) is outside the {W}x{W} world")
    if x % 1 != 0.5 or y % 1 != 0.5:
        raise InvalidStateError(f"{where}: mouse at (x={x}, y={y}) is not on a cell centre")
    row, col = int(y), int(x)
    if grid[row, col] == WALL:
        raise InvalidStateError(f"{where}: mouse square (row={row}, col={col}) is a wall")
    if agent["is_reflected"] not in (0, 1):
        raise InvalidStateError(f"{where}: is_reflected={agent['is_reflected']}, expected 0 or 1")
    for k in ("lsrg_state", "rg_state", "argen_state"):
        if not _is_mt_text(f[k]):
            raise InvalidStateError(f"{where}: {k} is not an mt19937 text (624 words and an index)")
    if len(state.entities) * _ENT.struct.size + 4 * W * W + 20_000 > _MAX_STATE_SIZE:
        raise InvalidStateError(f"{where}: {len(state.entities)} entities do not fit procgen's state buffer")
