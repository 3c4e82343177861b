"""Twilio peers for tests: Prism serving Twilio's own API description, and a scripted local stand-in.

Prism (npm `@stoplight/prism-cli`, pinned in package.json) validates each request against
`../shared/twilio-oai/` and answers with the description's examples; it cannot fail with 503
or Twilio error 21610, so `ScriptedTwilio` (a tiny HTTP server on 127.0.0.1) plays those.
Import the fixtures into a test module: `from tests.twilio_mock import prism_api_fixture` (its name
is `prism_api`), `prism_verify_fixture` (`prism_verify`).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from app.services.sms.twilio_transport import ResilientHttpClient
from tests.conftest import ROOT, SHARED, need

PRISM = ROOT / "node_modules" / ".bin" / "prism"
SPECS = SHARED / "twilio-oai"
ACCOUNT_SID = "AC" + "0" * 32
SERVICE_SID = "VA" + "0" * 32
AUTH_TOKEN = "t" * 32
SENDER = "+15005550006"  # Twilio's documented magic test sender, never a real phone
READY_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prism exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"prism not listening after {READY_SECONDS} s: {log.read_text()[-2000:]}")


def _prism(spec_name: str, tmp: Path) -> Iterator[str]:
    need(PRISM.exists(), "Prism is not installed: run `npm ci` in the project folder")
    spec = SPECS / spec_name
    need(spec.exists(), f"Twilio's API description is missing: {spec}")
    port, log = free_port(), tmp / f"{spec_name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (fixed arguments, our own files)
            [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        _wait_until_listening(process, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session", name="prism_api")
def prism_api_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of Prism serving api.twilio.com (Messages)."""
    yield from _prism("twilio_api_v2010.json", tmp_path_factory.mktemp("prism-api"))


@pytest.fixture(scope="session", name="prism_verify")
def prism_verify_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of Prism serving verify.twilio.com, with the wrongCode/expired/maxAttempts examples."""
    yield from _prism("twilio_verify_v2_examples.json", tmp_path_factory.mktemp("prism-verify"))


@dataclass
class Sent:
    method: str
    url: str
    data: dict[str, object]
    headers: dict[str, str]


class RecordingHttpClient(ResilientHttpClient):
    """The app's HTTP client, keeping every attempt and adding per-test headers (Prism's `Prefer`)."""

    def __init__(self, timeout: float = 10, **kwargs: Any) -> None:
        self.sleeps: list[float] = []
        kwargs.setdefault("sleep", self.sleeps.append)  # no real waiting between retries
        super().__init__(timeout=timeout, **kwargs)
        self.extra_headers: dict[str, str] = {}
        self.sent: list[Sent] = []

    def _attempt(self, method, url, params, data, headers, auth, deadline, allow_redirects):  # type: ignore[no-untyped-def]
        headers = {**(headers or {}), **self.extra_headers}
        self.sent.append(Sent(method, url, dict(data or {}), headers))
        return super()._attempt(method, url, params, data, headers, auth, deadline, allow_redirects)

    def prefer(self, value: str) -> None:
        self.extra_headers["Prefer"] = value


def twilio_env(env: dict[str, str], **settings: str) -> dict[str, str]:
    """The test env with Twilio credentials of the right shape (Prism checks the SID patterns)."""
    return {
        **env,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_VERIFY_SERVICE_SID": SERVICE_SID,
        **settings,
    }


@dataclass
class ScriptedTwilio:
    """A local HTTP server answering each request with the next scripted (status, body)."""

    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hold: bool = False  # keep each request waiting until `release` is set

    def answer(self, status: int, body: dict[str, Any]) -> ScriptedTwilio:
        self.script.append((status, body))
        return self

    def error(self, status: int, code: int | None = None) -> ScriptedTwilio:
        """A Twilio error body, as api.twilio.com and verify.twilio.com send them."""
        return self.answer(status, {"code": code, "message": "scripted", "more_info": "", "status": status})

    def __enter__(self) -> str:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                scripted.requests.append((self.path, parse_qs(self.rfile.read(length).decode())))
                scripted.arrived.set()
                if scripted.hold:
                    scripted.release.wait(10)
                status, body = scripted.script.pop(0) if scripted.script else (201, _created())
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: object) -> None:
                return None

        return Handler


def _created() -> dict[str, Any]:
    return {"sid": "SM" + "a" * 32, "status": "queued"}
