"""A real HTTP server on loopback that records the POSTs it gets and answers as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.body)


class Receiver:
    """`statuses` are answered in turn (the last one for every later request); `reply` may judge
    each request instead (returns the status and the body)."""

    def __init__(self, statuses: list[int] | None = None, body: bytes = b"", delay: float = 0.0) -> None:
        self.statuses = list(statuses or [200])
        self.body, self.delay = body, delay
        self.reply: Callable[[Received], tuple[int, bytes]] | None = None
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, within: float) -> list[Received]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        return list(self.received)

    def _answer(self, item: Received) -> tuple[int, bytes]:
        with self.lock:
            self.received.append(item)
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if self.reply is not None:
            return self.reply(item)
        return status, self.body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                item = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length), time.time()
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                status, body = receiver._answer(item)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler


@contextmanager
def receiving(statuses: list[int] | None = None, body: bytes = b"", delay: float = 0.0) -> Iterator[Receiver]:
    receiver = Receiver(statuses, body, delay)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=5)
