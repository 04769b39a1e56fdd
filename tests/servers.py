"""A real HTTP server on 127.0.0.1 standing in for the internet in tests."""
import contextlib
import http.server
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Route:
    """What the server answers for one path: ``body`` with ``status`` and
    ``headers``; ``cut_after`` bytes of it, then the connection drops (an
    interrupted transfer that announced the full length). With
    ``hold_after``, each transfer sends that many bytes, sets ``holding``
    and waits for ``release`` before it sends the rest (a download in
    progress, for as long as a test needs one). With ``stall``, the server
    reads the request and never answers (it closes the connection at
    ``release``)."""
    body: bytes = b''
    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)
    cut_after: Optional[int] = None
    hold_after: Optional[int] = None
    stall: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class LoopbackServer:
    """Serves ``routes`` (path without query -> :class:`Route`) on a free
    port of 127.0.0.1 inside a ``with`` block, and records each request as
    ``(method, path)``. It shuts itself down after ``timeout`` seconds
    whatever happens."""

    def __init__(self, routes: Dict[str, Route], timeout: float = 120):
        self.routes = routes
        self.requests: List[tuple] = []
        self.timeout = timeout

    def url(self, path: str = '') -> str:
        return f'http://127.0.0.1:{self.port}{path}'

    def gets(self, path: str) -> int:
        return sum(1 for m, p in self.requests
                   if m == 'GET' and p.split('?')[0] == path)

    def __enter__(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, with_body):
                server.requests.append((self.command, self.path))
                route = server.routes.get(self.path.split('?')[0],
                                          Route(b'not found', 404))
                if route.stall:  # never answers
                    route.holding.set()
                    route.release.wait(server.timeout)
                    self.close_connection = True
                    return
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                self.send_header('Content-Length', str(len(route.body)))
                self.end_headers()
                if not with_body:
                    return
                data = route.body[:route.cut_after]
                with contextlib.suppress(BrokenPipeError,
                                         ConnectionResetError):
                    if route.hold_after is not None:
                        self.wfile.write(data[:route.hold_after])
                        self.wfile.flush()
                        route.holding.set()
                        route.release.wait(server.timeout)
                        data = data[route.hold_after:]
                    self.wfile.write(data)
                if route.cut_after is not None:
                    self.close_connection = True

            def do_GET(self):
                self.answer(True)

            def do_HEAD(self):
                self.answer(False)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()
        self.timer = threading.Timer(self.timeout, self.httpd.shutdown)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        for route in self.routes.values():  # held transfers end with it
            route.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
