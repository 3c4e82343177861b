"""The web admin in a real Chromium, JavaScript off: an admin creates a station and an official,
and the official signs in through the set-up link (issue 16, item 5)."""

from __future__ import annotations

import os
from pathlib import Path

import pyotp
import pytest
from sqlmodel import Session, select

from app.models import AuditEvent, Role, User, Workplace
from tests import factories
from tests.browser.staff import signed_in_page

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("SCREENSHOTS_DIR")  # set to keep the screenshots for a person to look at
PASSWORD = "my own long passphrase 2026"


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)])
def test_admin_creates_a_station_and_an_official_who_signs_in_by_the_link(live_app, chromium, width, height):
    with Session(live_app.app.extensions["db_engine"]) as db:
        factories.district(db)
        db.commit()
    page = signed_in_page(
        live_app, chromium, "admin@example.org", Role.admin, [], javascript=False, width=width, height=height
    )
    page.click("text=管理：区和地点")
    page.click("text=在此区新建站点")
    assert page.locator("h1").inner_text() == "新建站点"
    page.fill("input[name=code]", "PD-LJZ")
    page.fill("input[name=name]", "陆家嘴饿了么站")
    page.select_option("select[name=kind]", "delivery_station")
    shot(page, f"admin-new-station-{width}.png")
    page.click("form button[type=submit]")
    page.wait_for_url("**/admin/places")
    assert "站点已创建" in page.locator("main").inner_text() and "陆家嘴饿了么站" in page.content()
    shot(page, f"admin-places-{width}.png")

    page.click("text=工作人员账号")
    page.click("text=新建账号")
    page.fill("input[name=email]", "official@example.org")
    page.select_option("select[name=role]", "official")
    page.check("input[name=districts][value=PD]")
    shot(page, f"admin-new-account-{width}.png")
    page.click("form button[type=submit]")
    assert page.locator("h1").inner_text() == "账号已创建"
    link = page.input_value("#setup-link")
    assert link.startswith(live_app.url + "/setup/")
    shot(page, f"admin-setup-link-{width}.png")

    official = page.context.browser.new_context(
        locale="zh-CN", java_script_enabled=False, viewport={"width": width, "height": height}
    ).new_page()
    official.goto(link)
    assert official.locator("h1").inner_text() == "设置你的账号"
    shot(official, f"setup-password-{width}.png")
    official.fill("input[name=password]", PASSWORD)
    official.fill("input[name=repeat]", PASSWORD)
    official.click("form button[type=submit]")
    official.wait_for_url("**/login/setup")
    secret = official.inner_text("#totp-secret").replace(" ", "")
    shot(official, f"setup-authenticator-{width}.png")
    official.fill("input[name=code]", pyotp.TOTP(secret).now())
    official.click("form button[type=submit]")
    official.click("main a[href='/home'], main a:has-text('继续')")
    official.wait_for_url("**/home")
    assert "official@example.org" in official.locator("main").inner_text()
    shot(official, f"setup-signed-in-{width}.png")

    official.goto(link)  # a second use of the link
    assert official.locator("h1").inner_text() == "此链接无法使用"

    page.click("text=全部账号")
    shot(page, f"admin-staff-{width}.png")
    page.click("text=official@example.org")
    page.select_option("select[name=scope]", "read")
    page.click("text=生成令牌")
    assert page.locator("h1").inner_text() == "API 令牌已生成" and page.input_value("#api-token").startswith("sj_")
    page.click("text=查看账号")
    assert "只读" in page.locator("table.admin-list").inner_text()
    shot(page, f"admin-account-{width}.png")
    with Session(live_app.app.extensions["db_engine"]) as db:
        assert db.exec(select(Workplace).where(Workplace.code == "PD-LJZ")).one().name == "陆家嘴饿了么站"
        assert db.exec(select(User).where(User.email == "official@example.org")).one().totp_secret_enc
        actions = [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id))]
        assert {"place.create", "user.create", "user.setup_link", "user.setup_done", "user.mfa_enrol"} <= set(actions)


def test_admin_imports_places_and_reads_the_report_on_a_phone(live_app, chromium, tmp_path):
    page = signed_in_page(
        live_app, chromium, "admin@example.org", Role.admin, [], javascript=False, width=390, height=844
    )
    page.goto(live_app.url + "/admin/places/import")
    rows = (
        "district_code,district_name,workplace_code,workplace_name,kind\n"
        "MH,闵行区总工会,MH-01,莘庄驿站,驿站\nMH,闵行区总工会,MH 02,坏代码,\n"
    )
    csv_file = tmp_path / "地点.csv"
    csv_file.write_bytes(rows.encode("utf-8-sig"))
    page.set_input_files("input[name=file]", str(csv_file))
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    shot(page, "admin-place-import-390.png")
    text = page.locator("main").inner_text()
    assert "被拒绝的行" in text and "workplace_code 须为字母、数字、- 或 _" in text
    page.goto(live_app.url + "/admin/places")
    assert "莘庄驿站" in page.locator("main").inner_text()
