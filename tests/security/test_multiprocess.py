"""Scenario 19 (SECURITY.md B7): gunicorn with 4 workers on the real Redis: a limit holds across them."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.conftest import hidden_fields, need
from tests.security.conftest import spread_phone

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 16  # concurrent, so every worker takes some; the per-IP limit allows 10 an hour


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    need(_redis_up(), "Redis at 127.0.0.1:6379")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    need(gunicorn.exists(), "gunicorn in the venv")
    database = tmp_path / "app.db"
    shutil.copy(migrated_template, database)
    port = _free_port()
    env = {**os.environ, "APP_ENV": "testing", "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": f"sqlite:///{database}",
           "SECRET_KEY": secrets.token_urlsafe(48), "QR_SECRET": secrets.token_urlsafe(48),
           "PII_INDEX_KEY": secrets.token_urlsafe(48), "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "SMS_BACKEND": "console", "SMS_OUTBOX": str(tmp_path / "outbox.jsonl"),
           "REDIS_URL": "redis://127.0.0.1:6379/0", "PROXY_FIX_X_FOR": "1",
           # a budget of its own: the global key never meets another run's
           "SMS_DAILY_BUDGET": str(10**6 + secrets.randbelow(10**6)), "LOG_LEVEL": "WARNING",
           # the limit itself is under test: no human check as the address nears it, nor for the
           # overall conversion, which every run on this Redis adds to
           "CHALLENGE_NEAR_LIMIT_PERCENT": "100", "CONVERSION_MIN_SENDS": str(10**9)}
    process = subprocess.Popen(
        [str(gunicorn), "-w", "4", "-b", f"127.0.0.1:{port}", "--timeout", "60", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base, tmp_path, env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(base: str, process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer in 40 s")


def _join_path(tmp_path: Path, env: dict[str, str]) -> str:
    """Create a place in the server's database and return its join path."""
    from app import create_app
    from config import TestingConfig
    from tests import factories

    app = create_app(TestingConfig({k: v for k, v in env.items() if k != "REDIS_URL"}))
    from sqlmodel import Session

    with Session(app.extensions["db_engine"]) as db:
        station = factories.workplace(db, factories.district(db))
        db.commit()
        path = factories.join_path(app, station)
    app.extensions["db_engine"].dispose()
    return path


@pytest.mark.redis
@pytest.mark.slow
def test_per_ip_limit_holds_across_four_workers(server):
    base, tmp_path, env = server
    path = _join_path(tmp_path, env)
    client_ip = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"  # a fresh key in Redis
    sessions = [requests.Session() for _ in range(CLIENTS)]
    forms = []
    for n, browser in enumerate(sessions):
        page = browser.get(base + path, headers={"X-Forwarded-For": client_ip}, timeout=20)
        assert page.status_code == 200
        forms.append({**hidden_fields(page.text), "name": "王小明", "phone": spread_phone(n + 1),
                      "platform": "meituan", "consent": "y"})
    barrier, statuses = threading.Barrier(CLIENTS), [0] * CLIENTS

    def post(n: int) -> None:
        barrier.wait(timeout=20)
        response = sessions[n].post(base + path, data=forms[n], headers={"X-Forwarded-For": client_ip},
                                    allow_redirects=False, timeout=30)
        statuses[n] = response.status_code

    threads = [threading.Thread(target=post, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [303] * 10 + [429] * 6, statuses
    outbox = (tmp_path / "outbox.jsonl").read_text().splitlines()
    assert len(outbox) == 10, "ten texts in all, whichever worker took each request"
    assert all(json.loads(line)["to"].startswith("+86") for line in outbox)
