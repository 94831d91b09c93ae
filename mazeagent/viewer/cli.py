"""``mazeagent view``: serve the live viewer (docs/viewer.md)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="live maze viewer in the browser: edit a maze, see the policy, patch it")
    p.add_argument("--checkpoint", default=None,
                   help="a run dir, checkpoint dir or published .pth (default: the bundled agent)")
    p.add_argument("--seed", type=int, default=0, help="level seed of the first maze shown")
    p.add_argument("--port", type=int, default=8765, help="port (0: pick a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; the viewer has no authentication)")
    p.add_argument("--no-warm", action="store_true", help="start serving at once; compile on first use instead")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=run)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    """``mazeagent bench view`` (mazeagent/viewer/bench.py)."""
    from mazeagent.viewer.bench import register_bench as register

    register(bench_sub)


def run(args: argparse.Namespace) -> int:
    import threading

    from mazeagent.api import Maze, load_agent
    from mazeagent.viewer.server import ViewerServer
    from mazeagent.viewer.session import Viewer

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    viewer = Viewer(load_agent(args.checkpoint), Maze.from_seed(args.seed))
    try:  # bind first: a taken port fails before any compiling
        server = ViewerServer(viewer, args.host, args.port, args.verbose)
    except OSError as e:
        raise ValueError(f"cannot serve on {args.host}:{args.port} ({e.strerror}); pass --port 0 for a free port"
                         ) from None
    if not args.no_warm:
        print("compiling the network for the first maze ...", flush=True)
        print(f"ready in {viewer.warm():.1f} s; the other maze sizes compile in the background", flush=True)
        threading.Thread(target=viewer.warm, kwargs={"rest": True}, name="warm", daemon=True).start()
    print(f"mazeagent view: {server.url}  (agent: {viewer.agent.source}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
