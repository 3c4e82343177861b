"""The worker's status page in Chromium at 360 px with JavaScript off: the e-card of an approved
member, an official's question answered, and a rejected applicant's one appeal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session

from app.models import Role, utcnow
from app.services import lifecycle, roster
from tests import conftest, factories
from tests.browser.test_card_page import WECHAT
from tests.browser.test_roster_live import last_code
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser


def _members(app) -> None:  # type: ignore[no-untyped-def]
    """Phone 1 approved, phone 2 pending with a question, phone 3 rejected."""
    pii = app.extensions["pii"]
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        official = conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
        approved = make_member(db, pii, district, 1, name="陈小明")
        asked = make_member(db, pii, district, 2, name="李四")
        rejected = make_member(db, pii, district, 3, name="王五")
        roster.approve(db, None, approved.id, by=official, now=utcnow())
        roster.reject(db, None, rejected.id, by=official, reason="未填写站点", now=utcnow())
        lifecycle.ask(db, None, asked.id, by=official, question="请问你在哪个站点跑单？", pii=pii, now=utcnow())
        db.commit()


def _status_page(context, live_app, n: int):  # type: ignore[no-untyped-def]
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(live_app.url + "/status/")
    page.fill("input[name=phone]", factories.phone(n)[3:])
    page.click("button[type=submit]")
    page.fill("input[name=code]", last_code(live_app.outbox, factories.phone(n)))
    page.click("form[action$='/status/code'] button[type=submit]")
    assert page.url.endswith("/status/me")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "no sideways scrolling"
    return page, requests


def test_status_page_card_question_and_appeal_at_360_px_without_javascript(live_app, chromium, tmp_path: Path):
    _members(live_app.app)
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    context = chromium.new_context(  # type: ignore[attr-defined]
        locale="zh-CN", java_script_enabled=False, user_agent=WECHAT, viewport={"width": 360, "height": 740}
    )

    page, requests = _status_page(context, live_app, 1)
    body = page.inner_text("main")
    assert "陈*明" in body and "陈小明" not in body and "PD-000001" in body and "有效期至" in body
    box = page.locator("figure.card-qr svg").bounding_box()
    assert box is not None and box["width"] >= 250, "a QR large enough to scan from the screen"
    page.screenshot(path=str(shots / "status-card-360.png"), full_page=True)

    page, more = _status_page(context, live_app, 2)
    requests += more
    assert "请问你在哪个站点跑单？" in page.inner_text("main")
    page.screenshot(path=str(shots / "status-question-360.png"), full_page=True)
    page.fill("textarea[name=text]", "张江美团站")
    page.click("form[action$='/status/answer'] button[type=submit]")
    assert "你的回答已提交" in page.inner_text("main") and "等待审核" in page.inner_text("main")
    page.screenshot(path=str(shots / "status-answered-360.png"), full_page=True)

    page, more = _status_page(context, live_app, 3)
    requests += more
    page.click("details.appeal summary")  # a native <details>: opens without JavaScript
    page.screenshot(path=str(shots / "status-appeal-360.png"), full_page=True)
    page.fill("textarea[name=text]", "我在张江站跑单，有站长证明")
    page.click("form[action$='/status/appeal'] button[type=submit]")
    assert "申诉已提交" in page.inner_text("main") and "你的申诉正在复核" in page.inner_text("main")
    page.screenshot(path=str(shots / "status-appealed-360.png"), full_page=True)
    assert all(url.startswith(live_app.url) for url in requests), "nothing from another origin"
