"""The voice call as a worker sees it on a 360 px phone with JavaScript off: no button while the
SMS may still come; a minute later (a reload) "receive the code by voice call"; pressed, the page
says the phone is being called, the console backend writes the call (the same code, digit by
digit) and that code joins. SCREENSHOTS=dir keeps the pictures."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from app.models import JoinAttempt
from tests import factories
from tests.browser.test_roster_phone import screenshot

pytestmark = pytest.mark.browser


def test_a_slow_sms_offers_the_same_code_by_voice_call(live_app, chromium):  # type: ignore[no-untyped-def]
    engine = live_app.app.extensions["db_engine"]
    with Session(engine, expire_on_commit=False) as db:
        path = factories.join_path(live_app.app, factories.workplace(db, factories.district(db)))
        db.commit()
    context = chromium.new_context(locale="zh-CN", java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.goto(live_app.url + path)
    page.fill("input[name=name]", "王小明")
    page.fill("input[name=phone]", factories.phone(1)[3:])
    page.select_option("select[name=platform]", "meituan")
    page.check("input[name=consent]")
    page.click("form button[type=submit]")
    page.wait_for_url("**/join/code")
    assert page.get_by_role("button", name="语音来电接收验证码").count() == 0, "not while the SMS may come"
    with Session(engine) as db:  # a minute passes with no right code
        attempt = db.exec(select(JoinAttempt)).one()
        assert attempt.code_sent_at is not None
        attempt.code_sent_at -= timedelta(seconds=61)
        db.add(attempt)
        db.commit()
    page.reload()
    button = page.get_by_role("button", name="语音来电接收验证码")
    assert button.count() == 1
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360, "no sideways scrolling"
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44, "a thumb-sized button"
    screenshot(page, "voice-offer-360.png")
    button.click()
    page.wait_for_url("**/join/code")
    assert page.get_by_text("正在拨打").count() == 1
    screenshot(page, "voice-calling-360.png")
    sms, call = [json.loads(line) for line in live_app.outbox.read_text(encoding="utf-8").splitlines()]
    assert call["channel"] == "voice" and "channel" not in sms
    code = "".join(ch for ch in sms["body"] if ch.isdigit())[:6]
    assert "，".join(code) in call["body"], "the same code, read digit by digit"
    page.fill("input[name=code]", code)
    page.click("form button[type=submit] >> nth=0")
    page.wait_for_url("**/join/done")
    context.close()
