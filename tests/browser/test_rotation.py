"""Issue 11 item 5: replacing a place's code asks first, and says what stops working (JS off)."""

from __future__ import annotations

import re

import pytest
from sqlmodel import Session

from app.models import PlaceKind, Role, Workplace, utcnow
from app.services import stats
from tests import factories
from tests.browser.staff import signed_in_page

pytestmark = pytest.mark.browser


def version_of(app, place_id: int) -> int:  # type: ignore[no-untyped-def]
    with Session(app.extensions["db_engine"]) as db:
        return db.get(Workplace, place_id).qr_version


def test_rotation_needs_a_confirmation_with_javascript_off(live_app, chromium):
    app = live_app.app
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        station = factories.workplace(db, factories.district(db))
        for _ in range(4):
            stats.bump(
                db, kind=PlaceKind.workplace, place_id=station.id, qr_version=1, step="scans", day=utcnow().date()
            )
        db.commit()
    page = signed_in_page(live_app, chromium, "organizer@example.org", Role.organizer, ["PD"], javascript=False)
    page.goto(f"{live_app.url}/organizer/places/{station.code}/rotate")
    assert version_of(app, station.id) == 1, "opening the confirmation changes nothing"
    count = page.locator("#rotate-count").inner_text()
    assert re.findall(r"\d+", count)[:2] == ["1", "4"], "version 1, scanned 4 times"
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"**/organizer/places/{station.code}")
    assert version_of(app, station.id) == 2
