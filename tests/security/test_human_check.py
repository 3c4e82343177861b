"""Conversion monitoring and the human check (docs/security.md B5, B6; scenario 17), through the
JavaScript-free test client: the SMS is paid for only once a person has read the picture.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from sqlmodel import Session, select

import config as settings
from app import create_app
from app.models import AuditEvent, District, Role
from app.services import limits, users
from app.services.conversion import ALERT_ACTION
from tests import conftest, factories
from tests.conftest import hidden_fields
from tests.security.conftest import (
    CHECK_PATH,
    PICTURES,
    ask_again,
    asked_to_check,
    browser,
    code_from,
    send_code,
    solve_check,
    spread_phone,
    submit,
)

IMAGE_RE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def app_with(env: dict[str, str], **overrides: str) -> Flask:
    return create_app(settings.TestingConfig({**env, **overrides}))


@pytest.fixture
def paths(app, db, station):  # type: ignore[no-untyped-def]
    """Two posters, so forty sign-ups keep each poster far from its own limit."""
    other = factories.workplace(db, db.get(District, station.district_id), code="PD-ZJ02", name="张江饿了么站")
    db.commit()
    return [factories.join_path(app, station), factories.join_path(app, other)]


def join_as(app: Flask, paths: list[str], n: int, **kwargs):  # type: ignore[no-untyped-def]
    """Sign-up number `n`: its own address, its own number prefix, alternate posters."""
    client = browser(app, ip=f"203.0.{n // 200}.{n % 200 + 1}")
    return client, submit(client, paths[n % 2], phone=spread_phone(n + 1), **kwargs)


def alert_lines(caplog) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.getMessage() for r in caplog.records if r.name == "scanjoin.alerts" and "conversion" in r.getMessage()]


def alert_events(app: Flask) -> list[AuditEvent]:
    with Session(app.extensions["db_engine"]) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == ALERT_ACTION)))


def seed(app: Flask, phone: str, *, sent: int, verified: int) -> None:
    """Figures for `phone`'s prefix as if these codes had gone out (and been entered) this hour."""
    with app.app_context():
        watch = app.extensions["phone_proof"].monitor()
        prefix = limits.prefix_key(app.extensions["pii"], phone)
        for n in range(sent):
            watch.note_sent(prefix)
            if n < verified:
                watch.note_verified(prefix)


def test_scenario_17_low_conversion_alerts_and_asks_for_the_check(app, paths, sms, caplog, clock):
    caplog.set_level(logging.WARNING, logger="scanjoin.alerts")
    for n in range(40):
        client, response = join_as(app, paths, n)
        assert response.status_code == 303 and response.headers["Location"].endswith("/join/code"), n
        if n < 5:
            assert send_code(client, code_from(sms)).headers["Location"].endswith("/join/done")
    assert len(sms.sent) == 40
    assert len(alert_lines(caplog)) == 1, "raised once in the window, not on every send"
    [event] = alert_events(app)
    assert event.target_type == "all" and event.details["sent"] == 20 and event.details["verified"] == 5
    client, response = join_as(app, paths, 40, solve=False)
    assert asked_to_check(response)
    assert len(sms.sent) == 40, "no SMS before the check is solved"
    response = solve_check(client, response)
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    assert len(sms.sent) == 41
    assert len(alert_lines(caplog)) == 1 and len(alert_events(app)) == 1


def test_no_alert_and_no_check_below_twenty_sends(app, paths, sms, caplog):
    caplog.set_level(logging.WARNING, logger="scanjoin.alerts")
    for n in range(19):
        _client, response = join_as(app, paths, n, solve=False)
        assert response.headers["Location"].endswith("/join/code"), n
    assert alert_lines(caplog) == [] and alert_events(app) == []
    _client, response = join_as(app, paths, 19, solve=False)
    assert response.headers["Location"].endswith("/join/code"), "19 sent before it: no check"
    assert len(alert_lines(caplog)) == 1, "the 20th send makes the figures low"
    _client, response = join_as(app, paths, 20, solve=False)
    assert asked_to_check(response), "20 sent, none verified"
    assert len(sms.sent) == 20 and len(alert_lines(caplog)) == 1


def test_exactly_half_verified_is_not_low(app, path, sms):
    seed(app, spread_phone(1), sent=20, verified=10)
    assert submit(browser(app), path, phone=spread_phone(2), solve=False).headers["Location"].endswith("/join/code")


def test_a_low_prefix_is_checked_while_other_prefixes_are_not(app, path, sms, caplog):
    caplog.set_level(logging.WARNING, logger="scanjoin.alerts")
    pumped = "+8617012340000"
    seed(app, pumped, sent=20, verified=2)
    seed(app, spread_phone(7), sent=40, verified=40)  # overall: 42 of 60 verified, fine
    other = submit(browser(app, ip="198.51.100.1"), path, phone=spread_phone(8), solve=False)
    assert other.headers["Location"].endswith("/join/code")
    same_prefix = submit(browser(app, ip="198.51.100.2"), path, phone="+8617012349999", solve=False)
    assert asked_to_check(same_prefix)
    [line] = alert_lines(caplog)
    assert "prefix" in line and "1701234" not in line
    [event] = alert_events(app)
    assert event.target_type == "prefix" and event.details == {
        "sent": 20,
        "verified": 2,
        "window_seconds": 3600,
        "min_sends": 20,
        "min_percent": 50,
    }
    assert "1701234" not in (event.target_id or "")


def test_the_overall_figures_alert_when_no_single_prefix_does(app, path, sms):
    for n in range(40):
        seed(app, spread_phone(n + 1), sent=1, verified=1 if n < 5 else 0)
    response = submit(browser(app), path, phone=spread_phone(100), solve=False)
    assert asked_to_check(response)
    assert [e.target_type for e in alert_events(app)] == ["all"]


def test_the_alert_is_raised_again_in_a_new_window(app, path, sms, clock):
    seed(app, spread_phone(1), sent=30, verified=0)
    assert asked_to_check(submit(browser(app, ip="198.51.100.3"), path, phone=spread_phone(2), solve=False))
    assert asked_to_check(submit(browser(app, ip="198.51.100.4"), path, phone=spread_phone(3), solve=False))
    assert len(alert_events(app)) == 1
    clock.shift(timedelta(hours=1, seconds=1))
    seed(app, spread_phone(1), sent=30, verified=0)
    assert asked_to_check(submit(browser(app, ip="198.51.100.5"), path, phone=spread_phone(4), solve=False))
    assert len(alert_events(app)) == 2


def test_the_check_works_without_javascript(app, path, sms):
    seed(app, spread_phone(1), sent=20, verified=0)
    client = browser(app)
    response = submit(client, path, phone=spread_phone(2), solve=False)
    page = client.get(CHECK_PATH)
    assert page.status_code == 200 and "<script" not in page.text
    assert 'action="/join/check"' in page.text and 'name="answer"' in page.text
    picture = Image.open(io.BytesIO(base64.b64decode(IMAGE_RE.search(page.text).group(1))))
    assert picture.format == "PNG" and picture.size == (176, 64)
    assert PICTURES[-1] not in page.text and PICTURES[-1] not in str(client.get_cookie("session").value)
    assert "请输入图中的" in page.text or "图片中" in page.text, "Chinese first"
    assert asked_to_check(response) and sms.sent == []
    answered = client.post(CHECK_PATH, data={**hidden_fields(page.text), "answer": PICTURES[-1]})
    assert answered.headers["Location"].endswith("/join/code") and len(sms.sent) == 1


def test_a_wrong_answer_gets_a_new_picture_and_no_sms(app, path, sms):
    seed(app, spread_phone(1), sent=20, verified=0)
    client = browser(app)
    submit(client, path, phone=spread_phone(2), solve=False)
    page = client.get(CHECK_PATH)
    first = IMAGE_RE.search(page.text).group(1)
    wrong = "0000" if PICTURES[-1] != "0000" else "1111"
    response = client.post(CHECK_PATH, data={**hidden_fields(page.text), "answer": wrong})
    assert response.status_code == 422 and sms.sent == []
    assert IMAGE_RE.search(response.text).group(1) != first
    retry = client.post(CHECK_PATH, data={**hidden_fields(response.text), "answer": PICTURES[-2]})
    assert retry.status_code == 422 and sms.sent == [], "the first picture's answer no longer counts"
    right = client.post(CHECK_PATH, data={**hidden_fields(retry.text), "answer": PICTURES[-1]})
    assert right.headers["Location"].endswith("/join/code") and len(sms.sent) == 1


def test_an_expired_picture_is_refused(app, path, sms, clock):
    seed(app, spread_phone(1), sent=20, verified=0)
    client = browser(app)
    submit(client, path, phone=spread_phone(2), solve=False)
    page = client.get(CHECK_PATH)
    clock.shift(timedelta(seconds=301))
    response = client.post(CHECK_PATH, data={**hidden_fields(page.text), "answer": PICTURES[-1]})
    assert response.status_code == 422 and sms.sent == []
    assert "expired" in response.text or "过期" in response.text


def test_a_replayed_answer_sends_nothing(app, path, sms):
    seed(app, spread_phone(1), sent=20, verified=0)
    client = browser(app)
    submit(client, path, phone=spread_phone(2), solve=False)
    page = client.get(CHECK_PATH)
    before = client.get_cookie("session").value  # the session holding the unanswered picture
    form = {**hidden_fields(page.text), "answer": PICTURES[-1]}
    assert client.post(CHECK_PATH, data=form).headers["Location"].endswith("/join/code")
    client.set_cookie("session", before)
    replay = client.post(CHECK_PATH, data=form)
    assert replay.status_code == 422 and len(sms.sent) == 1


def test_the_check_is_only_for_a_send_that_waits_for_it(app, path, sms):
    client = browser(app)
    assert submit(client, path).headers["Location"].endswith("/join/code")
    assert client.get(CHECK_PATH).headers["Location"].endswith("/join/code")
    assert browser(app, ip="198.51.100.8").get(CHECK_PATH).status_code == 404
    assert len(sms.sent) == 1


def test_wrong_answers_are_counted_per_address(app, path, sms):
    seed(app, spread_phone(1), sent=20, verified=0)
    client = browser(app, ip="198.51.100.9")
    submit(client, path, phone=spread_phone(2), solve=False)
    page = client.get(CHECK_PATH)
    statuses = []
    for _ in range(11):
        wrong = "0000" if PICTURES[-1] != "0000" else "1111"
        page = client.post(CHECK_PATH, data={**hidden_fields(page.text), "answer": wrong})
        statuses.append(page.status_code)
    assert statuses == [422] * 10 + [429] and "Retry-After" in page.headers
    assert sms.sent == []


def test_an_address_near_its_limit_is_checked(app, path, sms):
    ip = "198.51.100.10"
    codes = [submit(browser(app, ip=ip), path, phone=spread_phone(n + 1), solve=False) for n in range(9)]
    assert [r.headers["Location"].endswith("/join/code") for r in codes] == [True] * 8 + [False]
    assert asked_to_check(codes[-1]) and len(sms.sent) == 8


def test_a_poster_near_its_limit_is_checked(env, station):
    app = app_with(env, CONVERSION_MIN_SENDS="1000")
    path = factories.join_path(app, station)
    near = limits.OUTSTANDING["poster"] * 80 // 100  # outstanding codes (never entered) from many addresses
    codes = [
        submit(browser(app, ip=f"203.0.113.{n + 1}"), path, phone=spread_phone(n + 1), solve=False)
        for n in range(near + 1)
    ]
    assert [asked_to_check(r) for r in codes] == [False] * near + [True]


def test_the_near_limit_share_is_a_setting(env, station):
    app = app_with(env, CHALLENGE_NEAR_LIMIT_PERCENT="100")
    path = factories.join_path(app, station)
    codes = [submit(browser(app, ip="198.51.100.11"), path, phone=spread_phone(n + 1), solve=False) for n in range(11)]
    assert [r.status_code for r in codes] == [303] * 10 + [429]
    assert not any(asked_to_check(r) for r in codes)


def test_a_refused_send_is_refused_without_a_picture(app, path, sms):
    seed(app, spread_phone(1), sent=20, verified=0)
    codes = [
        submit(browser(app, ip=f"203.0.113.{i}"), path, phone=f"+86170123400{i:02d}").status_code for i in range(21)
    ]
    assert codes == [303] * 20 + [429], "the prefix's outstanding codes answer first"


def test_a_resend_waits_for_the_check_too(app, path, sms, clock):
    client = browser(app)
    assert submit(client, path, phone=spread_phone(2)).headers["Location"].endswith("/join/code")
    seed(app, spread_phone(1), sent=20, verified=0)
    clock.shift(timedelta(seconds=61))
    response = ask_again(client, solve=False)
    assert asked_to_check(response) and len(sms.sent) == 1
    assert solve_check(client, response).headers["Location"].endswith("/join/code")
    assert len(sms.sent) == 2


def test_verified_codes_are_counted(app, path, sms):
    client = browser(app)
    submit(client, path, phone=spread_phone(2))
    send_code(client, code_from(sms))
    with app.app_context():
        figures = (
            app.extensions["phone_proof"].monitor().figures(limits.prefix_key(app.extensions["pii"], spread_phone(2)))
        )
    assert [(f.scope, f.sent, f.verified) for f in figures] == [("all", 1, 1), ("prefix", 1, 1)]


def test_the_store_down_means_no_picture_and_no_sms(env, station):
    app = app_with(env, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    response = submit(browser(app), factories.join_path(app, station), solve=False)
    assert response.status_code == 503 and app.extensions["sms"].sent == []


def test_admins_see_the_alert_when_they_sign_in(app, db, path, sms):
    seed(app, spread_phone(1), sent=25, verified=3)
    submit(browser(app), path, phone=spread_phone(2))
    for role in (Role.admin, Role.official):
        email = f"{role.value}@example.org"
        users.create(
            db,
            email,
            role=role,
            password="correct horse battery staple",
            district_codes=[] if role is Role.admin else ["PD"],
        )
        db.commit()
        client = browser(app)
        conftest.sign_in(client, db, email, "correct horse battery staple")  # password and TOTP
        home = client.get("/home").text
        if role is Role.admin:
            assert "短信滥用警报" in home and "25 个验证码中 3 个已验证" in home
            assert "sms.conversion_alert" in home
        else:
            assert "短信滥用警报" not in home


def test_the_code_page_leads_back_to_the_check_until_a_code_is_sent(app, path, sms):
    seed(app, spread_phone(1), sent=20, verified=0)
    client = browser(app)
    submit(client, path, phone=spread_phone(2), solve=False)
    assert client.get("/join/code").headers["Location"].endswith(CHECK_PATH)
    solve_check(client, submit(client, path, phone=spread_phone(2), solve=False))
    assert client.get("/join/code").status_code == 200 and len(sms.sent) == 1


def test_status_page_codes_count_too(app, sms):
    client = browser(app)
    page = client.get("/status/")
    assert client.post("/status/", data={**hidden_fields(page.text), "phone": spread_phone(3)}).status_code == 303
    page = client.get("/status/code")
    client.post("/status/code", data={**hidden_fields(page.text), "code": code_from(sms)})
    with app.app_context():
        figures = (
            app.extensions["phone_proof"].monitor().figures(limits.prefix_key(app.extensions["pii"], spread_phone(3)))
        )
    assert [(f.sent, f.verified) for f in figures] == [(1, 1), (1, 1)]


def test_scenario_17_with_the_console_outbox(env, station):
    """The development backend: its outbox file is not written until the picture is answered."""
    app = app_with(env, SMS_BACKEND="console")
    outbox = Path(env["SMS_OUTBOX"])
    seed(app, spread_phone(1), sent=40, verified=5)
    client = browser(app)
    response = submit(client, factories.join_path(app, station), phone=spread_phone(2), solve=False)
    assert asked_to_check(response) and not outbox.exists()
    assert solve_check(client, response).headers["Location"].endswith("/join/code")
    assert len(outbox.read_text(encoding="utf-8").splitlines()) == 1


def ask_status(client, phone: str):  # type: ignore[no-untyped-def]
    page = client.get("/status/")
    return client.post("/status/", data={**hidden_fields(page.text), "phone": phone})


def test_the_status_page_asks_for_the_check_too_while_conversion_is_low(app, sms, db):
    seed(app, spread_phone(1), sent=40, verified=5)
    client = browser(app)
    response = ask_status(client, spread_phone(2))
    assert response.status_code == 303 and response.headers["Location"].endswith("/status/check")
    assert sms.sent == [], "no code before the picture is answered"
    assert client.get("/status/code").headers["Location"].endswith("/status/check"), "no way round it"
    page = client.get("/status/check")
    assert page.status_code == 200 and IMAGE_RE.search(page.text) and 'action="/status/check"' in page.text
    wrong_answer = client.post("/status/check", data={**hidden_fields(page.text), "answer": "0000"})
    assert wrong_answer.status_code == 422 and sms.sent == [] and IMAGE_RE.search(wrong_answer.text)
    right = client.post("/status/check", data={**hidden_fields(wrong_answer.text), "answer": PICTURES[-1]})
    assert right.status_code == 303 and right.headers["Location"].endswith("/status/code")
    assert len(sms.sent) == 1 and sms.sent[0].to == spread_phone(2)
    page = client.get("/status/code")
    proven = client.post("/status/code", data={**hidden_fields(page.text), "code": code_from(sms)})
    assert proven.status_code == 303 and proven.headers["Location"].endswith("/status/me")


def test_the_status_check_is_bound_to_its_own_session(app, sms):
    seed(app, spread_phone(1), sent=40, verified=5)
    ask_status(browser(app), spread_phone(2))
    assert browser(app, ip="198.51.100.9").get("/status/check").status_code == 404
    assert sms.sent == []


def test_the_status_page_sends_at_once_while_conversion_is_fine(app, sms):
    response = ask_status(browser(app), spread_phone(2))
    assert response.headers["Location"].endswith("/status/code") and len(sms.sent) == 1
