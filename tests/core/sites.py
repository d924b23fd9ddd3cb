"""Real HTTP servers on loopback standing in for many web sites: one ThreadingHTTPServer on 127.0.0.1 answers
for every test host by its Host header, and a resolver injected through settings maps the host names to it.
Nothing here ever sends traffic to an address outside 127.0.0.0/8."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drip_s: float = 0.0  # seconds between bytes: a slow host
    delay_s: float = 0.0  # before answering
    head_status: int | None = None  # a server that answers HEAD differently (405: HEAD not allowed)


@dataclass
class Request:
    host: str
    method: str
    path: str
    headers: dict[str, str]
    at: float


class Sites:
    """{host: {path: Page}}; every request is recorded."""

    def __init__(self):
        self.pages: dict[str, dict[str, Page]] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        sites = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, head_only: bool) -> None:
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                with sites.lock:
                    sites.requests.append(
                        Request(host, self.command, self.path, dict(self.headers), time.monotonic())
                    )
                page = sites.pages.get(host, {}).get(self.path) or Page(b"not found", 404)
                etag = page.headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag:
                    page = Page(b"", 304, {"ETag": etag})
                time.sleep(page.delay_s)
                self.send_response(page.head_status if head_only and page.head_status else page.status)
                for name, value in page.headers.items():
                    for one in value.split("\n"):
                        self.send_header(name, one)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                if head_only:
                    return
                try:
                    if page.drip_s:
                        for i in range(len(page.body)):
                            self.wfile.write(page.body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(page.drip_s)
                    else:
                        self.wfile.write(page.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):  # noqa: N802
                self._serve(head_only=False)

            def do_HEAD(self):  # noqa: N802
                self._serve(head_only=True)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Sites:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, host: str, path: str, page: Page | bytes | str) -> None:
        if isinstance(page, str):
            page = page.encode()
        if isinstance(page, bytes):
            page = Page(page)
        self.pages.setdefault(host, {})[path] = page

    def fetched(self, host: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if host is None or r.host == host]


# host name -> address answers (a list consumed one per call when it has several: DNS rebinding)
ANSWERS: dict[str, list[list[str]]] = {}
CALLS: list[str] = []


def resolve(host: str) -> list[str]:
    """The injected resolver (settings.FETCH_RESOLVER): test names only; anything else does not resolve."""
    CALLS.append(host)
    answers = ANSWERS.get(host)
    if not answers:
        raise socket.gaierror(f"{host} is not a test host")
    return answers.pop(0) if len(answers) > 1 else answers[0]
