"""The webhooks page in a real Chromium with JavaScript off: add an endpoint, read its secret once,
see the delivery in the log, send it again."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app.models import District, Role, utcnow
from app.services import decisions
from tests.browser.test_admin_import import shot, signed_in_admin
from tests.http_receiver import receiving
from tests.web.test_api import make_member, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    return {**env, "WEBHOOK_ALLOW_PRIVATE": "1"}


@pytest.mark.parametrize("width", [390, 1366])
def test_an_admin_adds_an_endpoint_without_javascript(live_app, chromium, width):  # type: ignore[no-untyped-def]
    page = signed_in_admin(live_app, chromium, width)
    page.click("text=数据推送（Webhook）")
    page.wait_for_url("**/admin/webhooks/")
    with receiving() as receiver:
        page.fill("input[name=url]", receiver.url + "/scanjoin")
        page.check("input[value='member.approved']")
        page.check("input[value='member.rejected']")
        page.select_option("select[name=district]", "PD")
        page.click("form[action$='/admin/webhooks/'] button[type=submit]")
        page.wait_for_load_state()
        shot(page, f"webhooks-added-{width}.png")
        assert page.locator("code.secret").inner_text().startswith("whsec_")
        assert receiver.url in page.locator("table").first.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"
        approve_one(live_app.app)
        receiver.wait_for(1, within=5)
        page.goto(live_app.url + "/admin/webhooks/")
        assert "已送达" in page.content() and "whsec_" not in page.content()
        page.click("text=重新发送")
        page.wait_for_url("**/admin/webhooks/")
        assert len(receiver.wait_for(2, within=5)) == 2
        shot(page, f"webhooks-log-{width}.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"


def approve_one(app) -> None:  # type: ignore[no-untyped-def]
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = db.exec(select(District)).first()
        official = make_user(db, "official@example.org", Role.official, [district])
        member = make_member(db, app.extensions["pii"], district, 3)
        db.commit()
        decisions.decide_one(db, None, member.id, by=official, approve=True, now=utcnow())
        db.commit()
