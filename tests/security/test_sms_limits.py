"""SMS pumping (docs/security.md B2–B4, B7; scenarios 11–16, 20): every send is counted before it costs."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask import Flask
from sqlmodel import select

import config as settings
from app import create_app
from app.models import JoinAttempt
from app.services import limits
from tests import factories
from tests.security.conftest import ask_again, attempts, browser, spread_phone, submit


def app_with(env: dict[str, str], **overrides: str) -> Flask:
    return create_app(settings.TestingConfig({**env, **overrides}))


def test_prefix_sweep_stops_at_twenty_unverified_codes(app, path, sms):
    outcomes = [
        submit(browser(app, ip=f"203.0.113.{i}"), path, phone=f"+86170123400{i:02d}").status_code for i in range(25)
    ]
    assert outcomes == [303] * 20 + [429] * 5
    assert len(sms.sent) == 20 == limits.OUTSTANDING["prefix"]


@pytest.mark.parametrize(
    "phone",
    [
        "+447012345678",  # UK personal numbering: redirects to anywhere, a pumping favourite
        "+449098790000",  # UK premium rate
        "+882167654321",  # international networks (satellite): no region at all
        "+861012345678",  # Beijing landline
        "+864008123456",  # China 400 number
        "+8612012345678",  # an unallocated Chinese block
    ],
)
def test_other_regions_premium_and_unallocated_ranges_never_reach_the_provider(env, station, phone):
    app = app_with(env, ALLOWED_REGIONS="CN,GB")
    response = submit(browser(app), factories.join_path(app, station), phone=phone)
    assert response.status_code == 422
    assert app.extensions["sms"].sent == []
    with app.app_context():
        from app.db import get_session

        assert get_session().exec(select(JoinAttempt)).all() == []


def test_an_allowed_regions_mobile_is_accepted(env, station):
    app = app_with(env, ALLOWED_REGIONS="CN,GB")
    assert submit(browser(app), factories.join_path(app, station), phone="+447400123456").status_code == 303


def test_per_phone_one_resend_per_code_and_four_texts_a_day(app, path, sms, clock):
    first = browser(app, ip="203.0.113.1")
    assert submit(first, path).status_code == 303
    clock.shift(timedelta(seconds=61))
    assert ask_again(first).status_code == 303
    third = submit(browser(app, ip="203.0.113.2"), path)
    assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0, "a third text inside the code's life"
    clock.shift(timedelta(seconds=61))
    refused = ask_again(first)  # post/redirect/get: a 303 to the code page, which says no code went out
    assert refused.status_code == 303 and refused.headers["Location"].endswith("/join/code")
    assert "没有发送新的验证码" in first.get("/join/code").text, "one resend per attempt"
    for n in range(3, 5):
        clock.shift(timedelta(minutes=11))
        assert submit(browser(app, ip=f"203.0.113.{n}"), path).status_code == 303
    clock.shift(timedelta(minutes=11))
    fifth = submit(browser(app, ip="203.0.113.9"), path)
    assert fifth.status_code == 429 and "Retry-After" in fifth.headers
    assert len(sms.sent) == 4
    assert len(drafts(app)) == 5, "refused sends keep the draft"


def drafts(app):  # type: ignore[no-untyped-def]
    """The join attempts stored, read on a session closed at once (none left checked out)."""
    from sqlmodel import Session

    with Session(app.extensions["db_engine"]) as db:
        return attempts(db)


def test_per_ip_ten_unverified_codes_in_a_moving_hour(app, path, sms, clock):
    client_ip = "198.51.100.20"
    for hour in range(3):
        for n in range(10):
            assert submit(browser(app, ip=client_ip), path, phone=spread_phone(hour * 10 + n + 1)).status_code == 303
        over = submit(browser(app, ip=client_ip), path, phone=spread_phone(100 + hour))
        assert over.status_code == 429, f"11th unverified send in hour {hour}"
        assert 0 < int(over.headers["Retry-After"]) <= 3600
        clock.shift(timedelta(hours=1, minutes=1))
    assert submit(browser(app, ip="198.51.100.21"), path, phone=spread_phone(201)).status_code == 303
    assert len(sms.sent) == 31


def test_ipv6_clients_are_counted_by_their_64(app, path, sms):
    codes = [
        submit(browser(app, ip=f"2001:db8:1:2::{i:x}"), path, phone=spread_phone(i + 1)).status_code for i in range(11)
    ]
    assert codes == [303] * 10 + [429]


def test_forged_forwarded_for_does_not_change_the_client(env, station):
    app = app_with(env, PROXY_FIX_X_FOR="1")
    path = factories.join_path(app, station)
    codes = []
    for n in range(11):
        client = browser(app, ip="10.0.0.1")  # the reverse proxy
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"192.0.2.{n}, 198.51.100.30"  # forged, then the real one
        codes.append(submit(client, path, phone=spread_phone(n + 1)).status_code)
    assert codes == [303] * 10 + [429]


def test_the_trusted_proxy_hop_is_the_client(env, station):
    app = app_with(env, PROXY_FIX_X_FOR="1")
    path = factories.join_path(app, station)
    for n in range(11):
        client = browser(app, ip="10.0.0.1")
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"198.51.100.{n}"
        assert submit(client, path, phone=spread_phone(n + 1)).status_code == 303


def test_forwarded_for_is_ignored_without_a_trusted_proxy(app, path):
    codes = []
    for n in range(11):
        client = browser(app, ip="198.51.100.40")
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"192.0.2.{n}"
        codes.append(submit(client, path, phone=spread_phone(n + 1)).status_code)
    assert codes[-1] == 429


def test_global_budget_stops_sending_alerts_and_keeps_the_draft(env, station, caplog):
    app = app_with(env, SMS_DAILY_BUDGET="3")
    path = factories.join_path(app, station)
    with caplog.at_level(logging.CRITICAL, logger="scanjoin.alerts"):
        codes = [
            submit(browser(app, ip=f"203.0.113.{n}"), path, phone=spread_phone(n)).status_code for n in range(1, 5)
        ]
    assert codes == [303, 303, 303, 429]
    assert len(app.extensions["sms"].sent) == 3
    assert any(r.name == "scanjoin.alerts" and "budget" in r.getMessage() for r in caplog.records)
    assert len(drafts(app)) == 4


def test_no_code_without_the_form_and_its_token(app, path, sms):
    client = browser(app)
    assert (
        client.post(
            path, data={"name": "x", "phone": factories.phone(1), "platform": "didi", "consent": "y"}
        ).status_code
        == 400
    )
    assert client.post("/join/resend").status_code == 400, "no session, no token"
    submit(client, path)
    assert client.post("/join/resend").status_code == 400, "no CSRF token"
    assert len(sms.sent) == 1


def test_store_down_means_no_sms_but_pages_still_open(env, station):
    app = app_with(env, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    path = factories.join_path(app, station)
    client = browser(app)
    assert client.get("/").status_code == 200
    response = submit(client, path)  # the form page itself opens: reading costs nothing
    assert response.status_code == 503
    assert app.extensions["sms"].sent == []


def test_limit_messages_are_translated(app, path):
    for n in range(10):
        submit(browser(app, ip="198.51.100.90"), path, phone=spread_phone(n + 1))
    refused = submit(browser(app, ip="198.51.100.90"), path, phone=spread_phone(50))
    assert refused.status_code == 429 and "这个网络请求的验证码太多了" in refused.text
