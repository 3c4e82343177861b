"""Issue 11 item 5: live updates announce new applications instead of moving the rows."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app.models import District, Role
from app.services import audit
from tests.browser.staff import signed_in_page
from tests.browser.test_roster_phone import some_applications
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser
WAIT_MS = 15_000  # the page polls every 2 s; this only bounds a hang


@pytest.mark.parametrize("width", [390, 1366])
def test_a_new_application_is_announced_and_no_row_moves(live_app, chromium, width):
    app = live_app.app
    some_applications(app)
    page = signed_in_page(live_app, chromium, "official@example.org", Role.official, ["PD"], width=width)
    page.goto(live_app.url + "/roster/?status=pending")
    page.evaluate("window.__sameDocument = true")
    first_approve = page.locator("tr[data-id] button[name=one]").first
    before = first_approve.bounding_box()
    shown = page.locator("tr[data-id]").count()
    with Session(app.extensions["db_engine"]) as db:
        district = db.exec(select(District)).one()
        for n, name in ((50, "新来的"), (51, "又一个")):
            member = make_member(db, app.extensions["pii"], district, n, name=name)
            db.flush()  # as membership.enrol does: the audit event is what the page polls for
            audit.record(db, "member.created", target_type="member", target_id=member.id, district_id=district.id)
        db.commit()
    page.locator("#live-show").wait_for(timeout=WAIT_MS)
    assert page.locator("#live-n").inner_text() == "2"
    assert page.locator('[data-count="pending"]').inner_text() == str(shown + 2)
    assert first_approve.bounding_box() == before, "the row under the pointer stayed put"
    assert page.locator("tr[data-id]").count() == shown and page.locator("text=新来的").count() == 0
    page.locator("#live-show").click()
    page.locator("tr[data-id]", has_text="新来的").wait_for(timeout=WAIT_MS)
    assert page.locator("tr[data-id]").count() == shown + 2
    assert page.locator("#live-show").is_hidden()
    assert page.evaluate("window.__sameDocument === true"), "shown without a reload"
