"""Fixtures: a migrated database per test, an app on it, no socket leaving the machine."""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from app import create_app
from app.cli.database import upgrade
from app.services.sms import MemoryGateway
from config import TestingConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def need(condition: bool, reason: str) -> None:
    """Skip when a real peer is missing, but fail in CI (REQUIRE_SERVICES=1)."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a host other than loopback fails the test."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address):  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in LOOPBACK:
            raise RuntimeError(f"test tried to reach {host}: tests stay on this machine")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    return {
        "SECRET_KEY": "test-secret-key-" + "s" * 40,
        "QR_SECRET": "test-qr-key-" + "q" * 40,
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PII_INDEX_KEY": "test-index-key-" + "i" * 40,
    }


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy (the real migrations, once)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def env(tmp_path: Path, keys: dict[str, str], migrated_template: Path) -> dict[str, str]:
    database = tmp_path / "test.db"
    shutil.copy(migrated_template, database)
    return {
        **keys,
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{database}",
        "SMS_OUTBOX": str(tmp_path / "outbox.jsonl"),
    }


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[Flask]:
    app = create_app(TestingConfig(env))
    yield app
    app.extensions["db_engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sms(app: Flask) -> MemoryGateway:
    gateway = app.extensions["sms"]
    assert isinstance(gateway, MemoryGateway)
    return gateway


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session of the test's own, outside any app context (requests get theirs)."""
    with Session(app.extensions["db_engine"], expire_on_commit=False) as session:
        yield session


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input[^>]*type="hidden"[^>]*>')
ATTR_RE = re.compile(r'(name|value)="([^"]*)"')


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page (CSRF token, form key), as a browser would send them."""
    fields: dict[str, str] = {}
    for tag in HIDDEN_RE.findall(html):
        attrs = dict(ATTR_RE.findall(tag))
        if "name" in attrs:
            fields[attrs["name"]] = attrs.get("value", "")
    return fields
