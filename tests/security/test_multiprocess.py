"""Scenario 19 (docs/security.md B7): gunicorn with 4 workers on the real Redis: a limit holds across them."""

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
from contextlib import contextmanager
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


@contextmanager
def _serving(tmp_path: Path, migrated_template: Path, **extra: str):  # type: ignore[no-untyped-def]
    """gunicorn -w 4 on a copy of the migrated database and the real Redis; yields (base URL, env)."""
    need(_redis_up(), "Redis at 127.0.0.1:6379")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    need(gunicorn.exists(), "gunicorn in the venv")
    database = tmp_path / "app.db"
    shutil.copy(migrated_template, database)
    port = _free_port()
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "QR_SECRET": secrets.token_urlsafe(48),
        "PII_INDEX_KEY": secrets.token_urlsafe(48),
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SMS_BACKEND": "console",
        "SMS_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PROXY_FIX_X_FOR": "1",
        # a budget of its own: the global key never meets another run's
        "SMS_DAILY_BUDGET": str(10**6 + secrets.randbelow(10**6)),
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    process = subprocess.Popen(
        [str(gunicorn), "-w", "4", "-b", f"127.0.0.1:{port}", "--timeout", "60", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base, env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def server(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    # The limit itself is under test: no human check as the address nears it, nor for the
    # overall conversion, which every run on this Redis adds to.
    with _serving(tmp_path, migrated_template, CHALLENGE_NEAR_LIMIT_PERCENT="100", CONVERSION_MIN_SENDS=str(10**9)) as (
        base,
        env,
    ):
        yield base, tmp_path, env


@pytest.fixture
def watched_server(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    # A conversion window of its own length: its keys never meet another run's (the window is
    # part of the key, as the budget is for the global limit).
    with _serving(
        tmp_path,
        migrated_template,
        CHALLENGE_NEAR_LIMIT_PERCENT="100",
        CONVERSION_WINDOW_SECONDS=str(3000 + secrets.randbelow(600)),
    ) as (base, env):
        yield base, tmp_path, env


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
    return _join_paths(tmp_path, env)[0]


def _join_paths(tmp_path: Path, env: dict[str, str]) -> tuple[str, str]:
    """Create two stations in the server's database and return their join paths."""
    from app import create_app
    from config import TestingConfig
    from tests import factories

    app = create_app(TestingConfig({k: v for k, v in env.items() if k != "REDIS_URL"}))
    from sqlmodel import Session

    with Session(app.extensions["db_engine"]) as db:
        district = factories.district(db)
        station = factories.workplace(db, district)
        db.commit()
        other = factories.workplace(db, district, code="PD-ZJ02", name="张江饿了么站")
        db.commit()
        paths = factories.join_path(app, station), factories.join_path(app, other)
    app.extensions["db_engine"].dispose()
    return paths


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
        forms.append(
            {
                **hidden_fields(page.text),
                "name": "王小明",
                "phone": spread_phone(n + 1),
                "platform": "meituan",
                "consent": "y",
            }
        )
    barrier, statuses = threading.Barrier(CLIENTS), [0] * CLIENTS

    def post(n: int) -> None:
        barrier.wait(timeout=20)
        response = sessions[n].post(
            base + path, data=forms[n], headers={"X-Forwarded-For": client_ip}, allow_redirects=False, timeout=30
        )
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


def _post_together(base: str, path: str, clients: list[tuple[str, str]]) -> list[requests.Response]:
    """Fill the form in each (address, phone) session, then send them all at the same moment."""
    sessions = [requests.Session() for _ in clients]
    forms = []
    for browser, (address, phone) in zip(sessions, clients, strict=True):
        page = browser.get(base + path, headers={"X-Forwarded-For": address}, timeout=20)
        forms.append(
            {**hidden_fields(page.text), "name": "王小明", "phone": phone, "platform": "meituan", "consent": "y"}
        )
    barrier, responses = threading.Barrier(len(clients)), [None] * len(clients)

    def post(n: int) -> None:
        barrier.wait(timeout=20)
        responses[n] = sessions[n].post(
            base + path, data=forms[n], headers={"X-Forwarded-For": clients[n][0]}, allow_redirects=False, timeout=30
        )

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses  # type: ignore[return-value]


def _alerts(tmp_path: Path, env: dict[str, str]) -> list[str]:
    from sqlmodel import Session, select

    from app import create_app
    from app.models import AuditEvent
    from app.services.conversion import ALERT_ACTION
    from config import TestingConfig

    app = create_app(TestingConfig({k: v for k, v in env.items() if k != "REDIS_URL"}))
    with Session(app.extensions["db_engine"]) as db:
        kinds = sorted(e.target_type for e in db.exec(select(AuditEvent).where(AuditEvent.action == ALERT_ACTION)))
    app.extensions["db_engine"].dispose()
    return kinds


@pytest.mark.redis
@pytest.mark.slow
def test_conversion_is_shared_by_four_workers_and_alerts_once(watched_server):
    """docs/security.md B6/B7: 20 unanswered codes sent at once through 4 workers are counted as 20,
    the alert is raised once per scope, and then every worker asks for the human check."""
    base, tmp_path, env = watched_server
    path, other_poster = _join_paths(tmp_path, env)
    net = f"198.18.{secrets.randbelow(256)}"
    clients = [(f"{net}.{n + 1}", f"+86170123400{n:02d}") for n in range(20)]  # one prefix
    responses = _post_together(base, path, clients)
    assert [r.status_code for r in responses] == [303] * 20
    assert all(r.headers["Location"].endswith("/join/code") for r in responses), "none saw 20 before it"
    assert _alerts(tmp_path, env) == ["all", "prefix"], "once per scope, whichever workers saw it"
    # Another poster: the first has its 20 unanswered codes (docs/security.md B4) and refuses.
    later = _post_together(base, other_poster, [(f"{net}.{n + 100}", spread_phone(n + 1)) for n in range(4)])
    assert all(r.status_code == 303 and r.headers["Location"].endswith("/join/check") for r in later), [
        (r.status_code, r.headers.get("Location")) for r in later
    ]
    assert len((tmp_path / "outbox.jsonl").read_text().splitlines()) == 20, "no SMS before the check"
    assert _alerts(tmp_path, env) == ["all", "prefix"]
