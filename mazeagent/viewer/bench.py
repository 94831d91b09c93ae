"""``mazeagent bench view``: how long the viewer takes to show an edit, measured as the page sees it (over HTTP),
in wall time and in this process's CPU time (server and client threads: on a busy machine the wall time also counts
waiting for a core).

Each timed edit makes a maze not seen before (so no cache answers): open one wall, then close one open square, in
turn, so the number of open squares (and with it the field's padded batch) alternates between two sizes that are
compiled before timing starts.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from typing import Any


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("view", help="latency of the live viewer's field updates over HTTP")
    p.add_argument("--checkpoint", default=None, help="run dir, checkpoint dir or .pth (default: the bundled agent)")
    p.add_argument("--seeds", default="0,25", help="comma-separated level seeds of the mazes edited")
    p.add_argument("--edits", type=int, default=12, help="timed edits per maze")
    p.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    p.set_defaults(func=run)


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def _edits(maze: Any, count: int, from_end: bool = False) -> list[tuple[str, list[int]]]:
    """``count`` + 2 toggles (the first two untimed) alternating open-a-wall / close-an-open-square, taking the
    squares in row-major order or (``from_end``) the reverse, so two runs make different mazes."""
    n = maze.size
    taken = {maze.mouse, maze.cheese}
    walls = [(r, c) for r in range(n) for c in range(n) if maze.level.walls[r, c]]
    opens = [(r, c) for r in range(n) for c in range(n) if not maze.level.walls[r, c] and (r, c) not in taken]
    if min(len(walls), len(opens)) < count // 2 + 2:
        raise ValueError(f"a {n}x{n} maze has too few squares for {count} distinct edits")
    if from_end:
        walls, opens = walls[::-1], opens[::-1]
    return [("toggle_wall", list((walls if k % 2 == 0 else opens)[k // 2])) for k in range(count + 2)]


def measure(base: str, maze: Any, edits: int) -> dict[str, list[tuple[float, float]]]:
    """Round trips as (wall ms, CPU ms): edit + view (the field of a new maze), edit + view with the cheese vector
    (both fields), and view with a new coefficient (the patched field only)."""
    from mazeagent.viewer.session import maze_object

    out: dict[str, list[tuple[float, float]]] = {"edit_field": [], "edit_both": [], "slider": []}
    for key, patched in (("edit_field", False), ("edit_both", True)):
        cur = maze_object(maze)
        for k, (op, sq) in enumerate(_edits(maze, edits, from_end=patched)):  # new mazes: no cached field
            t0, c0 = time.perf_counter(), time.process_time()
            cur = _post(base, "/api/edit", {"maze": cur, "op": op, "square": sq})["maze"]
            patch = {"kind": "cheese_vector", "coeff": -1.0 - 0.01 * k} if patched else None
            _post(base, "/api/view", {"maze": cur, "patch": patch})
            if k >= 2:
                out[key].append((1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)))
    cur = maze_object(maze)
    for k in range(edits + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        _post(base, "/api/view", {"maze": cur, "patch": {"kind": "cheese_vector", "coeff": -2.0 + 0.1 * k}})
        if k >= 2:
            out["slider"].append((1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)))
    return out


def run(args: argparse.Namespace) -> int:
    from mazeagent.api import Maze, load_agent
    from mazeagent.viewer.server import start
    from mazeagent.viewer.session import Viewer

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    agent = load_agent(args.checkpoint)
    rows = []
    for seed in seeds:
        maze = Maze.from_seed(seed)
        viewer = Viewer(agent, maze)
        viewer.warm()
        server, thread = start(viewer)
        try:
            ms = measure(server.url.rstrip("/"), maze, args.edits)
        finally:
            server.shutdown()
            server.server_close()
        rows.append({"seed": seed, "size": maze.size, "open_squares": int((~maze.level.walls).sum()),
                     **{k: {"median_ms": round(statistics.median(w for w, _ in v), 1),
                            "max_ms": round(max(w for w, _ in v), 1),
                            "median_cpu_ms": round(statistics.median(c for _, c in v), 1)} for k, v in ms.items()}})
    result = {"agent": agent.source, "widths": list(agent.net.channel_widths), "edits": args.edits, "mazes": rows}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"agent {agent.source} widths {tuple(agent.net.channel_widths)}; over {args.edits} edits: median wall ms "
          "(max) [median CPU ms]")
    names = {"edit_field": "edit + field", "edit_both": "edit + both fields", "slider": "slider (patched field)"}
    for r in rows:
        parts = [f"{name} {r[k]['median_ms']} ({r[k]['max_ms']}) [{r[k]['median_cpu_ms']}]"
                 for k, name in names.items()]
        print(f"  seed {r['seed']} ({r['size']}x{r['size']}, {r['open_squares']} open): " + ", ".join(parts))
    return 0
