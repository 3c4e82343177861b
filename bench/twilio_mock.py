"""A stand-in for Twilio's Messages API on 127.0.0.1 that answers after a set delay.

It accepts `POST /2010-04-01/Accounts/<sid>/Messages.json`, answers 201 with a message
resource, and appends `{"to", "body", "at"}` to an outbox file (the console backend's format),
so the load client reads the codes the same way in both setups.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs


class SlowTwilio(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, outbox: Path, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.outbox, self.delay, self.lock = outbox, delay, threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> SlowTwilio:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: SlowTwilio
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        time.sleep(self.server.delay)
        message = {"to": form.get("To", ""), "body": form.get("Body", ""), "at": time.time()}
        line = json.dumps(message, ensure_ascii=False)
        with self.server.lock, self.server.outbox.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        body = json.dumps(
            {
                "sid": "SM" + secrets.token_hex(16),
                "status": "queued",
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "num_segments": "1",
            }
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return
