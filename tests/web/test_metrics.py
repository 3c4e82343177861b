"""/metrics: Prometheus' text format, behind METRICS_TOKEN, naming no person."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

import config
from app import create_app
from app.models import utcnow
from tests import factories
from tests.security.conftest import browser, code_from, send_code, submit

TOKEN = "metrics-token-for-tests-0123456789abcdef"  # noqa: S105 - a test value


@pytest.fixture
def app(env: dict[str, str]) -> Flask:
    return create_app(config.TestingConfig({**env, "METRICS_TOKEN": TOKEN}))


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.text


def value(text: str, sample: str) -> float:
    """The value of one sample line (`name{labels}`), 0 when it is not there yet."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_verified_join_shows_in_the_counters_and_no_phone_does(app, station):  # type: ignore[no-untyped-def]
    client = browser(app)
    before = scrape(client)
    path = factories.join_path(app, station)
    assert submit(client, path, phone=factories.phone(7)).status_code == 303
    assert send_code(client, code_from(app.extensions["sms"])).status_code in (200, 303)
    after = scrape(client)
    for name in ("scanjoin_joins_completed_total", "scanjoin_joins_started_total", "scanjoin_codes_verified_total"):
        assert value(after, name) == value(before, name) + 1, name
    sent = 'scanjoin_codes_sent_total{provider="MemoryGateway"}'
    assert value(after, sent) == value(before, sent) + 1
    assert 'scanjoin_request_seconds_count{endpoint="join.check_code",method="POST",status="303"}' in after
    digits = factories.phone(7).lstrip("+")
    assert digits not in after and digits[-8:] not in after
    assert "王小明" not in after and station.code not in after


def test_without_the_token_it_is_401(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401


def test_without_a_token_set_there_is_no_page(env):  # type: ignore[no-untyped-def]
    client = create_app(config.TestingConfig(env)).test_client()
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_an_unknown_url_is_one_label_not_the_path(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.get("/nothing-here-13800138000")
    text = scrape(client)
    assert "13800138000" not in text and "nothing-here" not in text
    assert 'endpoint="unmatched"' in text


def test_request_id_is_echoed_or_made(client):  # type: ignore[no-untyped-def]
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123-def-456"})
    assert given.headers["X-Request-ID"] == "abc-123-def-456"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with 13800138000"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])


def test_queue_depth_is_what_the_outbox_owes_and_a_given_up_text_is_a_task_failure(app, station, monkeypatch):  # type: ignore[no-untyped-def]
    from app.services import tasks  # noqa: PLC0415
    from app.services.sms import SmsError  # noqa: PLC0415

    deliveries = app.extensions["tasks"]
    monkeypatch.setattr(deliveries, "wake", lambda kind, owner: None)  # the consumer has not run yet
    client = browser(app)
    before = scrape(client)
    assert value(before, "scanjoin_sms_queue_depth") == 0
    assert submit(client, factories.join_path(app, station), phone=factories.phone(8)).status_code == 303
    assert value(scrape(client), "scanjoin_sms_queue_depth") == 1
    app.extensions["sms"].fail_with = SmsError("rejected")  # permanent: given up at once
    deliveries.sweep(utcnow() + timedelta(seconds=tasks.GRACE_SECONDS + 1))
    after = scrape(client)
    assert value(after, "scanjoin_sms_queue_depth") == 0
    failed = 'scanjoin_task_failures_total{task="join_code"}'
    assert value(after, failed) == value(before, failed) + 1
