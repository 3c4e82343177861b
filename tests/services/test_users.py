"""Staff accounts: password policy (D1), hash parameters (D2), the hard lock (D4)."""

from __future__ import annotations

import pytest
from argon2 import Type, extract_parameters
from sqlmodel import select

from app.models import AuditEvent, Role, User, utcnow
from app.services import users
from tests import factories

GOOD = "correct horse battery staple"


def admin(db, password: str = GOOD) -> User:  # type: ignore[no-untyped-def]
    return users.create(db, "Admin@Example.org", role=Role.admin, password=password)


def test_create_stores_argon2id_at_least_owasp_strength(db):
    user = admin(db)
    params = extract_parameters(user.password_hash)
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism >= 1
    assert params.salt_len >= 16 and GOOD not in user.password_hash
    assert user.email == "admin@example.org"


@pytest.mark.parametrize("password", ["a" * 14, "yfdbufnjh10305070", "YFDBUFNJH10305070", "x" * 257])
def test_policy_rejects_short_common_and_huge(password):
    with pytest.raises(users.UserError):
        users.check_password(password)


def test_common_list_has_three_thousand_entries():
    assert len(users.common_passwords()) >= 2900
    assert "password" in users.common_passwords()


def test_policy_accepts_64_unicode_characters_and_no_composition_rules(db):
    password = "工会" * 32  # 64 characters, no digits, no capitals, no symbols
    assert users.check_password(password) == password
    assert users.check_password("all lower case words") == "all lower case words"
    user = users.create(db, "u@example.org", role=Role.admin, password=password)
    db.flush()
    assert users.authenticate(db, "u@example.org", password, now=utcnow()) is user


def test_password_equal_to_email_is_refused():
    with pytest.raises(users.UserError):
        users.check_password("someone.long@example.org", "Someone.Long@example.org")


def test_password_is_compared_after_nfkc(db):
    users.create(db, "n@example.org", role=Role.admin, password="ｆｕｌｌｗｉｄｔｈ ｐａｓｓｗｏｒｄ")
    assert users.authenticate(db, "n@example.org", "fullwidth password", now=utcnow()) is not None


def test_officials_need_a_district(db):
    with pytest.raises(users.UserError):
        users.create(db, "o@example.org", role=Role.official, password=GOOD)
    district = factories.district(db)
    user = users.create(db, "o@example.org", role=Role.official, password=GOOD, district_codes=[district.code])
    assert users.district_ids(db, user) == [district.id]


def test_only_a_complete_sign_in_resets_the_failure_count(db):
    """The right password alone keeps the count: the second factor still has to pass (D3, D4)."""
    user = admin(db)
    for _ in range(3):
        assert users.authenticate(db, user.email, "wrong password here!", now=utcnow()) is None
    assert user.failed_logins == 3
    assert users.authenticate(db, user.email, GOOD, now=utcnow()) is user
    assert user.failed_logins == 3
    users.record_failure(db, user, now=utcnow(), step="code")
    assert user.failed_logins == 4, "a wrong code counts like a wrong password"
    users.complete_sign_in(db, user, now=utcnow(), method="totp")
    assert user.failed_logins == 0 and user.last_login_at is not None
    events = [e.action for e in db.exec(select(AuditEvent))]
    assert "user.sign_in" in events and "user.sign_in_failed" in events


def test_hundredth_consecutive_failure_locks_until_unlocked(db):
    user = admin(db)
    user.failed_logins = users.LOCK_AFTER_FAILURES - 1
    db.add(user)
    db.flush()
    assert users.authenticate(db, user.email, "wrong password here!", now=utcnow()) is None
    assert user.locked_at is not None
    assert users.authenticate(db, user.email, GOOD, now=utcnow()) is None, "locked: even the right password fails"
    users.unlock(db, user, actor_id=None)
    assert users.authenticate(db, user.email, GOOD, now=utcnow()) is user
    actions = [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert "user.lock" in actions and "user.unlock" in actions


def test_deactivate_and_set_password_end_sessions(db):
    user = admin(db)
    version = user.session_version
    users.set_password(db, user, "another long passphrase")
    assert user.session_version == version + 1
    assert users.authenticate(db, user.email, GOOD, now=utcnow()) is None
    users.deactivate(db, user)
    assert users.authenticate(db, user.email, "another long passphrase", now=utcnow()) is None
