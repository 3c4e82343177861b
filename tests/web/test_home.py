"""The staff home page links each role to what it may use."""

from __future__ import annotations

from app.models import Role
from tests import conftest, factories


def sign_in(client, db, role: Role):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    db.commit()
    codes = [] if role is Role.admin else [district.code]
    conftest.make_staff(db, f"{role.value}@example.org", role, codes)
    conftest.sign_in(client, db, f"{role.value}@example.org")
    return client.get("/home").text


def test_official_sees_the_roster_and_posters(client, db):
    html = sign_in(client, db, Role.official)
    assert 'href="/roster/"' in html and 'href="/organizer/"' in html and "/roster/audit" not in html


def test_organizer_sees_posters_but_no_roster(client, db):
    html = sign_in(client, db, Role.organizer)
    assert 'href="/organizer/"' in html and 'href="/roster/"' not in html


def test_admin_also_sees_the_audit_log(client, db):
    html = sign_in(client, db, Role.admin)
    assert 'href="/roster/audit"' in html and 'href="/roster/"' in html
