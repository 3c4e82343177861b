"""The staff home page links each role to what it may use."""

from __future__ import annotations

from app.models import Role
from app.services import users
from tests import factories
from tests.conftest import hidden_fields

PASSWORD = "correct horse battery staple"


def sign_in(client, db, role: Role):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    db.commit()
    codes = [] if role is Role.admin else [district.code]
    users.create(db, f"{role.value}@example.org", role=role, password=PASSWORD, district_codes=codes)
    db.commit()
    page = client.get("/login")
    client.post("/login", data={**hidden_fields(page.text), "email": f"{role.value}@example.org", "password": PASSWORD})
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
