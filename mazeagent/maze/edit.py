"""Validated level edits: each returns a new :class:`Level` or raises a ``ValueError`` that says what is wrong.

Squares are inner ``(row, col)`` (row 0 at the bottom; see level.py). Edits never touch procgen: the procgen backend
and the JAX env write a returned level, so a bad edit fails here, before it can reach (and kill) procgen.

Connectivity options, on every edit: ``require_connected`` (every open square reachable from the mouse) and
``require_simply_connected`` (connected and without cycles: the open squares form a tree, as every procgen maze does).
"""
from __future__ import annotations

import numpy as np

from mazeagent.maze.paths import step_distances
from mazeagent.maze.level import Level, Square


def _square(name: str, sq, n: int) -> Square:
    """A validated in-maze (row, col) of ints (no floats, no bools: a silently rounded square is an unseen bug)."""
    try:
        row, col = sq
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (row, col) pair of ints, got {sq!r}") from None
    for v in (row, col):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be a (row, col) pair of ints, got {sq!r}")
    if not (0 <= row < n and 0 <= col < n):
        raise ValueError(f"{name} {(int(row), int(col))} is outside the {n}x{n} maze (rows and cols 0..{n - 1})")
    return (int(row), int(col))


check_square = _square  # public: the same validation for callers that take a square (e.g. a clamp's target)


def _edges(open_: np.ndarray) -> int:
    return int((open_[1:, :] & open_[:-1, :]).sum() + (open_[:, 1:] & open_[:, :-1]).sum())


def unreachable_squares(level: Level) -> list[Square]:
    """Open squares the mouse cannot reach."""
    dist = step_distances(level.walls[None], np.array([level.mouse]))[0]
    return [tuple(int(v) for v in sq) for sq in np.argwhere(~level.walls & (dist < 0))]


def is_connected(level: Level) -> bool:
    return not unreachable_squares(level)


def is_simply_connected(level: Level) -> bool:
    """Connected, and the open squares form a tree (no cycles, so every shortest path is unique)."""
    open_ = ~level.walls
    return is_connected(level) and _edges(open_) == int(open_.sum()) - 1


def check_connectivity(level: Level, *, require_connected: bool = False,
                       require_simply_connected: bool = False) -> Level:
    """Return ``level`` unchanged, or raise ``ValueError`` if it breaks a requested connectivity property."""
    if require_connected or require_simply_connected:
        cut = unreachable_squares(level)
        if cut:
            raise ValueError(f"the maze is not connected: {len(cut)} open square(s), e.g. {cut[0]}, cannot be "
                             f"reached from the mouse at {level.mouse}")
    if require_simply_connected:
        open_ = ~level.walls
        cycles = _edges(open_) - (int(open_.sum()) - 1)
        if cycles:
            raise ValueError(f"the maze is not simply connected: its open squares contain {cycles} independent "
                             "cycle(s) (e.g. an opened wall joined two corridors); a simply-connected maze is a tree")
    return level


def _new(level: Level, walls=None, mouse=None, cheese=..., **req) -> Level:
    out = Level(walls=level.walls if walls is None else walls, mouse=level.mouse if mouse is None else mouse,
                cheese=level.cheese if cheese is ... else cheese, seed=level.seed)
    return check_connectivity(out, **req)


def move_cheese(level: Level, square, *, allow_on_mouse: bool = False, require_connected: bool = False,
                require_simply_connected: bool = False) -> Level:
    """Put the (only) cheese on ``square``, adding it if the level had none."""
    sq = _square("cheese square", square, level.size)
    if level.walls[sq]:
        raise ValueError(f"cheese square {sq} is on a wall; open it first (open_walls) or pick an open square")
    if sq == level.mouse and not allow_on_mouse:
        raise ValueError(f"cheese square {sq} is the mouse's square (the episode would end at the first step); "
                         "pass allow_on_mouse=True if you mean it")
    return _new(level, cheese=sq, require_connected=require_connected,
                require_simply_connected=require_simply_connected)


def remove_cheese(level: Level) -> Level:
    """The level without cheese (episodes then end only at the timeout)."""
    return _new(level, cheese=None)


def move_mouse(level: Level, square, *, allow_on_cheese: bool = False, require_connected: bool = False,
               require_simply_connected: bool = False) -> Level:
    """Put the mouse on ``square``."""
    sq = _square("mouse square", square, level.size)
    if level.walls[sq]:
        raise ValueError(f"mouse square {sq} is on a wall; open it first (open_walls) or pick an open square")
    if sq == level.cheese and not allow_on_cheese:
        raise ValueError(f"mouse square {sq} holds the cheese; move the cheese first or pass allow_on_cheese=True")
    return _new(level, mouse=sq, require_connected=require_connected,
                require_simply_connected=require_simply_connected)


def _squares(squares) -> list:
    """Accept one (row, col) or an iterable of them."""
    if isinstance(squares, np.ndarray):
        squares = squares.tolist()
    if isinstance(squares, (tuple, list)) and len(squares) == 2 and all(
            isinstance(v, (int, np.integer)) for v in squares):
        return [tuple(squares)]
    try:
        return list(squares)
    except TypeError:
        raise ValueError(f"squares must be a (row, col) pair or an iterable of pairs, got {squares!r}") from None


def set_walls(level: Level, squares, blocked: bool, *, require_connected: bool = False,
              require_simply_connected: bool = False) -> Level:
    """Close (``blocked=True``) or open the given squares (one ``(row, col)`` or an iterable of them).

    The mouse's and the cheese's squares cannot be closed; a square already in the requested state is left as is.
    """
    sqs = [_square("wall square", sq, level.size) for sq in _squares(squares)]
    if not sqs:
        raise ValueError("no squares given to edit")
    walls = level.walls.copy()
    for sq in sqs:
        if blocked and sq == level.mouse:
            raise ValueError(f"cannot close {sq}: the mouse stands there; move the mouse first")
        if blocked and sq == level.cheese:
            raise ValueError(f"cannot close {sq}: the cheese is there; move or remove the cheese first")
        walls[sq] = blocked
    return _new(level, walls=walls, require_connected=require_connected,
                require_simply_connected=require_simply_connected)


def open_walls(level: Level, squares, **requirements) -> Level:
    """Open the given squares (see :func:`set_walls`)."""
    return set_walls(level, squares, False, **requirements)


def close_walls(level: Level, squares, **requirements) -> Level:
    """Close the given squares (see :func:`set_walls`)."""
    return set_walls(level, squares, True, **requirements)


def distribution_violations(level: Level, *, check_mouse: bool = True, check_cheese: bool = True) -> list[str]:
    """Why ``level`` could not come from procgen's generator (empty list: it could).

    Checks procgen's invariants (inner squares with both coordinates even are open, both odd are walls), that the
    open squares form a spanning tree, and optionally the start (mouse at (0, 0)) and the cheese (present, not on
    the start square). Works for stock and ``rand_region`` levels alike.
    """
    problems = []
    w = level.walls
    closed_rooms = np.argwhere(w[0::2, 0::2]) * 2
    if len(closed_rooms):
        problems.append(f"{len(closed_rooms)} square(s) with both coordinates even are walls, "
                        f"e.g. {tuple(int(v) for v in closed_rooms[0])}")
    open_pillars = np.argwhere(~w[1::2, 1::2]) * 2 + 1
    if len(open_pillars):
        problems.append(f"{len(open_pillars)} square(s) with both coordinates odd are open, "
                        f"e.g. {tuple(int(v) for v in open_pillars[0])}")
    if not is_simply_connected(level):
        problems.append("the open squares do not form a spanning tree (disconnected or with cycles)")
    if check_mouse and level.mouse != (0, 0):
        problems.append(f"the mouse is at {level.mouse}, not at the start square (0, 0)")
    if check_cheese and level.cheese is None:
        problems.append("the level has no cheese")
    if check_cheese and level.cheese == (0, 0):
        problems.append("the cheese is on the start square (0, 0)")
    return problems


def is_on_distribution(level: Level, *, check_mouse: bool = True, check_cheese: bool = True) -> bool:
    """True when ``level`` satisfies every procgen invariant (see :func:`distribution_violations`)."""
    return not distribution_violations(level, check_mouse=check_mouse, check_cheese=check_cheese)
