"""One-time set-up links: signed, expiring, single use, replaced by a newer one."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.models import AuditEvent, Role, utcnow
from app.services import staff_setup, users
from tests import factories

KEY = "k" * 40
PASSWORD = "a long enough passphrase"


@pytest.fixture
def invited(db):  # type: ignore[no-untyped-def]
    factories.district(db)
    user = users.invite(db, "new@example.org", role=Role.official, district_codes=["PD"])
    db.commit()
    return user


def test_a_link_sets_the_password_once(db, invited):
    assert users.authenticate(db, "new@example.org", PASSWORD, now=utcnow()) is None
    token = staff_setup.issue(db, invited, secret_key=KEY)
    assert staff_setup.check(db, token, secret_key=KEY, max_age=60).id == invited.id
    staff_setup.complete(db, token, PASSWORD, secret_key=KEY, max_age=60, now=utcnow())
    db.commit()
    assert users.authenticate(db, "new@example.org", PASSWORD, now=utcnow()) is not None
    with pytest.raises(staff_setup.LinkUsed):
        staff_setup.complete(db, token, "another long passphrase", secret_key=KEY, max_age=60, now=utcnow())
    actions = [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-2:] == ["user.setup_link", "user.setup_done"]


def test_a_newer_link_replaces_the_older(db, invited):
    old = staff_setup.issue(db, invited, secret_key=KEY)
    new = staff_setup.issue(db, invited, secret_key=KEY)
    with pytest.raises(staff_setup.LinkUsed):
        staff_setup.check(db, old, secret_key=KEY, max_age=60)
    assert staff_setup.check(db, new, secret_key=KEY, max_age=60).id == invited.id


def test_tampered_foreign_and_expired_links_are_refused(db, invited):
    token = staff_setup.issue(db, invited, secret_key=KEY)
    with pytest.raises(staff_setup.LinkInvalid):
        staff_setup.check(db, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), secret_key=KEY, max_age=60)
    with pytest.raises(staff_setup.LinkInvalid):
        staff_setup.check(db, token, secret_key="x" * 40, max_age=60)
    with pytest.raises(staff_setup.LinkExpired):
        staff_setup.check(db, token, secret_key=KEY, max_age=-1)


def test_a_weak_password_leaves_the_link_usable(db, invited):
    token = staff_setup.issue(db, invited, secret_key=KEY)
    with pytest.raises(users.UserError):
        staff_setup.complete(db, token, "short", secret_key=KEY, max_age=60, now=utcnow())
    assert staff_setup.check(db, token, secret_key=KEY, max_age=60).id == invited.id


def test_a_switched_off_account_has_no_link(db, invited):
    token = staff_setup.issue(db, invited, secret_key=KEY)
    users.deactivate(db, invited)
    with pytest.raises(staff_setup.LinkInvalid):
        staff_setup.check(db, token, secret_key=KEY, max_age=60)


def test_update_access_replaces_role_and_districts(db, invited):
    factories.district(db, "MH", "闵行区总工会")
    users.update_access(db, invited, role=Role.organizer, district_codes=["MH"])
    assert invited.role is Role.organizer and users.district_codes(db, invited) == ["MH"]
    with pytest.raises(users.UserError):
        users.update_access(db, invited, role=Role.official, district_codes=[])
    users.update_access(db, invited, role=Role.admin, district_codes=["MH"])
    assert users.district_codes(db, invited) == []
