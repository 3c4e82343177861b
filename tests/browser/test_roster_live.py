"""Issue 4 item 9 in a real browser: an official watches a worker's application arrive live,
approves it, the worker gets the SMS and sees the member number on the status page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyotp
import pytest
from sqlmodel import Session

from app.models import Role
from tests import conftest, factories

pytestmark = pytest.mark.browser
WAIT_MS = 15_000  # generous: the page polls every 2 s; this only bounds a hang


def outbox_messages(outbox: Path) -> list[dict[str, str]]:
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line.strip()]


def last_code(outbox: Path, to: str) -> str:
    for message in reversed(outbox_messages(outbox)):
        if message["to"] == to:
            match = re.search(r"\b(\d{6})\b", message["body"])
            if match:
                return match.group(1)
    raise AssertionError("no code in the outbox")


def setup_data(app) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        station = factories.workplace(db, district)
        db.commit()
        conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
    return "official@example.org", conftest.STAFF_PASSWORD, factories.join_path(app, station)


def test_official_sees_new_application_live_approves_and_worker_reads_member_number(live_app, chromium):
    email, password, join_path = setup_data(live_app.app)
    phone = factories.phone(7)
    official_ctx = chromium.new_context(locale="en-US")
    worker_ctx = chromium.new_context(locale="en-US")
    official = official_ctx.new_page()

    official.goto(live_app.url + "/login")
    official.fill("input[name=email]", email)
    official.fill("input[name=password]", password)
    official.click("form button[type=submit]")
    # First sign-in: set the app up from the enrolment page's key, as a person would type it.
    official.wait_for_url("**/login/setup")
    secret = official.locator("#totp-secret").inner_text().replace(" ", "")
    official.fill("input[name=code]", pyotp.TOTP(secret).now())
    official.click("form button[type=submit]:not(.secondary)")
    official.locator("ul.recovery-codes").wait_for(timeout=WAIT_MS)
    official.goto(live_app.url + "/roster/?status=pending")
    assert official.locator("tr[data-id]").count() == 0
    official.evaluate("window.__sameDocument = true")

    worker = worker_ctx.new_page()
    worker.goto(live_app.url + join_path)
    worker.fill("input[name=name]", "王小明")
    worker.fill("input[name=phone]", phone[3:])
    worker.select_option("select[name=platform]", "meituan")  # nothing is chosen for the worker
    worker.check("input[name=consent]")
    worker.click("form button[type=submit]")
    worker.wait_for_url("**/join/code")
    worker.fill("input[name=code]", last_code(live_app.outbox, phone))
    worker.click("form[action$='/join/code'] button[type=submit]")
    worker.wait_for_url("**/join/done")

    # The arrival is announced; the rows move only when the official asks for them.
    announcement = official.locator("#live-show")
    announcement.wait_for(timeout=WAIT_MS)
    assert official.locator("#live-n").inner_text() == "1"
    assert official.locator("tr[data-id]").count() == 0
    announcement.click()
    row = official.locator("tr[data-id]", has_text="王小明")
    row.wait_for(timeout=WAIT_MS)
    assert official.evaluate("window.__sameDocument === true"), "the row arrived without a reload"
    assert official.locator('[data-count="pending"]').inner_text() == "1"

    sent_before = len(outbox_messages(live_app.outbox))
    row.locator("button[name=one]").click()
    official.wait_for_load_state()
    assert "PD-000001" in official.locator("table.results").inner_text()

    decision = outbox_messages(live_app.outbox)[sent_before:]
    assert len(decision) == 1 and decision[0]["to"] == phone
    link = re.search(r"https?://\S+", decision[0]["body"]).group(0)
    assert link == live_app.url + "/status/"

    worker.goto(link)
    worker.fill("input[name=phone]", phone[3:])
    worker.click("form button[type=submit]")
    worker.wait_for_url("**/status/code")
    worker.fill("input[name=code]", last_code(live_app.outbox, phone))
    worker.click("form[action$='/status/code'] button[type=submit]")
    worker.wait_for_url("**/status/me")
    assert worker.locator("#member-number").inner_text() == "PD-000001"
    official_ctx.close()
    worker_ctx.close()
