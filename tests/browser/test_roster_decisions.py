"""Issue 11 item 5 in a real browser: a key press on the roster decides no one by accident."""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlmodel import Session, select

from app.models import Member, MemberStatus, Role
from tests import conftest, factories
from tests.browser.test_roster_live import outbox_messages
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser


def signed_in_official(live_app, chromium, *, javascript: bool):  # type: ignore[no-untyped-def]
    """Two pending applicants in PD and an official's page signed in through both steps."""
    app = live_app.app
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        first = make_member(db, app.extensions["pii"], district, 1, name="甲一")
        second = make_member(db, app.extensions["pii"], district, 2, name="乙二")
        db.commit()
        user = conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
        secret = conftest.enrol(app, db, user)
    page = chromium.new_context(locale="zh-CN", java_script_enabled=javascript).new_page()
    page.goto(live_app.url + "/login")
    page.fill("input[name=email]", "official@example.org")
    page.fill("input[name=password]", conftest.STAFF_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/login/code")
    # enrol() used this step's code; the next step's is accepted (±1 step) and not a replay.
    page.fill("input[name=code]", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("form button[type=submit]")
    page.goto(live_app.url + "/roster/?status=pending")
    return page, first.id, second.id


def statuses(app) -> dict[int, MemberStatus]:  # type: ignore[no-untyped-def]
    with Session(app.extensions["db_engine"]) as db:
        return {m.id: m.status for m in db.exec(select(Member))}


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
def test_enter_in_the_reason_box_decides_no_one(live_app, chromium, javascript):
    page, first, second = signed_in_official(live_app, chromium, javascript=javascript)
    page.check(f"input[name=ids][value='{second}']")
    reason = page.locator("input[name=reason]")
    reason.fill("不在本区工作")
    reason.press("Enter")
    page.wait_for_timeout(500)  # a submission, had there been one, would have started by now
    page.wait_for_load_state()
    assert statuses(live_app.app) == {first: MemberStatus.pending, second: MemberStatus.pending}
    assert outbox_messages(live_app.outbox) == []
    # The official's intended action still works: the same box, then the Reject button.
    page.click("button[name=action][value=reject]")
    page.wait_for_load_state()
    assert statuses(live_app.app) == {first: MemberStatus.pending, second: MemberStatus.rejected}


def test_enter_in_the_search_box_searches_and_decides_no_one(live_app, chromium):
    page, first, second = signed_in_official(live_app, chromium, javascript=False)
    box = page.locator("input[name=q]")
    box.fill("乙二")
    box.press("Enter")
    page.wait_for_url("**q=*")
    assert statuses(live_app.app) == {first: MemberStatus.pending, second: MemberStatus.pending}


FIELDS = [
    "input[name=q]",
    "input[name=district]",
    "input[name=workplace]",
    "select[name=platform]",
    "select[name=sort]",
    "input[name=recent]",
    "input[name=overdue]",
    "input[name=ids]",
    "input[name=reason]",
]


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
def test_enter_in_every_roster_field_decides_no_one(live_app, chromium, javascript):
    page, first, second = signed_in_official(live_app, chromium, javascript=javascript)
    roster_url = page.url
    fields = page.locator("main input:not([type=hidden]), main select")
    assert fields.count() == len(FIELDS) + 1, "a new field? add it to FIELDS"  # two rows: two ids boxes
    for selector in FIELDS:
        page.goto(roster_url)
        page.check(f"input[name=ids][value='{second}']")
        field = page.locator(selector).first
        if selector == "input[name=reason]":
            field.fill("不在本区工作")
        field.press("Enter")
        page.wait_for_timeout(300)  # a submission, had there been one, would have started by now
        page.wait_for_load_state()
        assert statuses(live_app.app) == {first: MemberStatus.pending, second: MemberStatus.pending}, selector
    assert outbox_messages(live_app.outbox) == []
    # Each row's own Approve still decides that row, and only it.
    page.goto(roster_url)
    page.check(f"input[name=ids][value='{second}']")
    page.locator(f"button[name=one][value='{first}']").click()
    page.wait_for_load_state()
    assert statuses(live_app.app) == {first: MemberStatus.approved, second: MemberStatus.pending}


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
def test_enter_in_the_member_pages_reason_box_decides_no_one(live_app, chromium, javascript):
    page, first, second = signed_in_official(live_app, chromium, javascript=javascript)
    page.goto(f"{live_app.url}/roster/{first}")
    reason = page.locator("input[name=reason]")
    reason.fill("不在本区工作")
    reason.press("Enter")
    page.wait_for_timeout(300)  # a submission, had there been one, would have started by now
    page.wait_for_load_state()
    assert statuses(live_app.app) == {first: MemberStatus.pending, second: MemberStatus.pending}
    page.locator("form[action$='/reject'] button:not([disabled])").click()
    page.wait_for_load_state()
    assert statuses(live_app.app)[first] is MemberStatus.rejected
