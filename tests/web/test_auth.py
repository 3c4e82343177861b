"""Staff sign-in through the test client, CSRF on: fixation, sign-out, timeouts, throttling, lock, roles."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlmodel import Session, select

from app.models import AuditEvent, Role, User, utcnow
from app.services import users
from app.web.access import role_required
from tests import conftest, factories
from tests.conftest import hidden_fields

PASSWORD = "a long enough passphrase"


@pytest.fixture
def official(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    user = users.create(
        db, "official@example.org", role=Role.official, password=PASSWORD, district_codes=[district.code]
    )
    conftest.enrol(app, db, user)
    return user


def login(client, email: str = "official@example.org", password: str = PASSWORD, next_: str = ""):  # type: ignore[no-untyped-def]
    """The password step only (302 to the code step when right)."""
    return conftest.password_step(client, email, password, next_)


def sign_in(client, email: str = "official@example.org", password: str = PASSWORD, next_: str = ""):  # type: ignore[no-untyped-def]
    """Both steps."""
    with Session(client.application.extensions["db_engine"], expire_on_commit=False) as db:
        return conftest.sign_in(client, db, email, password, next_)


def reload(db, user: User) -> User:  # type: ignore[no-untyped-def]
    db.commit()
    db.expire_all()
    fresh = db.get(User, user.id)
    assert fresh is not None
    return fresh


def test_login_form_has_the_autocomplete_hints(client):
    html = client.get("/login").text
    assert 'autocomplete="username"' in html and 'autocomplete="current-password"' in html


def test_sign_in_lands_on_home_and_bad_password_is_422(client, db, official):
    assert login(client, password="not the password at all").status_code == 422
    response = login(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/code")
    assert client.get("/home").status_code == 302, "half signed in: not yet"
    response = conftest.code_step(client, db, "official@example.org")
    assert response.status_code == 302 and response.headers["Location"].endswith("/home")
    assert client.get("/home").status_code == 200


def test_next_must_stay_on_this_site(client, official):
    assert sign_in(client, next_="?next=//evil.example/x").headers["Location"].endswith("/home")
    client.post("/logout", data=hidden_fields(client.get("/home").text))
    assert (
        sign_in(client, next_="?next=/roster/%3Fstatus%3Dpending")
        .headers["Location"]
        .endswith("/roster/?status=pending")
    )


def test_session_is_renewed_on_sign_in(client, app, official):
    """Scenario 32: nothing of the anonymous session (CSRF secret, cookie) survives sign-in."""
    client.get("/login")
    with client.session_transaction() as before:
        csrf_before = before.get("csrf_token")
    cookie_before = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    sign_in(client)
    with client.session_transaction() as after:
        assert "_user_id" in after and after.get("csrf_token") != csrf_before
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value != cookie_before


def test_sign_out_kills_copies_of_the_cookie(client, app, official):
    """Scenario 33: a cookie captured before sign-out no longer works."""
    sign_in(client)
    name = app.config["SESSION_COOKIE_NAME"]
    stolen = client.get_cookie(name).value
    page = client.get("/home")
    response = client.post("/logout", data=hidden_fields(page.text))
    assert response.status_code == 302
    client.set_cookie(name, stolen)
    response = client.get("/home")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_idle_limit(client, official):
    """Scenario 34: 59 minutes idle is fine, 61 minutes ends the session."""
    with time_machine.travel(utcnow(), tick=False) as clock:
        sign_in(client)
        clock.shift(timedelta(minutes=59))
        assert client.get("/home").status_code == 200
        clock.shift(timedelta(minutes=61))
        response = client.get("/home")
        assert response.status_code == 302 and "/login" in response.headers["Location"]
        assert client.get("/home").status_code == 302, "the session stays ended"


def test_absolute_limit_despite_activity(client, official):
    """Scenario 34: active every 50 minutes, the session still ends 24 h after sign-in."""
    with time_machine.travel(utcnow(), tick=False) as clock:
        sign_in(client)
        for _ in range(28):  # 23 h 20 min
            clock.shift(timedelta(minutes=50))
            assert client.get("/home").status_code == 200
        clock.shift(timedelta(minutes=41))  # 24 h 01 min
        assert client.get("/home").status_code == 302


def test_eleventh_failure_for_one_account_is_429(client, official):
    """Scenario 38: 10 failures per account per 5 minutes; then even the right password waits."""
    for _ in range(10):
        assert login(client, password="wrong wrong wrong wrong").status_code == 422
    assert login(client).status_code == 429


def test_eleventh_failure_from_one_ip_is_429(client, official):
    for n in range(10):
        assert login(client, email=f"nobody{n}@example.org").status_code == 422
    assert login(client).status_code == 429


def test_successful_sign_ins_are_not_throttled(client, official):
    for _ in range(12):
        sign_in(client)
        client.post("/logout", data=hidden_fields(client.get("/home").text))


def test_throttle_window_passes(client, official):
    with time_machine.travel(utcnow(), tick=False) as clock:
        for _ in range(10):
            login(client, password="wrong wrong wrong wrong")
        clock.shift(timedelta(minutes=6))
        assert login(client).status_code == 302


def test_hundredth_failure_locks_until_an_admin_unlocks(client, app, db, official, caplog):
    """Scenario 38: the hard lock, logged and audited, lifted by `flask users unlock`."""
    official.failed_logins = users.LOCK_AFTER_FAILURES - 1
    db.add(official)
    db.commit()
    with caplog.at_level(logging.INFO):
        assert login(client, password="wrong wrong wrong wrong").status_code == 422
    assert reload(db, official).locked_at is not None
    assert "account locked" in caplog.text and "official@example.org" not in caplog.text
    assert login(client).status_code == 422, "locked: the right password does not help"
    result = app.test_cli_runner().invoke(args=["users", "unlock", "official@example.org"])
    assert result.exit_code == 0, result.output
    assert login(client).status_code == 302
    db.commit()
    actions = {e.action for e in db.exec(select(AuditEvent))}
    assert {"user.lock", "user.unlock"} <= actions


def test_deactivated_user_is_signed_out_at_once(client, app, official):
    sign_in(client)
    assert client.get("/home").status_code == 200
    app.test_cli_runner().invoke(args=["users", "deactivate", "official@example.org"])
    assert client.get("/home").status_code == 302


def test_role_denial_is_403_and_logged_without_personal_data(app: Flask, db, caplog):
    @role_required(Role.official)
    def officials_only() -> str:
        return "ok"

    app.add_url_rule("/test-officials-only", view_func=officials_only)
    district = factories.district(db)
    users.create(db, "organizer@example.org", role=Role.organizer, password=PASSWORD, district_codes=[district.code])
    db.commit()
    client = app.test_client()
    assert client.get("/test-officials-only").status_code == 302, "anonymous: to the sign-in page"
    sign_in(client, email="organizer@example.org")
    with caplog.at_level(logging.WARNING):
        assert client.get("/test-officials-only").status_code == 403
    assert "denied role" in caplog.text and "organizer@example.org" not in caplog.text


def test_cli_create_refuses_a_short_or_common_password(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "a@example.org", "--role", "admin", "--password-stdin"], input="short\n"
    )
    assert result.exit_code != 0 and "15" in result.output
    result = runner.invoke(
        args=["users", "create", "a@example.org", "--role", "admin", "--password-stdin"], input="yfdbufnjh10305070\n"
    )
    assert result.exit_code != 0 and "common" in result.output
    result = runner.invoke(args=["users", "create", "a@example.org", "--role", "admin"])
    assert result.exit_code == 0 and "password (shown once)" in result.output


def test_admin_unlocks_from_the_users_page(client, app, db, official):
    users.create(db, "admin@example.org", role=Role.admin, password=PASSWORD)
    official.locked_at, official.failed_logins = utcnow(), users.LOCK_AFTER_FAILURES
    db.add(official)
    db.commit()
    other = app.test_client()
    login(other)  # the locked official
    assert other.get("/home").status_code == 302
    sign_in(client, email="admin@example.org")
    page = client.get("/users")
    assert page.status_code == 200 and "official@example.org" in page.text
    response = client.post(f"/users/{official.id}/unlock", data=hidden_fields(page.text))
    assert response.status_code == 303
    assert reload(db, official).locked_at is None and official.failed_logins == 0
    assert login(other).status_code == 302


def test_users_page_is_for_admins_only(client, db, official):
    sign_in(client)
    assert client.get("/users").status_code == 403
    page = client.get("/home")
    assert client.post(f"/users/{official.id}/unlock", data=hidden_fields(page.text)).status_code == 403


def change(client, current: str, new: str):  # type: ignore[no-untyped-def]
    page = client.get("/password")
    assert page.status_code == 200 and 'autocomplete="new-password"' in page.text
    return client.post("/password", data={**hidden_fields(page.text), "current": current, "new": new})


def test_change_password_ends_other_sessions_only(client, app, official):
    other = app.test_client()
    sign_in(client)
    sign_in(other)
    response = change(client, PASSWORD, "a brand new passphrase")
    assert response.status_code == 303
    assert client.get("/home").status_code == 200, "this device stays signed in"
    assert other.get("/home").status_code == 302, "the other device is signed out"
    client.post("/logout", data=hidden_fields(client.get("/home").text))
    assert login(client).status_code == 422
    assert login(client, password="a brand new passphrase").status_code == 302


@pytest.mark.parametrize(
    "current, new",
    [
        ("not the current one", "a brand new passphrase"),
        (PASSWORD, "too short"),
        (PASSWORD, "yfdbufnjh10305070"),
        (PASSWORD, "official@example.org"),
    ],
)
def test_change_password_refusals(client, official, current, new):
    sign_in(client)
    response = change(client, current, new)
    assert response.status_code == 422 and 'role="alert"' in response.text
    client.post("/logout", data=hidden_fields(client.get("/home").text))
    assert login(client).status_code == 302, "the old password still works"
