"""A real Chromium (Debian's, through Playwright) against the app served from a thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app import create_app
from config import TestingConfig
from tests.conftest import need

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):  # type: ignore[no-untyped-def]
    """For pytest-playwright's own fixtures: the system Chromium (playwright install cannot download)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@dataclass
class LiveApp:
    app: Flask
    url: str
    outbox: Path


@pytest.fixture
def live_app(env: dict[str, str], tmp_path: Path) -> Iterator[LiveApp]:
    """The app on 127.0.0.1:<free port>, console SMS into a file, PUBLIC_BASE_URL = the server."""
    holder: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    outbox = tmp_path / "outbox.jsonl"
    app = create_app(
        TestingConfig({**env, "SMS_BACKEND": "console", "SMS_OUTBOX": str(outbox), "PUBLIC_BASE_URL": url})
    )
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveApp(app, url, outbox)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["db_engine"].dispose()


@pytest.fixture
def chromium() -> Iterator[object]:
    """A headless Chromium; skips (fails in CI) when the binary or Playwright is missing."""
    need(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        need(False, "playwright is not installed (pip install playwright)")
        raise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
