"""A local stand-in for a mainland SMS provider's API (Alibaba Cloud, Tencent Cloud).

A threaded http.server on 127.0.0.1 and a free port answers each request with the next
scripted answer (the last one repeats) and records every request, so a test sees what the
provider's own SDK built: the query, headers and body it sent. `hold` keeps each request
waiting until `release` is set (a provider that does not answer in time). Read `requests`
after the `with` block: closing the server waits for every request it took.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ProviderServer:
    script: list[tuple[int, bytes, str]] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hold: bool = False
    port: int = 0

    def answer(self, status: int, body: Any, content_type: str = "application/json") -> ProviderServer:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script.append((status, raw, content_type))
        return self

    def __enter__(self) -> str:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        # Closing joins every request thread, so `requests` is complete after the `with`, even
        # when a client gave up before its request was read.
        self.server.daemon_threads = False
        self.server.block_on_close = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        if not hasattr(self, "server"):
            return  # never started
        self.server.shutdown()
        self.server.server_close()

    def _next(self) -> tuple[int, bytes, str]:
        if not self.script:
            return 500, b"{}", "application/json"
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.requests.append(Seen("POST", parts.path, query, headers, body))
                owner.arrived.set()
                if owner.hold:
                    owner.release.wait(30)
                status, raw, content_type = owner._next()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up first

            def log_message(self, *_args: object) -> None:
                pass

        return Handler
