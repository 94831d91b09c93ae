"""The viewer's HTTP server: the standard library's ``ThreadingHTTPServer``, JSON in and out, files from the
package's ``static/`` folder (no CDN, no build step).

Why the standard library: the page needs a handful of JSON routes and three static files; a web framework would add
a dependency and nothing the routes use. Every failure is an answer, never a dropped connection: a bad request gets
400 (or 404 for an unknown route) with ``{"error": message}``, an unexpected exception 500 with its message, and the
server keeps serving. POSTs must say ``Content-Type: application/json``: a browser sends that type cross-site only
after a CORS preflight, which this server never grants, so another site's page cannot drive the viewer.
"""
from __future__ import annotations

import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mazeagent.viewer.session import Viewer

MAX_BODY = 64 * 1024  # a 25x25 maze file is ~1 KB; anything near this is not a request of the page
STATIC = {"/": "index.html", "/index.html": "index.html", "/viewer.js": "viewer.js", "/viewer.css": "viewer.css"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
POST = {"/api/edit": "edit", "/api/view": "view", "/api/episode": "episode", "/api/load": "load",
        "/api/save": "save"}
GET = ("/api/info", "/api/maze", *STATIC)


def _static(name: str) -> bytes:
    return resources.files("mazeagent.viewer").joinpath("static", name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    """One request: route it, answer JSON (or a static file)."""

    server: ViewerServer
    protocol_version = "HTTP/1.1"  # keep-alive: the page's many small requests reuse one connection

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.path in STATIC:
            name = STATIC[url.path]
            return self._send(HTTPStatus.OK, _static(name), TYPES[name[name.rindex("."):]])
        if url.path == "/api/info":
            return self._answer(self.server.viewer.info)
        if url.path == "/api/maze":
            seed = parse_qs(url.query).get("seed", ["0"])[-1]
            return self._answer(lambda: self.server.viewer.maze_for_seed(seed))
        if url.path in POST:
            return self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{url.path} takes POST with a JSON body")
        self._not_found("GET", url.path)

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length is not None else -1
        except ValueError:
            n = -1
        if n < 0:
            self.close_connection = True
            return self._error(HTTPStatus.BAD_REQUEST, "a POST needs a Content-Length header with the body's size")
        if n > MAX_BODY:
            self.close_connection = True  # the body is not read: it must not be taken for the next request
            if n <= 64 * MAX_BODY:  # drained (unparsed), so the client reads the answer instead of a reset
                left = n
                while left > 0:
                    got = len(self.rfile.read(min(MAX_BODY, left)))
                    left = left - got if got else 0
            return self._error(HTTPStatus.BAD_REQUEST, f"request body too large: {n} bytes (the limit is {MAX_BODY})")
        raw = self.rfile.read(n)
        if path not in POST:
            return self._not_found("POST", path)
        if self.headers.get_content_type() != "application/json":  # other sites' pages cannot send this type
            return self._error(HTTPStatus.BAD_REQUEST, "a POST body must be sent as Content-Type: application/json")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return self._error(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON: {e}")
        if not isinstance(body, dict):
            return self._error(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        self._answer(lambda: getattr(self.server.viewer, POST[path])(body))

    # ---- answers
    def _answer(self, call: Any) -> None:
        try:
            out = call()
        except ValueError as e:  # RequestError, and the API's own validation (edits, squares, channels)
            return self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # noqa: BLE001 -- a bug must not take the server down; the page shows it
            self.log_error("internal error: %r", e)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(e).__name__}: {e}")
        self._send(HTTPStatus.OK, json.dumps(out).encode(), "application/json")

    def _not_found(self, method: str, path: str) -> None:
        routes = ", ".join([f"GET {p}" for p in GET if p.startswith("/api")] + [f"POST {p}" for p in POST])
        self._error(HTTPStatus.NOT_FOUND, f"unknown route {method} {path}; the API has {routes}")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _send(self, status: HTTPStatus, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, viewer: Viewer, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        super().__init__((host, port), Handler)
        self.viewer, self.verbose = viewer, verbose

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def start(viewer: Viewer, host: str = "127.0.0.1", port: int = 0, verbose: bool = False
          ) -> tuple[ViewerServer, threading.Thread]:
    """Serve ``viewer`` from a background thread (port 0: a free one); ``server.shutdown()`` stops it."""
    server = ViewerServer(viewer, host, port, verbose)
    thread = threading.Thread(target=server.serve_forever, name="mazeagent-view", daemon=True)
    thread.start()
    return server, thread
