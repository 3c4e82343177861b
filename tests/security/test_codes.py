"""SMS codes (docs/security.md A2–A7, A11; scenarios 1–7): brute force, expiry, binding, enumeration."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event

from app.models import MemberStatus
from app.services.sms import TwilioVerifyGateway
from tests import factories
from tests.security.conftest import browser, code_from, members, refused_code, send_code, submit, wait_out, wrong


def test_sixth_try_on_one_code_is_429_and_the_code_is_dead(app, path, sms, db, clock):
    client = browser(app)
    submit(client, path)
    right = code_from(sms)
    for n in range(1, 6):
        assert send_code(client, wrong(right)).status_code == 303
        wait_out(clock, n)
    sixth = refused_code(client, wrong(right))
    assert "错误次数过多" in sixth.text
    assert "错误次数过多" in refused_code(client, right).text, "even the right code is refused"
    assert members(db) == []
    [attempt] = [a for a in _attempts(db)]
    assert attempt.code_tries == 5 and attempt.verified_at is None


def test_backoff_grows_after_three_failures(app, path, sms, clock):
    client = browser(app)
    submit(client, path)
    right = code_from(sms)
    for _ in range(3):
        assert "验证码不正确" in refused_code(client, wrong(right)).text
    early = refused_code(client, right, retry_after="30")
    assert "请等待 30 秒" in early.text
    clock.shift(timedelta(seconds=31))
    assert send_code(client, right).status_code == 303, "after the wait the right code works"


def test_replayed_code_does_not_work_in_a_second_attempt(app, path, sms, db):
    first = browser(app)
    submit(first, path)
    used = code_from(sms)
    assert send_code(first, used).status_code == 303
    second = browser(app, ip="203.0.113.2")
    submit(second, path)
    if code_from(sms) != used:
        assert "验证码不正确" in refused_code(second, used).text
    assert len(members(db)) == 1


def test_code_expires_after_ten_minutes_and_works_just_before(app, path, sms, db, clock):
    late = browser(app)
    submit(late, path)
    clock.shift(timedelta(minutes=10, seconds=1))
    assert "验证码已过期" in refused_code(late, code_from(sms)).text
    in_time = browser(app, ip="203.0.113.3")
    submit(in_time, path, phone=factories.phone(2))
    clock.shift(timedelta(minutes=9, seconds=59))
    assert send_code(in_time, code_from(sms)).status_code == 303


def test_code_is_bound_to_its_attempt_and_phone(app, path, sms, db):
    a, b = browser(app), browser(app, ip="203.0.113.4")
    submit(a, path, phone=factories.phone(1))
    code_a = code_from(sms)
    submit(b, path, phone=factories.phone(2))
    if code_from(sms) != code_a:
        assert "验证码不正确" in refused_code(b, code_a).text, "A's code does not open B's attempt"
    page = a.get("/join/code")
    from tests.conftest import hidden_fields

    a.post("/join/code", data={**hidden_fields(page.text), "code": code_a, "phone": factories.phone(2)})
    [member] = members(db)
    assert app.extensions["pii"].decrypt(member.phone_enc) == factories.phone(1), "the phone of the attempt row"


def test_no_skipping_the_code_step(app, path, sms, db):
    client = browser(app)
    assert client.get("/join/done").status_code == 404
    submit(client, path)
    page = client.get("/join/code")
    from tests.conftest import hidden_fields

    fake = client.post("/join/code", data={**hidden_fields(page.text), "verified": "1", "code": ""})
    assert fake.status_code == 303 and fake.headers["Location"].endswith("/join/code")
    assert "请输入短信中的验证码" in client.get("/join/code").text
    assert client.get("/join/done").status_code == 404
    assert members(db) == []


class FakeVerify:
    """Just enough of twilio.rest.Client for TwilioVerifyGateway: checks answer `status`."""

    def __init__(self, status: str) -> None:
        self.checks: list[str] = []
        created = SimpleNamespace(sid="VE" + "0" * 32)
        checks = SimpleNamespace(create=lambda to, code: self.checks.append(code) or SimpleNamespace(status=status))
        service = SimpleNamespace(verifications=SimpleNamespace(create=lambda **_: created), verification_checks=checks)
        self.verify = SimpleNamespace(v2=SimpleNamespace(services=lambda _sid: service))


@pytest.mark.parametrize(("status", "accepted"), [("pending", False), ("canceled", False), ("approved", True)])
def test_only_an_approved_provider_check_counts(app, path, db, status, accepted):
    fake = FakeVerify(status)
    app.extensions["sms"] = TwilioVerifyGateway(fake, "VA" + "0" * 32)  # type: ignore[arg-type]
    client = browser(app)
    submit(client, path)
    response = send_code(client, "123456")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/join/done" if accepted else "/join/code")
    assert len(members(db)) == (1 if accepted else 0)
    assert fake.checks == ["123456"]


def _attempts(db):  # type: ignore[no-untyped-def]
    from tests.security.conftest import attempts

    return attempts(db)


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="[^"]*"')


def test_new_pending_and_member_phones_get_identical_responses(app, path, sms, db):
    for n in (2, 3):
        client = browser(app, ip=f"203.0.113.{20 + n}")
        submit(client, path, phone=factories.phone(n))
        send_code(client, code_from(sms))
    member = next(m for m in members(db) if app.extensions["pii"].decrypt(m.phone_enc) == factories.phone(3))
    member.status = MemberStatus.approved
    db.add(member)
    db.commit()
    seen = [_observe(app, path, n) for n in (1, 2, 3)]
    assert seen[0] == seen[1] == seen[2], "nothing tells a new phone from a pending one or a member"


def _observe(app, path: str, n: int):  # type: ignore[no-untyped-def]
    """Status, redirect, SQL statements run and the code page (tokens and digits masked) of one submit."""
    client = browser(app, ip=f"203.0.113.{40 + n}")
    statements: list[str] = []
    engine = app.extensions["db_engine"]

    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = submit(client, path, phone=factories.phone(n))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    page = CSRF_RE.sub("", client.get("/join/code").text)
    return response.status_code, response.headers.get("Location"), statements, re.sub(r"\d", "0", page)
