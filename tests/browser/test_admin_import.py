"""The import page in a real Chromium with JavaScript off: pick a GBK file, send it, read the report."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyotp
import pytest
from sqlmodel import Session, select

from app.models import Member, Role
from tests import conftest, factories
from tests.factories import phone

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("SCREENSHOTS_DIR")  # set to keep the screenshots for a person to look at


def signed_in_admin(live_app, chromium, width: int):  # type: ignore[no-untyped-def]
    app = live_app.app
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        factories.workplace(db, factories.district(db))
        db.commit()
        secret = conftest.enrol(app, db, conftest.make_staff(db, "admin@example.org", Role.admin))
    context = chromium.new_context(locale="zh-CN", java_script_enabled=False, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(live_app.url + "/login")
    page.fill("input[name=email]", "admin@example.org")
    page.fill("input[name=password]", conftest.STAFF_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/login/code")
    page.fill("input[name=code]", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("form button[type=submit]")
    page.wait_for_url("**/home")
    return page


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


@pytest.mark.parametrize("width", [390, 1366])
def test_an_admin_imports_a_gbk_file_without_javascript(live_app, chromium, tmp_path, width):
    page = signed_in_admin(live_app, chromium, width)
    page.goto(live_app.url + "/admin/import")
    shot(page, f"import-form-{width}.png")
    assert page.locator("h1").inner_text() == "导入会员"
    register = tmp_path / "会员.csv"
    rows = f"张三,{phone(1)[3:]},浦东新区总工会,张江美团骑手站,美团,2023-05-01,PD-000012\n李四,1234,PD,,,,\n"
    header = "姓名,手机号,区,站点,平台,入会日期,会员编号\n"
    register.write_bytes((header + rows + f"王五,{phone(1)},PD,,,,\n").encode("gbk"))
    page.set_input_files("input[name=file]", str(register))
    page.uncheck("input[name=dry_run]")
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    shot(page, f"import-report-{width}.png")
    assert page.locator("h1").inner_text() == "导入完成"
    text = page.locator("main").inner_text()
    assert "不是有效的手机号" in text and "与第 2 行手机号相同" in text and "张三" not in text
    with Session(live_app.app.extensions["db_engine"]) as db:
        assert [m.member_number for m in db.exec(select(Member))] == ["PD-000012"]
