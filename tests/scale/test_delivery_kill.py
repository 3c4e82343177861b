"""Durable delivery with real processes: gunicorn and the task consumer are both killed with SIGKILL
right after the code page answered; the restarted consumer still hands the code to the provider
(the console outbox) within 60 s, and the worker joins with it. On the SQLite queue, and on Redis
when it answers."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.conftest import hidden_fields, need
from tests.security.test_multiprocess import _free_port, _join_path, _redis_up, _wait_ready

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path, migrated_template: Path, queue: str) -> dict[str, str]:
    database = tmp_path / "app.db"
    shutil.copy(migrated_template, database)
    return {
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
        "TASK_QUEUE": queue,
        "CHALLENGE_NEAR_LIMIT_PERCENT": "100",
        "LOG_LEVEL": "WARNING",
    }


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:  # type: ignore[type-arg]
    # A session of its own, so one killpg reaches the master and every worker it forked.
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _kill(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


def _server(env: dict[str, str], port: int) -> subprocess.Popen:  # type: ignore[type-arg]
    return _start([str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"], env)


def _consumer(env: dict[str, str]) -> subprocess.Popen:  # type: ignore[type-arg]
    return _start([str(BIN / "flask"), "--app", "wsgi", "worker", "--workers", "2"], env)


def _code_in_outbox(outbox: Path, phone: str, within: float) -> str | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if outbox.exists():
            for line in outbox.read_text().splitlines():
                text = json.loads(line)
                if text["to"] == phone and (match := re.search(r"\b(\d{6})\b", text["body"])):
                    return match.group(1)
        time.sleep(0.25)
    return None


def _kill_both_then_join(tmp_path: Path, env: dict[str, str], *, consumer_running: bool = True) -> None:
    """`consumer_running` False: the code can only have waited in the queue when the server died."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _server(env, port)
    consumer = _consumer(env) if consumer_running else _start([sys.executable, "-c", "pass"], env)
    processes = [server, consumer]
    try:
        _wait_ready(base, server)
        path = _join_path(tmp_path, env)
        browser = requests.Session()
        page = browser.get(base + path, timeout=20)
        phone = "+8617000000042"
        form = {**hidden_fields(page.text), "name": "王小明", "phone": phone[3:], "platform": "meituan", "consent": "y"}
        answer = browser.post(base + path, data=form, allow_redirects=False, timeout=30)
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/join/code")
        if not consumer_running:
            assert _code_in_outbox(Path(env["SMS_OUTBOX"]), phone, within=0) is None
        for process in (server, consumer):  # every app and consumer process, at once
            _kill(process)

        consumer = _consumer(env)
        processes.append(consumer)
        code = _code_in_outbox(Path(env["SMS_OUTBOX"]), phone, within=60)
        assert code is not None, "the code reached the provider within 60 s of the restart"

        server = _server(env, port)
        processes.append(server)
        _wait_ready(base, server)
        page = browser.get(base + "/join/code", timeout=20)
        done = browser.post(
            base + "/join/code", data={**hidden_fields(page.text), "code": code}, allow_redirects=False, timeout=30
        )
        assert done.status_code == 303 and "/join/code" not in done.headers["Location"], "the join completed"
    finally:
        for process in processes:
            if process.poll() is None:
                _kill(process)


@pytest.mark.slow
def test_a_code_survives_sigkill_of_server_and_consumer_on_sqlite(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    need((BIN / "gunicorn").exists(), "gunicorn in the venv")
    env = _env(tmp_path, migrated_template, f"sqlite:///{tmp_path / 'tasks.db'}")
    _kill_both_then_join(tmp_path, env)


@pytest.mark.slow
def test_a_code_queued_while_no_consumer_runs_survives_sigkill_of_the_server(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    need((BIN / "gunicorn").exists(), "gunicorn in the venv")
    env = _env(tmp_path, migrated_template, f"sqlite:///{tmp_path / 'tasks.db'}")
    _kill_both_then_join(tmp_path, env, consumer_running=False)


@pytest.mark.slow
@pytest.mark.redis
def test_a_code_survives_sigkill_of_server_and_consumer_on_redis(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    need(_redis_up(), "Redis at 127.0.0.1:6379")
    # A queue name of its own per run: huey's keys never meet another run's.
    env = _env(tmp_path, migrated_template, "redis://127.0.0.1:6379/0")
    env["TASK_QUEUE_NAME"] = f"scanjoin-test-{secrets.token_hex(4)}"
    try:
        _kill_both_then_join(tmp_path, env)
    finally:
        from app.services.tasks import make_huey

        make_huey(env["TASK_QUEUE"], env["TASK_QUEUE_NAME"]).storage.flush_all()  # its keys go
