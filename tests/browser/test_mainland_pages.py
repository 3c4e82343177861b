"""Issue 13 as a person sees it, in a real Chromium with JavaScript off: the cross-border consent
box on a 360 px phone (a fallback abroad is configured), and the roster's flag for a decision
notice that finally failed, on a phone card (390 px) and in the table (1366 px).
SCREENSHOTS=dir keeps the pictures."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.models import AuditEvent, MemberStatus, Role
from app.services import tasks
from tests import factories
from tests.browser.staff import signed_in_page
from tests.browser.test_roster_phone import screenshot
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """The live app sends by the console backend, backed up by Twilio: a provider abroad."""
    twilio = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "TWILIO_FROM": "+15005550006"}
    return {**env, **twilio, "SMS_FALLBACK_BACKEND": "twilio-messaging"}


def test_the_cross_border_consent_is_a_box_of_its_own_on_a_phone(live_app, chromium):  # type: ignore[no-untyped-def]
    with Session(live_app.app.extensions["db_engine"], expire_on_commit=False) as db:
        path = factories.join_path(live_app.app, factories.workplace(db, factories.district(db)))
        db.commit()
    context = chromium.new_context(locale="zh-CN", java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.goto(live_app.url + path)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360, "no sideways scrolling"
    assert page.get_by_text("Twilio（位于美国）").count() == 1
    page.fill("input[name=name]", "王小明")
    page.fill("input[name=phone]", factories.phone(1)[3:])
    page.select_option("select[name=platform]", "meituan")
    page.check("input[name=consent]")
    screenshot(page, "consent-360.png")
    page.click("form button[type=submit]")
    assert page.locator("p.error", has_text="请也勾选这一项").count() == 1
    screenshot(page, "consent-missing-360.png")
    page.check("input[name=consent]")
    page.check("input[name=cross_border]")
    page.click("form button[type=submit]")
    page.wait_for_url("**/join/code")
    context.close()


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1366, 900)], ids=["phone", "desktop"])
def test_a_failed_notice_is_flagged_on_its_row(live_app, chromium, width, height):  # type: ignore[no-untyped-def]
    app = live_app.app
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        station = factories.workplace(db, district)
        told = make_member(db, app.extensions["pii"], district, 1, name="李雷", workplace=station)
        untold = make_member(db, app.extensions["pii"], district, 2, name="韩梅梅", workplace=station)
        for member in (told, untold):
            member.status, member.decided_at, member.member_number = (
                MemberStatus.approved,
                member.created_at,
                "PD-00000" + str(member.id),
            )
            db.add(member)
        db.add(
            AuditEvent(
                action=tasks.NOTICE_FAILED,
                target_type="member",
                target_id=str(untold.id),
                details={"reason": "rejected"},
            )
        )
        db.commit()
    page = signed_in_page(
        live_app, chromium, "official@example.org", Role.official, ["PD"], javascript=False, width=width, height=height
    )
    page.goto(live_app.url + "/roster/")
    flag = page.locator(f'tr[data-id="{untold.id}"] .flag')
    assert flag.inner_text() == "短信通知未送达" and flag.is_visible()
    assert page.locator(f'tr[data-id="{told.id}"] .flag').count() == 0
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    screenshot(page, f"roster-notice-{width}.png")
