"""Metrics under gunicorn: every worker's counts summed (prometheus-client's multiprocess mode),
on /metrics with the token and on the master's METRICS_BIND without it."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from tests.conftest import need
from tests.security.test_multiprocess import _free_port, _wait_ready

ROOT = Path(__file__).resolve().parents[2]
HEALTH = re.compile(r'^scanjoin_request_seconds_count\{endpoint="ops\.health",method="GET",status="200"\} (\S+)$', re.M)


def test_counts_of_every_worker_are_summed(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    gunicorn = Path(sys.executable).parent / "gunicorn"
    need(gunicorn.exists(), "gunicorn in the venv")
    shutil.copy(migrated_template, tmp_path / "app.db")
    port, metrics_port, token = _free_port(), _free_port(), secrets.token_urlsafe(32)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "QR_SECRET": secrets.token_urlsafe(48),
        "PII_INDEX_KEY": secrets.token_urlsafe(48),
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SMS_BACKEND": "console",
        "SMS_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": token,
        "METRICS_BIND": f"127.0.0.1:{metrics_port}",
    }
    process = subprocess.Popen(
        [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        before = _health_count(requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text)
        for _ in range(30):  # a new connection each: both workers take some
            assert requests.get(base + "/healthz", timeout=5).status_code == 200
        assert requests.get(base + "/metrics", timeout=5).status_code == 401
        scraped = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert scraped.status_code == 200
        assert _health_count(scraped.text) == before + 30
        private = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert _health_count(private) == before + 30
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _health_count(text: str) -> float:
    match = HEALTH.search(text)
    return float(match.group(1)) if match else 0.0
