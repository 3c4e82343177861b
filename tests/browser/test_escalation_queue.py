"""The federation's escalation queue and the member page's question form in Chromium (390 and 1366 px)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from app.models import Role, utcnow
from app.services import lifecycle, roster
from tests import conftest, factories
from tests.browser.staff import signed_in_page
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser


def _queue(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """An overdue application and an appealed one."""
    pii = app.extensions["pii"]
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        official = conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
        late = make_member(db, pii, district, 1, age_days=40)
        appealed = make_member(db, pii, district, 2, name="王五")
        db.commit()
        rejected = roster.reject(db, None, appealed.id, by=official, reason="未填写站点", now=utcnow())
        lifecycle.appeal(db, rejected, text="我有站长证明", pii=pii, now=utcnow() + timedelta(minutes=1))
        db.commit()
        return late.id, appealed.id


@pytest.mark.parametrize("width", [390, 1366])
def test_the_admin_sends_back_and_decides_from_the_queue(live_app, chromium, tmp_path: Path, width: int):
    late, appealed = _queue(live_app.app)
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page = signed_in_page(live_app, chromium, "admin@example.org", Role.admin, [], javascript=False, width=width)
    page.goto(live_app.url + "/admin/escalations")
    assert page.locator(f"#escalated-{late}").is_visible() and page.locator(f"#escalated-{appealed}").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"
    page.screenshot(path=str(shots / f"escalation-queue-{width}.png"), full_page=True)
    page.click(f"#escalated-{late} details.send-back summary")  # native: opens without JavaScript
    page.fill(f"#note-{late}", "请三日内处理")
    page.click(f"form[action$='/admin/escalations/{late}/return'] button[type=submit]")
    assert "已附说明退回区工会" in page.inner_text("main")
    page.fill(f"#reason-{appealed}", "复核维持")
    page.click(f"#escalated-{appealed} button[value=reject]")
    assert "暂无需督办的申请" in page.inner_text("main")
    page.goto(live_app.url + f"/roster/{appealed}")
    assert "我有站长证明" in page.inner_text("main")
    page.screenshot(path=str(shots / f"escalation-member-{width}.png"), full_page=True)
