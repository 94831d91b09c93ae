"""`mazeagent view` over real HTTP: the real server (standard library, a thread) with the bundled agent; every
answer is checked against the notebook API on the same maze, every bad request against its exact message."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

import mazeagent as ma
from mazeagent.maze.level import WORLD, inner_to_world, world_to_pixel_box
from mazeagent.nets.hooks import DEFAULT_LAYER, hook_shapes
from mazeagent.viewer.server import MAX_BODY, POST, start
from mazeagent.viewer.session import Viewer


@pytest.fixture(scope="module")
def served():
    agent = ma.load_agent()
    viewer = Viewer(agent, ma.Maze.from_seed(0))
    server, thread = start(viewer)  # port 0: a free one
    yield agent, server.url.rstrip("/")
    server.shutdown()
    server.server_close()
    thread.join(10)


def call(base: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, object]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            ctype, payload = r.headers["Content-Type"], r.read()
            return r.status, json.loads(payload) if ctype == "application/json" else payload.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ok(base: str, path: str, body=None) -> dict:
    status, out = call(base, path, body)
    assert status == 200, out
    return out


def obj(maze: ma.Maze) -> dict:
    return json.loads(maze.to_json())


def test_binds_localhost_by_default_and_serves_the_page_without_network(served):
    from mazeagent.cli import build_parser

    _, base = served
    assert base.startswith("http://127.0.0.1:")
    assert build_parser().parse_args(["view"]).host == "127.0.0.1"
    page = ok(base, "/")
    assert '<script src="viewer.js">' in page and '<link rel="stylesheet" href="viewer.css">' in page
    for name in ("/", "/viewer.js", "/viewer.css"):
        text = ok(base, name)
        assert "http://" not in text and "https://" not in text and "//cdn" not in text  # nothing fetched


def test_info_lists_the_agents_spatial_layers_and_the_first_maze(served):
    agent, base = served
    info = ok(base, "/api/info")
    shapes = hook_shapes(widths=tuple(agent.net.channel_widths))
    assert [(x["name"], tuple(x["shape"])) for x in info["layers"]] == [
        (n, s) for n, s in shapes.items() if len(s) == 3]
    assert info["default_layer"] == DEFAULT_LAYER
    assert ma.Maze.from_json(json.dumps(info["maze"])) == ma.Maze.from_seed(0)
    assert ok(base, "/api/maze?seed=5")["maze"] == obj(ma.Maze.from_seed(5))


def test_edits_change_the_maze_as_the_api_does(served):
    _, base = served
    m = ma.Maze.from_seed(0)
    wall = next((r, c) for r in range(m.size) for c in range(m.size) if m.level.walls[r, c])
    open_ = next((r, c) for r in range(m.size) for c in range(m.size)
                 if not m.level.walls[r, c] and (r, c) not in (m.mouse, m.cheese))
    cases = [("toggle_wall", wall, m.without_wall(*wall)), ("toggle_wall", open_, m.with_wall(*open_)),
             ("move_cheese", open_, m.with_cheese(*open_)), ("move_mouse", open_, m.with_mouse(*open_)),
             ("remove_cheese", None, m.without_cheese())]
    for op, sq, want in cases:
        out = ok(base, "/api/edit", {"maze": obj(m), "op": op, "square": None if sq is None else list(sq)})
        assert out["maze"] == obj(want), op


def test_the_view_is_the_apis_field_probabilities_and_activation(served):
    agent, base = served
    m = ma.Maze.from_seed(0).without_wall(1, 0)
    layer = "embedder.block1.res1.resadd_out"  # any spatial layer but the default one
    channel = hook_shapes(widths=tuple(agent.net.channel_widths))[layer][-1] - 1
    out = ok(base, "/api/view", {"maze": obj(m), "layer": layer, "channel": channel})
    vf = agent.vector_field(m)
    margin = (WORLD - m.size) // 2
    np.testing.assert_array_equal(np.array(out["field"]["squares"]) + margin, vf.squares)
    np.testing.assert_array_equal(np.array(out["field"]["probs"], np.float32), vf.probs)
    np.testing.assert_allclose(list(out["act_probs"].values()), list(agent.act_probs(m).values()), atol=1e-5)
    assert list(out["act_probs"]) == ["left", "down", "up", "right", "noop"]
    _, cache = agent.run_with_cache(m)
    np.testing.assert_array_equal(np.array(out["activation"]["values"], np.float32), cache[layer][..., channel])
    top, _, left, _ = world_to_pixel_box(inner_to_world((m.size - 1, 0), m.size))
    _, bottom, _, right = world_to_pixel_box(inner_to_world((0, m.size - 1), m.size))
    assert out["activation"]["extent"] == [top, bottom, left, right]
    assert out["patched"] is None and out["maze"] == obj(m)
    again = ok(base, "/api/view", {"maze": obj(m), "layer": layer, "channel": channel})
    assert again["ms"]["original_cached"] and again["field"] == out["field"]


def test_patched_views_are_the_apis_patched_fields(served):
    agent, base = served
    m = ma.Maze.from_seed(0)
    zero = ok(base, "/api/view", {"maze": obj(m), "patch": {"kind": "cheese_vector", "coeff": 0.0}})
    np.testing.assert_allclose(zero["patched"]["field"]["probs"], zero["field"]["probs"], atol=1e-6)
    assert zero["patched"]["field"]["squares"] == zero["field"]["squares"]
    out = ok(base, "/api/view", {"maze": obj(m), "patch": {"kind": "cheese_vector", "coeff": -1.0}})
    with agent.patched(ma.cheese_vector(agent, m, coeff=-1.0)):
        np.testing.assert_allclose(out["patched"]["field"]["probs"], agent.vector_field(m).probs, atol=1e-6)
    target = (m.size - 1, m.size - 1)
    clamp = {"kind": "clamp", "layer": DEFAULT_LAYER, "channel": 1, "square": list(target), "value": 5.5}
    out = ok(base, "/api/view", {"maze": obj(m), "channel": 1, "patch": clamp})
    with agent.patched(ma.clamp_channel(agent, m, target, 1, 5.5)):
        np.testing.assert_allclose(out["patched"]["field"]["probs"], agent.vector_field(m).probs, atol=1e-6)
        _, cache = agent.run_with_cache(m)
    heat = np.array(out["patched"]["activation"]["values"], np.float32)
    np.testing.assert_array_equal(heat, cache[DEFAULT_LAYER][..., 1])
    assert heat.max() == pytest.approx(5.5)  # the clamped cell shows in the patched heatmap


def test_episodes_are_the_apis_rollouts(served):
    agent, base = served
    m = ma.Maze.from_seed(0)
    for seed, greedy in ((3, False), (0, True)):
        out = ok(base, "/api/episode", {"maze": obj(m), "seed": seed, "greedy": greedy, "steps": 60})
        run = agent.play(m, 60, seed=seed, greedy=greedy)
        assert out["actions"] == run.actions and out["squares"] == run.squares.tolist()
        assert out["steps"] == len(out["squares"]) - 1 == run.steps and out["cheese"] == run.cheese
    clamp = {"kind": "clamp", "channel": 0, "square": [m.size - 1, 0], "value": 5.5}
    out = ok(base, "/api/episode", {"maze": obj(m), "seed": 3, "steps": 60, "patch": clamp})
    with agent.patched(ma.clamp_channel(agent, m, (m.size - 1, 0), 0)):
        assert out["actions"] == agent.play(m, 60, seed=3).actions


def test_save_and_load_use_the_maze_file_format(served, tmp_path):
    _, base = served
    m = ma.Maze.from_seed(2).with_cheese(0, 2)
    saved = ok(base, "/api/save", {"maze": obj(m)})
    assert saved["text"] == m.to_json() + "\n" and saved["filename"] == "maze-2.json"
    path = m.save(tmp_path / "m.json")
    assert ok(base, "/api/load", {"text": path.read_text()})["maze"] == obj(m)


BAD = [  # (path, body, status, message); {m} is the first maze (seed 0, 13x13, mouse (0, 0), cheese (5, 0))
    ("/api/edit", {"maze": "{m}", "op": "toggle_wall", "square": [0, 0]}, 400,
     "cannot close (0, 0): the mouse stands there; move the mouse first"),
    ("/api/edit", {"maze": "{m}", "op": "toggle_wall", "square": [13, 2]}, 400,
     "wall square (13, 2) is outside the 13x13 maze (rows and cols 0..12)"),
    ("/api/edit", {"maze": "{m}", "op": "move_cheese", "square": [-1, 0]}, 400,
     "cheese square (-1, 0) is outside the 13x13 maze (rows and cols 0..12)"),
    ("/api/edit", {"maze": "{m}", "op": "move_cheese", "square": [1, 1]}, 400,
     "cheese square (1, 1) is on a wall; open it first (open_walls) or pick an open square"),
    ("/api/edit", {"maze": "{m}", "op": "move_mouse", "square": [5, 0]}, 400,
     "mouse square (5, 0) holds the cheese; move the cheese first or pass allow_on_cheese=True"),
    ("/api/edit", {"maze": "{m}", "op": "move_mouse", "square": [0.5, 1]}, 400,
     "square must be a [row, col] pair of ints, got [0.5, 1]"),
    ("/api/edit", {"maze": "{m}", "op": "paint"}, 400,
     'op must be one of toggle_wall, move_cheese, move_mouse, remove_cheese; got "paint"'),
    ("/api/edit", {"op": "remove_cheese"}, 400, "missing field 'maze'"),
    ("/api/edit", {"maze": {"format": "mazeagent-maze-v1", "rows_top_first": ["M.", ".."]}, "op": "remove_cheese"},
     400, "bad maze: maze size must be odd and in [3, 25], got 2"),
    ("/api/edit", {"maze": [1, 2], "op": "remove_cheese"}, 400,
     "maze must be a maze object (as Maze.to_json writes), got [1, 2]"),
    ("/api/view", {"maze": "{m}", "layer": "embedder.block2.res1.resad_out"}, 400,
     "unknown hook name 'embedder.block2.res1.resad_out'; did you mean 'embedder.block2.res1.resadd_out' or "
     "'embedder.block3.res1.resadd_out' or 'embedder.block2.res2.resadd_out'?"),
    ("/api/view", {"maze": "{m}", "layer": "embedder.fc_out"}, 400,
     "layer 'embedder.fc_out' is not spatial; a heatmap needs one of the (H, W, C) layers"),
    ("/api/view", {"maze": "{m}", "channel": "{C}"}, 400, "channel must be an int in [0, {C-1}], got {C}"),
    ("/api/view", {"maze": "{m}", "patch": {"kind": "cheese_vector", "coeff": 11}}, 400,
     "coeff must be a number in [-10, 10], got 11"),
    ("/api/view", {"maze": "{m}", "patch": {"kind": "clamp", "channel": 0, "square": [13, 0], "value": 1}}, 400,
     "clamp square (13, 0) is outside the 13x13 maze (rows and cols 0..12)"),
    ("/api/view", {"maze": "{m}", "patch": {"kind": "steer"}}, 400,
     "patch must be null or an object with kind 'cheese_vector' or 'clamp', got {\"kind\": \"steer\"}"),
    ("/api/episode", {"maze": "{m}", "seed": -1}, 400, "seed must be an int in [0, 2147483647], got -1"),
    ("/api/episode", {"maze": "{m}", "steps": 501}, 400, "steps must be an int in [1, 500], got 501"),
    ("/api/episode", {"maze": "{m}", "greedy": "yes"}, 400, 'greedy must be true or false, got "yes"'),
    ("/api/load", {"text": "{not json"}, 400,
     "cannot load the maze: not a maze file (invalid JSON: Expecting property name enclosed in double quotes: "
     "line 1 column 2 (char 1))"),
    ("/api/load", {"text": '{"format": "mazeagent-maze-v1", "rows_top_first": ["M.#", "...", "..."], '
                           '"background": 12}'}, 400,
     "cannot load the maze: not a maze file: background must be an int in [0, 9), got 12"),
    ("/api/nowhere", {}, 404, "unknown route POST /api/nowhere; the API has GET /api/info, GET /api/maze, "
                              "POST /api/edit, POST /api/view, POST /api/episode, POST /api/load, POST /api/save"),
]


@pytest.mark.parametrize("path,body,status,message", BAD, ids=[f"{p}:{m[:40]}" for p, _, _, m in BAD])
def test_bad_requests_get_a_clear_message_and_the_server_keeps_serving(served, path, body, status, message):
    agent, base = served
    c = hook_shapes(widths=tuple(agent.net.channel_widths))[DEFAULT_LAYER][-1]
    text = json.dumps(body).replace('"{m}"', ma.Maze.from_seed(0).to_json()).replace('"{C}"', str(c))
    assert call(base, path, raw=text.encode()) == (status, {"error": message.replace("{C-1}", str(c - 1))
                                                            .replace("{C}", str(c))})
    assert ok(base, "/api/info")["default_layer"] == DEFAULT_LAYER


def test_malformed_http_requests(served):
    _, base = served
    assert call(base, "/api/view", raw=b"{bad") == (400, {"error": "the request body is not valid JSON: Expecting "
                                                                   "property name enclosed in double quotes: line 1 "
                                                                   "column 2 (char 1)"})
    assert call(base, "/api/view", raw=b"[1]") == (400, {"error": "the request body must be a JSON object"})
    assert call(base, "/api/view", raw=b"\xff") == (400, {"error": "the request body is not valid JSON: 'utf-8' "
                                                                   "codec can't decode byte 0xff in position 0: "
                                                                   "invalid start byte"})
    big = b" " * (MAX_BODY + 1)
    assert call(base, "/api/view", raw=big) == (400, {"error": f"request body too large: {MAX_BODY + 1} bytes "
                                                               f"(the limit is {MAX_BODY})"})
    assert call(base, "/nowhere")[0] == 404
    form = urllib.request.Request(base + "/api/view", b"{}", {"Content-Type": "text/plain"})  # a cross-site form
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(form, timeout=30)
    assert (e.value.code, json.loads(e.value.read())) == (
        400, {"error": "a POST body must be sent as Content-Type: application/json"})
    assert call(base, "/api/maze?seed=x") == (400, {"error": "seed must be an int in [0, 2147483647], got 'x'"})
    assert call(base, "/api/view") == (405, {"error": "/api/view takes POST with a JSON body"})
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)  # no Content-Length at all
    conn.putrequest("POST", "/api/view")
    conn.endheaders()
    r = conn.getresponse()
    assert (r.status, json.loads(r.read())) == (400, {"error": "a POST needs a Content-Length header with the "
                                                               "body's size"})
    conn.close()
    assert sorted(POST) == sorted(["/api/edit", "/api/view", "/api/episode", "/api/load", "/api/save"])
    assert ok(base, "/api/info")["default_layer"] == DEFAULT_LAYER


def test_the_command_serves_on_localhost_and_a_taken_port_is_a_clear_error(served):
    _, base = served
    taken = base.rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "mazeagent", "view", "--no-warm", "--seed", "3"]
    bad = subprocess.run([*cmd, "--port", taken], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert f"cannot serve on 127.0.0.1:{taken} (Address already in use); pass --port 0 for a free port" in bad.stderr
    proc = subprocess.Popen([*cmd, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("mazeagent view: http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        assert ok(url, "/api/info")["maze"] == obj(ma.Maze.from_seed(3))
    finally:
        proc.terminate()
        proc.wait(30)
