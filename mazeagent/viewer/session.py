"""What the viewer answers, one method per route, on top of the notebook API (:mod:`mazeagent.api`).

Why stateless: every request carries the whole maze (the ``Maze.to_json`` object, a few hundred bytes), so the page
owns the state, a reload or a second tab cannot desynchronise it, and every answer is a pure function of the request
that a test can recompute with the API. Every field of a request is checked here; a bad one raises
:class:`RequestError` with a message the page shows as is. The agent is shared by the server's threads, and
``Agent.patched`` changes it for the duration of a call, so all agent calls hold one lock.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mazeagent.api import Agent, Maze, cheese_vector, clamp_channel
from mazeagent.maze.level import OBS, TIMEOUT, WORLD, inner_to_world, world_to_pixel_box
from mazeagent.nets.actions import GROUP_NAMES

EDIT_OPS = ("toggle_wall", "move_cheese", "move_mouse", "remove_cheese")
COEFF_RANGE = (-10.0, 10.0)  # cheese-vector coefficients the slider offers (the published ones are -1 .. +1)
CACHE_SIZE = 64  # unpatched fields kept (a slider drag recomputes only the patched one)


class RequestError(ValueError):
    """A bad request: answered with HTTP 400 and this message."""


# ---------------------------------------------------------------------------------------------- checking fields

def _get(body: dict, key: str, default: Any = ...) -> Any:
    if key not in body:
        if default is ...:
            raise RequestError(f"missing field {key!r}")
        return default
    return body[key]


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    """An int in [lo, hi] (JSON has no ints apart from floats, so 3.0 is refused as much as "3")."""
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RequestError(f"{name} must be an int in [{lo}, {hi}], got {json.dumps(v)}")
    return v


def _number(v: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise RequestError(f"{name} must be a number in [{lo:g}, {hi:g}], got {json.dumps(v)}")
    return float(v)


def _square(v: Any, name: str) -> tuple[int, int]:
    """A [row, col] pair of ints; whether it lies in the maze is the API's check (its message names the maze)."""
    if (not isinstance(v, list) or len(v) != 2
            or any(isinstance(x, bool) or not isinstance(x, int) for x in v)):
        raise RequestError(f"{name} must be a [row, col] pair of ints, got {json.dumps(v)}")
    return (v[0], v[1])


def parse_maze(v: Any) -> Maze:
    """The request's maze: the object ``Maze.to_json`` writes, validated by ``Maze.from_json``."""
    if not isinstance(v, dict):
        raise RequestError(f"maze must be a maze object (as Maze.to_json writes), got {json.dumps(v)[:80]}")
    try:
        return Maze.from_json(json.dumps(v))
    except ValueError as e:
        raise RequestError(f"bad maze: {e}") from None


def maze_object(maze: Maze) -> dict:
    return json.loads(maze.to_json())


# ---------------------------------------------------------------------------------------------------- the viewer

class Viewer:
    """The answers of ``mazeagent view`` for one agent (see the module doc)."""

    def __init__(self, agent: Agent, maze: Maze) -> None:
        from mazeagent.nets.hooks import DEFAULT_LAYER, hook_shapes

        self.agent, self.initial = agent, maze
        shapes = hook_shapes(widths=tuple(agent.net.channel_widths))
        self.layers = {name: s for name, s in shapes.items() if len(s) == 3}  # spatial: a heatmap over the maze
        self.default_layer = DEFAULT_LAYER if DEFAULT_LAYER in self.layers else next(iter(self.layers))
        self._lock = threading.Lock()
        self._fields: OrderedDict[str, dict] = OrderedDict()

    # ---- GET routes
    def info(self) -> dict:
        from mazeagent.probes.common import ProbeStudyConfig

        return {"agent": {"source": self.agent.source, "widths": list(self.agent.net.channel_widths)},
                "layers": [{"name": n, "shape": list(s)} for n, s in self.layers.items()],
                "default_layer": self.default_layer, "maze": maze_object(self.initial),
                "coeff_range": list(COEFF_RANGE), "max_steps": TIMEOUT,
                "retarget_value": ProbeStudyConfig.retarget_value}

    def maze_for_seed(self, seed: Any) -> dict:
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise RequestError(f"seed must be an int in [0, {2 ** 31 - 1}], got {seed!r}") from None
        return {"maze": maze_object(Maze.from_seed(_int(seed, "seed", 0, 2 ** 31 - 1)))}

    # ---- POST routes
    def edit(self, body: dict) -> dict:
        """One validated edit, as the ``Maze.with_*``/``without_*`` methods do it."""
        maze, op = parse_maze(_get(body, "maze")), _get(body, "op")
        if op not in EDIT_OPS:
            raise RequestError(f"op must be one of {', '.join(EDIT_OPS)}; got {json.dumps(op)}")
        if op == "remove_cheese":
            return {"maze": maze_object(maze.without_cheese())}
        r, c = _square(_get(body, "square"), "square")
        if op == "move_cheese":
            out = maze.with_cheese(r, c)
        elif op == "move_mouse":
            out = maze.with_mouse(r, c)
        else:
            n = maze.size
            wall = 0 <= r < n and 0 <= c < n and bool(maze.level.walls[r, c])
            out = maze.without_wall(r, c) if wall else maze.with_wall(r, c)  # out of range: the API's message
        return {"maze": maze_object(out)}

    def view(self, body: dict) -> dict:
        """The field, the action probabilities at the mouse and a channel's heatmap; with a patch, the same again
        under the patch. ``ms`` says how long each part took."""
        maze = parse_maze(_get(body, "maze"))
        layer = self._layer(_get(body, "layer", self.default_layer))
        channel = _int(_get(body, "channel", 0), "channel", 0, self.layers[layer][-1] - 1)
        t0 = time.perf_counter()
        with self._lock:
            hooks = self._patch(maze, _get(body, "patch", None))
            original, cached = self._original(maze, layer, channel)
            t1 = time.perf_counter()
            patched = None
            if hooks is not None:
                with self.agent.patched(hooks):
                    patched = self._look(maze, layer, channel)
            t2 = time.perf_counter()
        return {"maze": maze_object(maze), **original, "patched": patched,
                "ms": {"original": round(1e3 * (t1 - t0), 1), "patched": round(1e3 * (t2 - t1), 1),
                       "original_cached": cached}}

    def episode(self, body: dict) -> dict:
        """An episode from the maze's mouse square (``Agent.play``), under the patch if one is given."""
        maze = parse_maze(_get(body, "maze"))
        seed = _int(_get(body, "seed", 0), "seed", 0, 2 ** 31 - 1)
        greedy = _get(body, "greedy", False)
        if not isinstance(greedy, bool):
            raise RequestError(f"greedy must be true or false, got {json.dumps(greedy)}")
        steps = _int(_get(body, "steps", TIMEOUT), "steps", 1, TIMEOUT)
        with self._lock:
            hooks = self._patch(maze, _get(body, "patch", None))
            if hooks is None:
                run = self.agent.play(maze, steps, seed, greedy)
            else:
                with self.agent.patched(hooks):
                    run = self.agent.play(maze, steps, seed, greedy)
        return {"squares": run.squares.tolist(), "facing": run.facing.tolist(), "actions": run.actions,
                "cheese": run.cheese, "steps": run.steps}

    def load(self, body: dict) -> dict:
        text = _get(body, "text")
        if not isinstance(text, str):
            raise RequestError(f"text must be the maze file's text (a string), got {json.dumps(text)[:80]}")
        try:
            return {"maze": maze_object(Maze.from_json(text))}
        except ValueError as e:
            raise RequestError(f"cannot load the maze: {e}") from None

    def save(self, body: dict) -> dict:
        maze = parse_maze(_get(body, "maze"))
        seed = maze.level.seed
        return {"text": maze.to_json() + "\n", "filename": f"maze-{'edited' if seed is None else seed}.json"}

    # ---- parts
    def _layer(self, name: Any) -> str:
        from mazeagent.nets.hooks import check_names

        if name in self.layers:
            return name
        if not isinstance(name, str):
            raise RequestError(f"layer must be a layer name (a string), got {json.dumps(name)}")
        try:
            check_names([name])
        except ValueError as e:
            raise RequestError(str(e)) from None
        raise RequestError(f"layer {name!r} is not spatial; a heatmap needs one of the (H, W, C) layers")

    def _patch(self, maze: Maze, spec: Any) -> dict | None:
        """Hooks for a patch request: none, the cheese vector with a coefficient, or a channel clamped at a
        square. Call with the lock held (the cheese vector runs the net)."""
        if spec is None:
            return None
        kind = spec.get("kind") if isinstance(spec, dict) else None
        if kind == "cheese_vector":
            coeff = _number(_get(spec, "coeff"), "coeff", *COEFF_RANGE)
            layer = self._layer(_get(spec, "layer", self.default_layer))
            return cheese_vector(self.agent, maze, coeff=coeff, layer=layer)
        if kind == "clamp":
            layer = self._layer(_get(spec, "layer", self.default_layer))
            channel = _int(_get(spec, "channel"), "clamp channel", 0, self.layers[layer][-1] - 1)
            value = _number(_get(spec, "value"), "clamp value", -1e3, 1e3)
            return clamp_channel(self.agent, maze, _square(_get(spec, "square"), "clamp square"), channel, value,
                                 layer)
        raise RequestError(f"patch must be null or an object with kind 'cheese_vector' or 'clamp', got "
                           f"{json.dumps(spec)[:80]}")

    def _original(self, maze: Maze, layer: str, channel: int) -> tuple[dict, bool]:
        """The unpatched view, and whether its field came from the cache (kept per maze: it does not change
        while a slider moves)."""
        key = maze.to_json()
        cached = key in self._fields
        if not cached:
            self._fields[key] = self._field(maze)
            if len(self._fields) > CACHE_SIZE:
                self._fields.popitem(last=False)
        self._fields.move_to_end(key)
        return {**self._fields[key], "activation": self._activation(maze, layer, channel)}, cached

    def _look(self, maze: Maze, layer: str, channel: int) -> dict:
        return {**self._field(maze), "activation": self._activation(maze, layer, channel)}

    def _field(self, maze: Maze) -> dict:
        vf = self.agent.vector_field(maze)
        m = (WORLD - maze.size) // 2
        at_mouse = vf.at(inner_to_world(maze.mouse, maze.size))  # = agent.act_probs(maze), without another batch
        return {"field": {"squares": (vf.squares - m).tolist(), "probs": vf.probs.tolist()},
                "act_probs": dict(zip(GROUP_NAMES, at_mouse.tolist(), strict=True))}

    def _activation(self, maze: Maze, layer: str, channel: int) -> dict:
        """One channel over the whole frame, and where the inner maze lies in the frame (``extent``: pixel
        top, bottom, left, right of the 64x64 observation), so the page can draw each cell over what it sees."""
        _, cache = self.agent.run_with_cache(maze)  # every layer: one compilation serves any layer picked
        top, _, left, _ = world_to_pixel_box(inner_to_world((maze.size - 1, 0), maze.size))
        _, bottom, _, right = world_to_pixel_box(inner_to_world((0, maze.size - 1), maze.size))
        return {"layer": layer, "channel": channel, "values": cache[layer][..., channel].tolist(),
                "extent": [top, bottom, left, right], "frame": OBS}

    # ---- start-up
    def warm_tasks(self, rest: bool = False) -> Iterator[Callable[[], Any]]:
        """Calls that compile what the page needs: the initial maze's view, patched views and episode; with
        ``rest``, instead the field at every other batch size a maze can need, so no later edit waits for a
        compilation. Each task takes the agent's lock on its own, so requests run between them."""
        from mazeagent.probes.vfield import field_probs, open_squares

        maze = self.initial
        obj = maze_object(maze)
        clamp = {"kind": "clamp", "channel": 0, "square": list(maze.mouse), "value": 1.0}
        if not rest:
            yield lambda: self.view({"maze": obj})
            if maze.cheese is not None:
                yield lambda: self.view({"maze": obj, "patch": {"kind": "cheese_vector", "coeff": -1.0}})
            yield lambda: self.view({"maze": obj, "patch": clamp})
            yield lambda: self.episode({"maze": obj})
            return
        mazes, sq = maze.mazes, open_squares(maze.mazes, 0)
        patches = [None, clamp] + ([{"kind": "cheese_vector", "coeff": -1.0}] if maze.cheese is not None else [])
        for k in range(64, WORLD * WORLD + 64, 64):  # field_probs pads to multiples of 64
            for spec in patches:
                def task(k=k, spec=spec):
                    with self._lock:
                        hooks = self._patch(maze, spec)
                        field_probs(self.agent.net, self.agent.params, mazes, np.zeros(k, np.int64),
                                    np.resize(sq, (k, 2)), hooks)
                yield task

    def warm(self, rest: bool = False) -> float:
        """Run :meth:`warm_tasks`; returns the seconds it took."""
        t0 = time.perf_counter()
        for task in self.warm_tasks(rest):
            task()
        return time.perf_counter() - t0
