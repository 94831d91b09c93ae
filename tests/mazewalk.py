"""Plain-Python maze walking for tests: distances and moves written from the rules (docs/maze-spec.md §4), sharing
no code with mazeagent.maze.paths/geometry or mazeagent.experiments.rollouts, so their numbers can be checked against something
independent.

Squares are ``(row, col)`` with row 0 at the bottom; ``open_`` is a 2-D bool array (True = not a wall).
"""
from __future__ import annotations

from collections import deque

import numpy as np

# move characters of an episode's ``actions`` string: left, down, up, right, stay
STEP = {"L": (0, -1), "D": (-1, 0), "U": (1, 0), "R": (0, 1), "N": (0, 0)}


def distances(open_: np.ndarray, start: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Fewest 4-connected steps from ``start`` to every reachable open square (breadth first)."""
    dist, todo = {start: 0}, deque([start])
    while todo:
        r, c = todo.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nb = (r + dr, c + dc)
            if 0 <= nb[0] < open_.shape[0] and 0 <= nb[1] < open_.shape[1] and open_[nb] and nb not in dist:
                dist[nb] = dist[(r, c)] + 1
                todo.append(nb)
    return dist


def path(open_: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """The squares of a shortest walk from ``start`` to ``goal``, both included (the only one in a tree maze)."""
    dist = distances(open_, goal)
    assert start in dist, f"{goal} is not reachable from {start}"
    out = [start]
    while out[-1] != goal:
        r, c = out[-1]
        out.append(min(((r + dr, c + dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))),
                       key=lambda sq: dist.get(sq, 1 << 30)))
    return out


def walk(open_: np.ndarray, start: tuple[int, int], actions: str) -> list[tuple[int, int]]:
    """Squares visited (start first) when playing ``actions``; a move into a wall or off the grid stays put."""
    out = [start]
    for a in actions:
        dr, dc = STEP[a]
        r, c = out[-1][0] + dr, out[-1][1] + dc
        ok = 0 <= r < open_.shape[0] and 0 <= c < open_.shape[1] and open_[r, c]
        out.append((r, c) if ok else out[-1])
    return out


def first_visit(squares: list[tuple[int, int]], target: tuple[int, int]) -> int:
    """Step at which ``squares`` first reach ``target``, or -1."""
    return squares.index(target) if target in squares else -1
