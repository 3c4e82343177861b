"""The worker's path through the Flask test client, CSRF on, as a browser would send it."""

from __future__ import annotations

import re
from datetime import timedelta

import phonenumbers
import pytest
import time_machine
from sqlmodel import select

from app.models import AuditEvent, JoinAttempt, Member, MemberStatus, utcnow
from app.services import places
from tests import factories
from tests.conftest import hidden_fields

# phonenumbers' own example of a UK mobile: valid, but outside ALLOWED_REGIONS.
FOREIGN_MOBILE = phonenumbers.format_number(
    phonenumbers.example_number_for_type("GB", phonenumbers.PhoneNumberType.MOBILE),
    phonenumbers.PhoneNumberFormat.E164,
)


def submit(client, path: str, **overrides: str):  # type: ignore[no-untyped-def]
    page = client.get(path)
    assert page.status_code == 200
    data = {
        **hidden_fields(page.text),
        "name": "王小明",
        "phone": factories.phone(1)[3:],
        "platform": "meituan",
        "consent": "y",
        "cross_border": "y",  # asked only when a provider abroad sends (Twilio); ignored otherwise
        **overrides,
    }
    return client.post(path, data={k: v for k, v in data.items() if v is not None})


def code_from(sms) -> str:  # type: ignore[no-untyped-def]
    match = re.search(r"\b(\d{6})\b", sms.sent[-1].body)
    assert match, "the SMS carries a 6-digit code"
    return match.group(1)


def send_code(client, code: str):  # type: ignore[no-untyped-def]
    page = client.get("/join/code")
    return client.post("/join/code", data={**hidden_fields(page.text), "code": code})


def refused_code(client, code: str):  # type: ignore[no-untyped-def]
    """A code not accepted: a 303 back to the code page, whose GET shows the words once."""
    response = send_code(client, code)
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    page = client.get("/join/code")
    assert page.status_code == 200 and page.text.count('role="alert"') == 1
    return page


def members(db) -> list[Member]:  # type: ignore[no-untyped-def]
    db.commit()  # end the test's read snapshot: see what the requests wrote
    db.expire_all()
    return list(db.exec(select(Member)))


def test_scan_page_names_the_place_and_has_the_form(client, path):
    page = client.get(path)
    assert page.status_code == 200
    html = page.text
    assert "张江美团骑手站" in html and "浦东新区总工会" in html
    assert 'autocomplete="name"' in html and 'type="tel"' in html and 'autocomplete="tel"' in html
    assert 'name="consent"' in html and "checked" not in html
    assert "2026-12-v2" in html, "the consent version is shown with the text"


def test_token_route_accepts_lower_case(client, path):
    assert client.get(path.lower()).status_code == 200
    assert client.get(path.upper()).status_code == 200


def test_whole_join_creates_one_pending_member(client, path, sms, db, station):
    response = submit(client, path)
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    assert [m.to for m in sms.sent] == [factories.phone(1)]
    assert "工会" not in sms.sent[0].body and "union" not in sms.sent[0].body.lower()
    code_page = client.get("/join/code")
    assert 'autocomplete="one-time-code"' in code_page.text and 'inputmode="numeric"' in code_page.text
    done = send_code(client, code_from(sms))
    assert done.status_code == 303
    final = client.get("/join/done")
    assert final.status_code == 200 and "浦东新区总工会" in final.text
    [member] = members(db)
    assert member.status is MemberStatus.pending and member.workplace_id == station.id
    assert member.consent_version == "2026-12-v2" and member.verified_at is not None
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "member.created")).one().target_id == str(member.id)


def test_name_and_phone_are_not_stored_in_clear(client, path, sms, db, env):
    if not env["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("reads the SQLite file (tests/security/test_data_at_rest.py dumps PostgreSQL)")
    submit(client, path)
    send_code(client, code_from(sms))
    raw = open(env["DATABASE_URL"].removeprefix("sqlite:///"), "rb").read()
    raw += open(env["DATABASE_URL"].removeprefix("sqlite:///") + "-wal", "rb").read()
    for needle in ("王小明".encode(), factories.phone(1).encode(), factories.phone(1)[3:].encode()):
        assert needle not in raw


def test_wrong_code_says_how_many_tries_are_left(client, path, sms, db):
    submit(client, path)
    right = code_from(sms)
    wrong = "000000" if right != "000000" else "111111"
    page = refused_code(client, wrong)
    assert "还可以再试 4 次" in page.text
    assert members(db) == []


def test_five_wrong_codes_lock_the_code_even_against_the_right_one(client, path, sms, db):
    submit(client, path)
    right = code_from(sms)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        send_code(client, wrong)
    refused = refused_code(client, right).text
    assert "错误次数过多" in refused or "秒后再输入验证码" in refused  # locked, or still waiting out the backoff
    assert members(db) == []


def test_code_expires_after_ten_minutes(client, path, sms, db):
    with time_machine.travel(utcnow(), tick=False) as clock:
        submit(client, path)
        clock.shift(timedelta(minutes=10, seconds=1))
        page = refused_code(client, code_from(sms))
    assert "验证码已过期" in page.text
    assert members(db) == []


def test_code_just_inside_ten_minutes_is_accepted(client, path, sms, db):
    with time_machine.travel(utcnow(), tick=False) as clock:
        submit(client, path)
        clock.shift(timedelta(minutes=9, seconds=59))
        assert send_code(client, code_from(sms)).status_code == 303
    assert len(members(db)) == 1


def test_code_is_single_use(client, path, sms, db):
    submit(client, path)
    page = client.get("/join/code")
    data = {**hidden_fields(page.text), "code": code_from(sms)}
    client.post("/join/code", data=data)
    again = client.post("/join/code", data=data)
    assert again.status_code == 303 and again.headers["Location"].endswith("/join/done")
    assert len(members(db)) == 1


def test_code_is_stored_only_as_a_hash(client, path, sms, db):
    submit(client, path)
    code = code_from(sms)
    attempt = db.exec(select(JoinAttempt)).one()
    assert attempt.code_hash and code not in attempt.code_hash and len(attempt.code_hash) == 64


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"phone": ""}, "请输入手机号"),
        ({"phone": "12345"}, "不是有效的手机号"),
        ({"phone": FOREIGN_MOBILE}, "不能在这里使用"),
        ({"consent": None}, "勾选"),
        ({"name": ""}, "请输入你的姓名"),
        ({"platform": "nope"}, "不是有效的选择"),  # WTForms' own message, in Chinese
    ],
)
def test_bad_input_gets_the_form_back_with_a_message(client, path, sms, db, overrides, message):
    response = submit(client, path, **overrides)
    assert response.status_code == 422
    assert message in response.text
    assert sms.sent == [] and members(db) == []
    assert db.exec(select(JoinAttempt)).all() == []


def test_double_tap_sends_one_sms_and_keeps_one_draft(client, path, sms, db):
    page = client.get(path)
    data = {
        **hidden_fields(page.text),
        "name": "王小明",
        "phone": factories.phone(1),
        "platform": "didi",
        "consent": "y",
    }
    first = client.post(path, data=data)
    second = client.post(path, data=data)
    assert first.status_code == second.status_code == 303
    assert len(sms.sent) == 1
    assert len(db.exec(select(JoinAttempt)).all()) == 1


def test_same_phone_again_shows_the_existing_status_only_after_the_code(app, path, sms, db):
    first, second = app.test_client(), app.test_client()
    submit(first, path)
    send_code(first, code_from(sms))
    response = submit(second, path)
    assert response.status_code == 303, "the form reveals nothing about who is a member"
    send_code(second, code_from(sms))
    page = second.get("/join/done")
    assert "已经" in page.text
    assert len(members(db)) == 1


def test_rejected_applicant_may_apply_again_on_the_same_row(app, path, sms, db):
    first = app.test_client()
    submit(first, path)
    send_code(first, code_from(sms))
    [member] = members(db)
    member.status, member.reject_reason, member.decided_at = MemberStatus.rejected, "test", utcnow()
    db.add(member)
    db.commit()
    second = app.test_client()
    submit(second, path)
    send_code(second, code_from(sms))
    [again] = members(db)
    assert again.id == member.id and again.status is MemberStatus.pending and again.reject_reason is None


def test_district_code_lets_the_worker_pick_a_station_or_none(app, client, station, sms, db):
    from app.models import District

    district = db.get(District, station.district_id)
    path = factories.join_path(app, district)
    page = client.get(path)
    assert "张江美团骑手站" in page.text and 'value="none"' in page.text
    submit(client, path, workplace="none")
    send_code(client, code_from(sms))
    [member] = members(db)
    assert member.workplace_id is None and member.district_id == district.id


def test_wtforms_own_messages_follow_the_language(client, path):
    client.get("/lang/en")
    response = submit(client, path, platform="nope")
    assert response.status_code == 422 and "Not a valid choice" in response.text


def test_district_form_refuses_a_station_of_another_district(app, client, station, db):
    from app.models import District

    other = factories.district(db, code="XH", name="徐汇区总工会")
    foreign = factories.workplace(db, other, code="XH-01", name="徐家汇站")
    db.commit()
    path = factories.join_path(app, db.get(District, station.district_id))
    response = submit(client, path, workplace=str(foreign.id))
    assert response.status_code == 422


def test_tampered_token_is_a_404_that_names_no_place(client, path):
    last = path[-1]
    tampered = path[:-1] + ("A" if last != "A" else "B")
    response = client.get(tampered)
    assert response.status_code == 404
    assert "张江" not in response.text and "浦东" not in response.text


def test_rotated_poster_shows_the_replaced_page(app, client, path, station, db):
    places.rotate(db, station, now=utcnow())
    db.commit()
    old = client.get(path)
    assert old.status_code == 410 and "张江" not in old.text
    assert client.get(factories.join_path(app, station)).status_code == 200


def test_expired_poster_is_410(client, path):
    with time_machine.travel(utcnow() + timedelta(days=366)):
        assert client.get(path).status_code == 410


def test_missing_csrf_token_is_400_with_a_page(client, path, db):
    response = client.post(path, data={"name": "x", "phone": factories.phone(1), "platform": "didi", "consent": "y"})
    assert response.status_code == 400
    assert "重新" in response.text or "Reload" in response.text
    assert db.exec(select(JoinAttempt)).all() == []


def test_oversize_body_is_413_with_a_page(client, path):
    response = client.post(path, data={"name": "x" * 70_000})
    assert response.status_code == 413
    assert "<h1>" in response.text


def test_english_when_the_browser_prefers_it(client, path):
    page = client.get(path, headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Your name" in page.text and 'lang="en"' in page.text


def test_chinese_by_default(client, path):
    page = client.get(path)
    assert 'lang="zh-Hans"' in page.text and "姓名" in page.text


def test_language_switch_sticks(client, path):
    client.get(f"/lang/en?next={path}")
    assert "Your name" in client.get(path).text


def test_resend_waits_for_the_cooldown_then_sends_a_new_code(client, path, sms):
    with time_machine.travel(utcnow(), tick=False) as clock:
        submit(client, path)
        page = client.get("/join/code")
        early = client.post("/join/resend", data=hidden_fields(page.text))
        assert early.status_code == 303 and len(sms.sent) == 1  # post/redirect/get, no second SMS
        assert early.headers["Location"].endswith("/join/code") and int(early.headers["Retry-After"]) > 0
        clock.shift(timedelta(seconds=61))
        page = client.get("/join/code")
        later = client.post("/join/resend", data=hidden_fields(page.text))
        assert later.status_code == 303 and len(sms.sent) == 2
        assert send_code(client, code_from(sms)).status_code == 303


def test_pages_load_nothing_from_another_origin(client, path):
    html = client.get(path).text
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html


def test_no_page_reached_without_an_attempt(client):
    assert client.get("/join/code").status_code == 404
    assert client.get("/join/done").status_code == 404


# --- the notice names the SMS provider; a provider abroad needs a consent of its own (issue 13) ----


def test_without_a_provider_abroad_the_form_asks_no_cross_border_consent(client, path):
    html = client.get(path).text
    assert 'name="consent"' in html and 'name="cross_border"' not in html
    assert "境外" not in html and "Twilio" not in html


@pytest.fixture
def twilio_app(env):  # type: ignore[no-untyped-def]
    """An app configured for Twilio (abroad), its sender swapped for the memory one: no call leaves."""
    from app import create_app
    from app.services.sms import MemoryGateway
    from config import TestingConfig

    settings = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "TWILIO_FROM": "+15005550006"}
    app = create_app(TestingConfig({**env, "SMS_BACKEND": "twilio-messaging", **settings}))
    app.extensions["sms"] = MemoryGateway()
    yield app
    app.extensions["db_engine"].dispose()


def test_a_provider_abroad_needs_its_own_consent_apart_from_the_membership_one(twilio_app):  # type: ignore[no-untyped-def]
    from sqlmodel import Session

    with Session(twilio_app.extensions["db_engine"], expire_on_commit=False) as db:
        path = factories.join_path(twilio_app, factories.workplace(db, factories.district(db)))
        db.commit()
    client, sms = twilio_app.test_client(), twilio_app.extensions["sms"]
    html = client.get(path).text
    assert 'name="consent"' in html and 'name="cross_border"' in html, "two boxes: membership, and abroad"
    assert "Twilio（位于美国）" in html and "提供到境外" in html and "2026-12-v2-twilio" in html
    refused = submit(client, path, cross_border=None)
    assert refused.status_code == 422 and "请也勾选这一项" in refused.text
    assert sms.sent == []
    with Session(twilio_app.extensions["db_engine"]) as db:
        assert db.exec(select(JoinAttempt)).all() == []
    membership_only = submit(client, path, consent=None)
    assert membership_only.status_code == 422 and sms.sent == []
    assert submit(client, path).status_code == 303 and len(sms.sent) == 1
    with Session(twilio_app.extensions["db_engine"]) as db:
        assert db.exec(select(JoinAttempt)).one().consent_version == "2026-12-v2-twilio"
