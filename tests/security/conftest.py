"""Fixtures and flow helpers for the security scenarios (SECURITY.md): CSRF stays on."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from app.models import JoinAttempt, Member, utcnow
from app.services.limits import delay_after
from tests import factories
from tests.conftest import hidden_fields

CODE_RE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def station(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    workplace = factories.workplace(db, district)
    db.commit()
    return workplace


@pytest.fixture
def path(app, station) -> str:  # type: ignore[no-untyped-def]
    return factories.join_path(app, station)


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    """Frozen time that moves only when the test shifts it."""
    with time_machine.travel(utcnow(), tick=False) as traveller:
        yield traveller


def wait_out(clock, failures: int) -> None:  # type: ignore[no-untyped-def]
    """Let the backoff after `failures` wrong codes pass."""
    clock.shift(timedelta(seconds=delay_after(failures) + 1))


def browser(app: Flask, ip: str = "198.51.100.7") -> FlaskClient:
    """A test client that comes from `ip` (the peer address ProxyFix would otherwise replace)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def submit(client: FlaskClient, path: str, phone: str | None = None, **overrides: str | None):  # type: ignore[no-untyped-def]
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    data = {**hidden_fields(page.text), "name": "王小明", "phone": phone or factories.phone(1), "platform": "meituan",
            "consent": "y", **overrides}
    return client.post(path, data={k: v for k, v in data.items() if v is not None})


def send_code(client: FlaskClient, code: str):  # type: ignore[no-untyped-def]
    page = client.get("/join/code")
    return client.post("/join/code", data={**hidden_fields(page.text), "code": code})


def ask_again(client: FlaskClient):  # type: ignore[no-untyped-def]
    page = client.get("/join/code")
    return client.post("/join/resend", data=hidden_fields(page.text))


def code_from(sms) -> str:  # type: ignore[no-untyped-def]
    match = CODE_RE.search(sms.sent[-1].body)
    assert match, "the SMS carries a 6-digit code"
    return match.group(1)


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def members(db) -> list[Member]:  # type: ignore[no-untyped-def]
    db.commit()  # end the test's read snapshot: see what the requests wrote
    db.expire_all()
    return list(db.exec(select(Member)))


def attempts(db) -> list[JoinAttempt]:  # type: ignore[no-untyped-def]
    db.commit()
    db.expire_all()
    return list(db.exec(select(JoinAttempt)))


def spread_phone(n: int) -> str:
    """Test numbers with distinct 7-digit prefixes (factories.phone(n) share one below 10,000)."""
    return factories.phone(n * 10_000)
