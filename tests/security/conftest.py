"""Fixtures and flow helpers for the security scenarios (docs/security.md): CSRF stays on."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from app.models import JoinAttempt, Member, utcnow
from app.services import human_check
from app.services.limits import delay_after
from tests import factories
from tests.conftest import hidden_fields

CODE_RE = re.compile(r"\b(\d{6})\b")
CHECK_PATH = "/join/check"
PICTURES: list[str] = []  # answers of the human-check pictures drawn in the current test, latest last


@pytest.fixture(autouse=True)
def pictures(monkeypatch):  # type: ignore[no-untyped-def]
    """Remember each picture's answer, as a person reading it would."""
    PICTURES.clear()
    draw = human_check.new_answer

    def remembered() -> str:
        PICTURES.append(draw())
        return PICTURES[-1]

    monkeypatch.setattr(human_check, "new_answer", remembered)
    return PICTURES


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


def submit(client: FlaskClient, path: str, phone: str | None = None, *, solve: bool = True, **overrides: str | None):  # type: ignore[no-untyped-def]
    """Fill and send the join form; answer the human check if one is asked for (unless `solve` is off)."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    data = {
        **hidden_fields(page.text),
        "name": "王小明",
        "phone": phone or factories.phone(1),
        "platform": "meituan",
        "consent": "y",
        **overrides,
    }
    response = client.post(path, data={k: v for k, v in data.items() if v is not None})
    return solve_check(client, response) if solve else response


def asked_to_check(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 303 and response.headers.get("Location", "").endswith(CHECK_PATH)


def solve_check(client: FlaskClient, response, answer: str | None = None):  # type: ignore[no-untyped-def]
    """When `response` sends the worker to the human check: read the picture, answer it."""
    if not asked_to_check(response):
        return response
    page = client.get(CHECK_PATH)
    assert page.status_code == 200, page.status_code
    return client.post(CHECK_PATH, data={**hidden_fields(page.text), "answer": answer or PICTURES[-1]})


def send_code(client: FlaskClient, code: str):  # type: ignore[no-untyped-def]
    page = client.get("/join/code")
    return client.post("/join/code", data={**hidden_fields(page.text), "code": code})


def refused_code(client: FlaskClient, code: str, path: str = "/join/code", retry_after: str | None = None):  # type: ignore[no-untyped-def]
    """Post a code that is not accepted: a 303 back to the code page (post/redirect/get, with
    Retry-After when `retry_after`); the followed GET, which shows the words once."""
    response = send_code(client, code) if path == "/join/code" else None
    if response is None:
        page = client.get(path)
        response = client.post(path, data={**hidden_fields(page.text), "code": code})
    assert response.status_code == 303 and response.headers["Location"].endswith(path), response.status_code
    assert response.headers.get("Retry-After") == retry_after
    page = client.get(path)
    assert page.status_code == 200 and page.text.count('role="alert"') == 1
    return page


def ask_again(client: FlaskClient, *, solve: bool = True):  # type: ignore[no-untyped-def]
    page = client.get("/join/code")
    response = client.post("/join/resend", data=hidden_fields(page.text))
    return solve_check(client, response) if solve else response


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
