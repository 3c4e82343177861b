"""The dashboard in a real Chromium at 390 px with JavaScript off: no sideways scroll, charts fit."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from sqlmodel import Session

from app.models import MemberStatus, Platform, Role, utcnow
from tests import conftest, factories
from tests.services.test_dashboard import add

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("DASHBOARD_SHOTS")  # a folder: keep screenshots there to look at


def seed(app) -> None:  # type: ignore[no-untyped-def]
    pii = app.extensions["pii"]
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        pd = factories.district(db, "PD", "浦东新区总工会")
        stations = [factories.workplace(db, pd, f"PD-ZJ0{n}", f"张江美团骑手站{n}号") for n in range(1, 4)]
        platforms = list(Platform)
        for n in range(60):
            at = utcnow() - timedelta(days=n % 29, hours=n % 7)
            status = MemberStatus.approved if n % 3 else MemberStatus.pending
            decided = timedelta(hours=n % 50 + 1) if status is MemberStatus.approved else None
            station = stations[n % 3] if n % 5 else None
            add(db, pii, pd, at, station=station, platform=platforms[n % 4], status=status, decided_after=decided)
        db.commit()
        user = conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
        app.config["DASHBOARD_TEST_SECRET"] = conftest.enrol(app, db, user)


def sign_in(live_app, chromium, width: int, locale: str = "zh-CN"):  # type: ignore[no-untyped-def]
    viewport = {"width": width, "height": 800}
    context = chromium.new_context(locale=locale, java_script_enabled=False, viewport=viewport)
    page = context.new_page()
    page.goto(live_app.url + "/login")
    page.fill("input[name=email]", "official@example.org")
    page.fill("input[name=password]", conftest.STAFF_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/login/code")
    secret = live_app.app.config["DASHBOARD_TEST_SECRET"]
    page.fill("input[name=code]", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    return page


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_dashboard_fits_a_phone_without_javascript(live_app, chromium, locale):
    seed(live_app.app)
    page = sign_in(live_app, chromium, 390, locale)
    page.goto(live_app.url + "/dashboard/")
    assert page.locator("h1").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    charts = page.locator("svg.chart")
    assert charts.count() == 5  # per day, district, station, platform, funnel
    for n in range(charts.count()):
        box = charts.nth(n).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] > 20
    assert page.locator("table").count() >= 5
    funnel = page.locator("table.funnel").bounding_box()  # the widest table: it fits without scrolling
    assert funnel is not None and funnel["x"] + funnel["width"] <= 390
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"dashboard-390-{locale}.png"), full_page=True)
        page.set_viewport_size({"width": 1366, "height": 800})
        page.goto(live_app.url + "/dashboard/?days=90")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        page.screenshot(path=str(Path(SHOTS) / f"dashboard-1366-{locale}.png"), full_page=True)
