"""Transfers in Chromium: the worker's offer at 360 px with JavaScript off; the incoming tab at 390 and 1366 px."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.models import Member, Role, utcnow
from app.services import roster, transfers
from tests import conftest, factories
from tests.browser.staff import signed_in_page
from tests.browser.test_card_page import WECHAT
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser


def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("SCREENSHOT_DIR", tmp_path))


def last_code(outbox: Path) -> str:
    line = outbox.read_text(encoding="utf-8").strip().splitlines()[-1]
    match = re.search(r"\b(\d{6})\b", json.dumps(json.loads(line), ensure_ascii=False))
    assert match
    return match.group(1)


def join(page, url: str, outbox: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.fill("input[name=name]", "陈小明")
    page.fill("input[name=phone]", factories.phone(7)[3:])
    page.select_option("select[name=platform]", "meituan")
    page.check("input[name=consent]")
    page.click("form button[type=submit]")
    page.wait_for_url("**/join/code")
    page.fill("input[name=code]", last_code(outbox))
    page.click("form button[type=submit]")


def test_worker_offer_at_360_px_without_javascript(live_app, chromium, tmp_path: Path):
    app = live_app.app
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        pd, xh = factories.district(db), factories.district(db, "XH", "徐汇区总工会")
        pd_station, xh_station = factories.workplace(db, pd), factories.workplace(db, xh, "XH-TJ01", "田林饿了么站")
        official = conftest.make_staff(db, "o@example.org", Role.official, ["PD"])
        db.commit()
    context = chromium.new_context(  # type: ignore[attr-defined]
        locale="zh-CN", java_script_enabled=False, user_agent=WECHAT, viewport={"width": 360, "height": 740}
    )
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    join(page, live_app.url + factories.join_path(app, pd_station), live_app.outbox)
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        roster.approve(db, None, db.exec(select(Member)).one().id, by=official, now=utcnow())
        db.commit()
    join(page, live_app.url + factories.join_path(app, xh_station), live_app.outbox)
    page.wait_for_url("**/join/transfer")
    body = page.inner_text("main")
    assert "浦东新区总工会" in body and "徐汇区总工会" in body and "把我的会员关系转到这里" in body
    button = page.locator("form button[type=submit]").bounding_box()
    assert button is not None and button["height"] >= 44
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "no sideways scrolling"
    page.screenshot(path=str(shots(tmp_path) / "transfer-offer-360.png"), full_page=True)
    page.click("form button[type=submit]")
    page.wait_for_url("**/join/transfer")
    assert "你的转接申请正在等待审核" in page.inner_text("main")
    page.screenshot(path=str(shots(tmp_path) / "transfer-waiting-360.png"), full_page=True)
    assert all(url.startswith(live_app.url) for url in requests), "nothing from another origin"


@pytest.mark.parametrize("width", [390, 1366])
def test_incoming_transfers_tab(live_app, chromium, tmp_path: Path, width: int):
    app = live_app.app
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        pd = factories.district(db)
        factories.district(db, "XH", "徐汇区总工会")
        admin = conftest.make_staff(db, "admin@example.org", Role.admin)
        for n, name in enumerate(("陈小明", "李四"), start=1):
            member = make_member(db, app.extensions["pii"], pd, n, name=name)
            roster.approve(db, None, member.id, by=admin, now=utcnow())
            transfers.request_by_official(
                db, None, member.id, to_district="XH", reason="搬到徐汇", by=admin, now=utcnow()
            )
        db.commit()
    page = signed_in_page(live_app, chromium, "xh@example.org", Role.official, ["XH"], javascript=False, width=width)
    page.goto(live_app.url + "/roster/")
    assert "转入申请 (2)" in page.inner_text("nav.tabs")
    page.click("#tab-transfers")
    assert page.locator("section.transfer").count() == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"
    page.screenshot(path=str(shots(tmp_path) / f"transfers-tab-{width}.png"), full_page=True)
    page.locator("section.transfer").first.get_by_role("button", name="同意转入", exact=True).click()
    page.wait_for_url(re.compile(r"/roster/\d+$"))  # the member page (the tab's own URL matches "**/roster/*")
    assert "XH-000001" in page.inner_text("main") and "PD-00000" in page.inner_text("table.history")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"
    page.screenshot(path=str(shots(tmp_path) / f"member-after-transfer-{width}.png"), full_page=True)
