"""Two-step staff sign-in through the test client, CSRF on: enrolment, the code step, replay, recovery
codes, throttling and the lock, half-signed-in sessions, re-auth, and resets by an admin (docs/security.md D3–D6)."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
import time_machine
from flask import Flask
from sqlmodel import select

from app.models import AuditEvent, Role, User, utcnow
from app.services import users
from tests import factories
from tests.conftest import (
    STAFF_PASSWORD,
    code_step,
    enrol,
    hidden_fields,
    make_staff,
    password_step,
    sign_in,
    totp_code,
)
from tests.web.test_auth import reload

OFFICIAL = "official@example.org"
ADMIN = "admin@example.org"
RECOVERY_RE = re.compile(r"<code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code>")


@pytest.fixture
def official(app, db) -> User:  # type: ignore[no-untyped-def]
    factories.district(db)
    db.commit()
    return make_staff(db, OFFICIAL, Role.official, ["PD"])


def post_code(client, code: str, path: str = "/login/code"):  # type: ignore[no-untyped-def]
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return client.post(path, data={**hidden_fields(page.text), "code": code})


def actions(db) -> list[str]:  # type: ignore[no-untyped-def]
    db.commit()
    return [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id))]


def test_first_sign_in_sets_up_the_app_before_any_other_page(client, app, db, official):
    response = password_step(client, OFFICIAL)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/setup")
    assert client.get("/home").headers["Location"].endswith("/login/code")
    page = client.get("/login/setup")
    assert page.status_code == 200 and "<svg" in page.text and "<path" in page.text
    assert not re.search(r'(src|href|action)="(https?:)?//', page.text), "nothing from another origin"
    assert "<script" not in page.text and "<img" not in page.text, "works with JavaScript off"
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', page.text).group(1)
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", secret), "the key in groups of four"
    assert client.get("/login/setup").text.count(secret) == 1, "a reload shows the same key"
    assert post_code(client, "123456", "/login/setup").status_code == 422
    done = post_code(client, pyotp.TOTP(secret.replace(" ", "")).now(), "/login/setup")
    assert done.status_code == 200
    codes = RECOVERY_RE.findall(done.text)
    assert len(set(codes)) == 10, "ten recovery codes, shown once"
    assert client.get("/home").status_code == 200
    assert "user.mfa_enrol" in actions(db) and "user.sign_in" in actions(db)
    details = str([e.details for e in db.exec(select(AuditEvent))])
    assert secret.replace(" ", "") not in details and not any(c in details for c in codes)


def test_enrolled_account_needs_the_code_and_wrong_codes_are_generic_422(client, app, db, official):
    enrol(app, db, official)
    password_step(client, OFFICIAL)
    wrong = post_code(client, "000000" if totp_code(app, db, OFFICIAL) != "000000" else "111111")
    assert wrong.status_code == 422 and 'role="alert"' in wrong.text
    malformed = post_code(client, "not a code")
    assert malformed.status_code == 422 and malformed.text.count('role="alert"') == 1
    assert client.get("/home").status_code == 302
    assert reload(db, official).failed_logins == 2, "wrong codes count like wrong passwords"
    assert actions(db).count("user.sign_in_failed") == 2
    db.execute(User.__table__.update().values(totp_last_step=None))
    db.commit()
    ok = post_code(client, totp_code(app, db, OFFICIAL))
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/home")
    assert client.get("/home").status_code == 200
    assert reload(db, official).failed_logins == 0


def test_a_code_cannot_be_used_twice(client, app, db, official):
    enrol(app, db, official)
    db.execute(User.__table__.update().values(totp_last_step=None))
    db.commit()
    with time_machine.travel(utcnow(), tick=False):
        code = totp_code(app, db, OFFICIAL)
        password_step(client, OFFICIAL)
        assert post_code(client, code).status_code == 302
        client.post("/logout", data=hidden_fields(client.get("/home").text))
        other = app.test_client()
        password_step(other, OFFICIAL)
        assert post_code(other, code).status_code == 422, "replayed in a second sign-in"
        assert other.get("/home").status_code == 302


def test_a_code_from_the_previous_step_is_accepted(client, app, db, official):
    secret = enrol(app, db, official)
    db.execute(User.__table__.update().values(totp_last_step=None))
    db.commit()
    with time_machine.travel(utcnow(), tick=False) as clock:
        old = pyotp.TOTP(secret).now()
        clock.shift(timedelta(seconds=30))
        password_step(client, OFFICIAL)
        assert post_code(client, old).status_code == 302
        clock.shift(timedelta(seconds=60))
        client.post("/logout", data=hidden_fields(client.get("/home").text))
        password_step(client, OFFICIAL)
        assert post_code(client, pyotp.TOTP(secret).at(utcnow() - timedelta(seconds=60))).status_code == 422


def test_recovery_code_signs_in_once(client, app, db, official):
    password_step(client, OFFICIAL)
    page = code_step(client, db, OFFICIAL)
    codes = RECOVERY_RE.findall(page.text)
    client.post("/logout", data=hidden_fields(client.get("/home").text))
    password_step(client, OFFICIAL)
    response = post_code(client, codes[3].upper())
    assert response.status_code == 302
    assert "还剩 9 个" in client.get("/home").text, "the page says how many are left"
    client.post("/logout", data=hidden_fields(client.get("/home").text))
    password_step(client, OFFICIAL)
    assert post_code(client, codes[3]).status_code == 422
    assert "user.recovery_code_used" in actions(db)


def test_code_failures_reach_the_hard_lock(client, app, db, official):
    enrol(app, db, official)
    password_step(client, OFFICIAL)
    fresh = reload(db, official)
    fresh.failed_logins = users.LOCK_AFTER_FAILURES - 1
    db.add(fresh)
    db.commit()
    assert post_code(client, "000000" if totp_code(app, db, OFFICIAL) != "000000" else "111111").status_code == 422
    assert reload(db, official).locked_at is not None
    response = client.get("/login/code")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login"), "locked: step closed"
    assert password_step(client, OFFICIAL).status_code == 422
    assert "user.lock" in actions(db)


def test_password_and_code_failures_share_the_throttle(client, app, db, official):
    """D4: 10 failures per account in 5 minutes, at either step; then even the right code waits."""
    enrol(app, db, official)
    for _ in range(5):
        assert password_step(client, OFFICIAL, "wrong wrong wrong wrong").status_code == 422
    assert password_step(client, OFFICIAL).status_code == 302
    for _ in range(5):
        assert post_code(client, "abcdef").status_code == 422
    page = client.get("/login/code")
    response = client.post("/login/code", data={**hidden_fields(page.text), "code": totp_code(app, db, OFFICIAL)})
    assert response.status_code == 429


def test_the_half_signed_in_session_expires(client, app, db, official):
    enrol(app, db, official)
    with time_machine.travel(utcnow(), tick=False) as clock:
        password_step(client, OFFICIAL)
        clock.shift(timedelta(minutes=16))
        response = client.get("/login/code")
        assert response.status_code == 302 and response.headers["Location"].endswith("/login")


# Every blueprint behind the staff sign-in (the set-up link and the worker's pages are not).
STAFF_BLUEPRINTS = {
    "auth",
    "roster",
    "transfers",
    "organizer",
    "mfa",
    "api",
    "exports",
    "escalation",
    "admin",
    "admin_webhooks",
    "admin_import",
    "dashboard",
}


def _staff_urls(app: Flask) -> list[tuple[str, str]]:
    """Every staff page and action, with made-up ids (the check is that none answers)."""
    values = {
        "user_id": 1,
        "member_id": 1,
        "transfer_id": 1,
        "job_id": 1,
        "code": "PD",
        "template_name": "a4",
        "fmt": "csv",
    }
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in STAFF_BLUEPRINTS:
            continue
        if rule.endpoint in {"auth.login", "auth.logout", "mfa.code", "mfa.setup", "api.openapi_json"}:
            continue
        path = rule.rule
        for name in rule.arguments:
            made_up = 1 if f"<int:{name}>" in path else values.get(name, "x")
            path = re.sub(rf"<(?:[^:>]+:)?{name}>", str(made_up), path)
        path = path.replace("<any(csv, xlsx):fmt>", "csv")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found


def test_half_signed_in_reaches_only_the_code_step_and_sign_out(client, app, db, official):
    enrol(app, db, official)
    password_step(client, OFFICIAL)
    token = hidden_fields(client.get("/login/code").text)["csrf_token"]
    urls = _staff_urls(app)
    assert len(urls) > 20
    for method, path in urls:
        response = client.open(path, method=method, data={"csrf_token": token}, headers={"X-CSRFToken": token})
        if path.startswith("/api/"):
            assert response.status_code == 401, (method, path)
        else:
            assert response.status_code == 302, (method, path, response.status_code)
            assert response.headers["Location"].endswith("/login/code"), (method, path)
    assert client.get("/login/code").status_code == 200, "the code step stays open"
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/login/code").headers["Location"].endswith("/login"), "signed out: the step is closed"


def test_a_session_without_the_second_factor_is_not_signed_in(client, app, db, official):
    """Sessions from before MFA existed, or of an account whose app was removed, count for nothing."""
    sign_in(client, db, OFFICIAL)
    assert client.get("/home").status_code == 200
    db.execute(User.__table__.update().values(totp_secret_enc=None))
    db.commit()
    assert client.get("/home").status_code == 302


def reauth(client, action: str, password: str, code: str):  # type: ignore[no-untyped-def]
    page = client.get("/mfa")
    assert page.status_code == 200
    data = {**hidden_fields(page.text), "password": password, "code": code, "action": action}
    return client.post("/mfa", data=data)


def test_new_recovery_codes_need_password_and_code(client, app, db, official):
    first = RECOVERY_RE.findall(sign_in(client, db, OFFICIAL).text)
    assert reauth(client, "recovery", "not the password at all", totp_code(app, db, OFFICIAL)).status_code == 422
    db.execute(User.__table__.update().values(totp_last_step=None))
    db.commit()
    assert reauth(client, "recovery", STAFF_PASSWORD, "000000").status_code in (422,)
    db.execute(User.__table__.update().values(totp_last_step=None))
    db.commit()
    response = reauth(client, "recovery", STAFF_PASSWORD, totp_code(app, db, OFFICIAL))
    fresh = RECOVERY_RE.findall(response.text)
    assert response.status_code == 200 and len(fresh) == 10 and not set(fresh) & set(first)
    client.post("/logout", data=hidden_fields(client.get("/home").text))
    password_step(client, OFFICIAL)
    assert post_code(client, first[0]).status_code == 422, "the old codes are gone"
    assert post_code(client, fresh[0]).status_code == 302


def test_replacing_the_app_needs_reauth_and_ends_other_sessions(client, app, db, official):
    sign_in(client, db, OFFICIAL)
    other = app.test_client()
    sign_in(other, db, OFFICIAL)
    assert client.get("/login/setup").headers["Location"].endswith("/mfa"), "no re-auth yet"
    db.execute(User.__table__.update().values(totp_last_step=None))
    db.commit()
    assert reauth(client, "replace", STAFF_PASSWORD, totp_code(app, db, OFFICIAL)).status_code == 303
    page = client.get("/login/setup")
    assert page.status_code == 200 and "<svg" in page.text
    assert other.get("/home").status_code == 200, "nothing changes before the new app is confirmed"
    done = post_code(client, totp_code(app, db, OFFICIAL, pending=True), "/login/setup")
    assert done.status_code == 200 and len(RECOVERY_RE.findall(done.text)) == 10
    assert client.get("/home").status_code == 200, "this device stays signed in"
    assert other.get("/home").status_code == 302, "the other device is signed out"
    assert "user.mfa_replace" in actions(db)


def test_admin_resets_an_account_from_the_users_page(client, app, db, official):
    make_staff(db, ADMIN, Role.admin)
    victim = app.test_client()
    sign_in(victim, db, OFFICIAL)
    sign_in(client, db, ADMIN)
    page = client.get("/users")
    assert f"/users/{official.id}/reset-mfa" in page.text
    admin_id = users.find(db, ADMIN).id
    assert f"/users/{admin_id}/reset-mfa" not in page.text, "one's own app is replaced on /mfa"
    assert client.post(f"/users/{admin_id}/reset-mfa", data=hidden_fields(page.text)).status_code == 403
    response = client.post(f"/users/{official.id}/reset-mfa", data=hidden_fields(page.text))
    assert response.status_code == 303
    assert victim.get("/home").status_code == 302, "the account's sessions end at once"
    assert password_step(victim, OFFICIAL).headers["Location"].endswith("/login/setup"), "enrols again"
    assert "user.mfa_reset" in actions(db)


def test_only_admins_reset(client, app, db, official):
    sign_in(client, db, OFFICIAL)
    page = client.get("/home")
    assert client.post(f"/users/{official.id}/reset-mfa", data=hidden_fields(page.text)).status_code == 403


def test_cli_reset_mfa(client, app, db, official):
    sign_in(client, db, OFFICIAL)
    runner = app.test_cli_runner()
    assert "totp" in runner.invoke(args=["users", "list"]).output
    result = runner.invoke(args=["users", "reset-mfa", OFFICIAL])
    assert result.exit_code == 0 and "reset" in result.output
    assert client.get("/home").status_code == 302
    assert "no-totp" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "reset-mfa", "nobody@example.org"]).exit_code != 0
