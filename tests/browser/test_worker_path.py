"""Issue 11's forgiving code step as a rider sees it: Chromium at 360 px, JavaScript off, WeChat's
user agent. The error summary first, the resend answered by post/redirect/get, "wrong number?
change it" with the draft kept, the language switch on the same step, and 44 px tap targets.
SCREENSHOTS=dir keeps the pictures."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session

from tests import factories
from tests.browser.test_card_page import WECHAT
from tests.browser.test_roster_phone import screenshot

pytestmark = pytest.mark.browser
TAPS = "button, nav.lang a, label.check, .error-summary a, p.change a"


def district_poster(live_app) -> str:  # type: ignore[no-untyped-def]
    with Session(live_app.app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        factories.workplace(db, district)
        path = factories.join_path(live_app.app, district)
        db.commit()
    return path


def small_taps(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The visible tap targets under 44 px high (text and height of each)."""
    small = []
    for element in page.locator(TAPS).all():
        box = element.bounding_box()
        if box is not None and box["height"] < 44:
            small.append(f"{element.inner_text()[:20]!r}: {box['height']:.0f}px")
    return small


def last_code(outbox) -> str:  # type: ignore[no-untyped-def]
    import re

    body = json.loads(outbox.read_text().splitlines()[-1])["body"]
    return re.search(r"\b(\d{6})\b", body).group(1)  # type: ignore[union-attr]


def test_the_worker_path_forgives_on_a_360px_phone(live_app, chromium):  # type: ignore[no-untyped-def]
    path = district_poster(live_app)
    context = chromium.new_context(
        locale="zh-CN", user_agent=WECHAT, java_script_enabled=False, viewport={"width": 360, "height": 740}
    )
    page = context.new_page()
    page.goto(live_app.url + path)
    assert small_taps(page) == [], "tap targets of the form"
    page.click("form button[type=submit]")  # nothing filled in: several errors
    summary = page.locator(".error-summary[role=alert]")
    assert summary.count() == 1 and summary.locator("a").count() == 5  # name, phone, platform, station, consent
    assert summary.bounding_box()["y"] < page.locator("h1").bounding_box()["y"], "first on the page"
    assert summary.bounding_box()["y"] < 740, "seen without scrolling"
    assert page.locator("#platform").get_attribute("aria-describedby") == "platform-error"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360, "no sideways scrolling"
    assert small_taps(page) == [], "tap targets with errors"
    screenshot(page, "worker-errors-360.png")

    page.fill("input[name=name]", "王小明")
    page.fill("input[name=phone]", factories.phone(1)[3:])
    page.select_option("select[name=platform]", "meituan")
    page.select_option("select[name=workplace]", index=1)
    page.check("input[name=consent]")
    page.click("form button[type=submit]")
    page.wait_for_url("**/join/code")
    assert small_taps(page) == [], "tap targets of the code page"
    screenshot(page, "worker-code-360.png")

    # The resend inside the cooldown: a 303 back here, the words once, a reload posts nothing.
    response = page.request.post(
        live_app.url + "/join/resend",
        form={"csrf_token": page.locator("form.resend input[name=csrf_token]").get_attribute("value") or ""},
        max_redirects=0,
    )
    assert response.status == 303
    page.goto(live_app.url + "/join/code")
    assert page.get_by_text("秒后再试").count() == 1
    screenshot(page, "worker-resend-refused-360.png")
    page.reload()
    assert page.get_by_text("秒后再试").count() == 0 and len(live_app.outbox.read_text().splitlines()) == 1

    # The language switch stays on the code page; the code still works afterwards.
    page.click("nav.lang a")
    page.wait_for_url("**/join/code")
    assert page.locator("h1").inner_text() == "Enter the code we sent"
    page.click("nav.lang a")

    # Wrong number: the form again with the answers kept and the phone to type.
    page.click("p.change a")
    page.wait_for_url("**/join/change")
    assert page.input_value("input[name=name]") == "王小明"
    assert page.input_value("select[name=platform]") == "meituan"
    assert page.is_checked("input[name=consent]") and page.input_value("input[name=phone]") == ""
    assert small_taps(page) == [], "tap targets of the change page"
    screenshot(page, "worker-change-360.png")
    page.fill("input[name=phone]", factories.phone(2)[3:])
    page.click("form button[type=submit]")
    page.wait_for_url("**/join/code")
    assert "*******0002" in page.locator("main").inner_text()
    page.fill("input[name=code]", last_code(live_app.outbox))
    page.click("form:not(.resend) button[type=submit]")
    page.wait_for_url("**/join/done")
    context.close()


def test_a_first_visit_answered_before_flask_joins_in_a_phone_browser(live_app, chromium):  # type: ignore[no-untyped-def]
    """The crowd's case: the poster's page is cached (someone scanned it already), a new phone
    opens it with no cookie, and the answer comes from app/web/worker/first_visit.py. The page, its
    session cookie and its CSRF token must carry that rider through the join like any other."""
    from flask import request_started

    assert live_app.app.config["WTF_CSRF_ENABLED"], "the form's CSRF token is checked on the POST"
    path = district_poster(live_app)
    first = chromium.new_context(locale="zh-CN", user_agent=WECHAT, java_script_enabled=False)
    first.new_page().goto(live_app.url + path)  # renders the page and caches it
    first.close()
    through_flask: list[str] = []

    def note(_sender, **_extra):  # type: ignore[no-untyped-def]
        from flask import request as flask_request

        through_flask.append(f"{flask_request.method} {flask_request.path}")

    request_started.connect(note, live_app.app)
    try:
        context = chromium.new_context(
            locale="zh-CN", user_agent=WECHAT, java_script_enabled=False, viewport={"width": 360, "height": 740}
        )
        page = context.new_page()
        page.goto(live_app.url + path)
        assert f"GET {path}" not in through_flask, "the cached page was answered before Flask"
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 360, "no sideways scrolling"
        assert small_taps(page) == [], "tap targets of the form"
        assert page.locator("html").get_attribute("lang") == "zh-Hans"
        screenshot(page, "worker-first-visit-360.png")
        page.fill("input[name=name]", "李小红")
        page.fill("input[name=phone]", factories.phone(3)[3:])
        page.select_option("select[name=platform]", "eleme")
        page.select_option("select[name=workplace]", index=1)
        page.check("input[name=consent]")
        page.click("form button[type=submit]")
        page.wait_for_url("**/join/code")
        assert f"POST {path}" in through_flask, "the form itself is Flask's, CSRF check included"
        page.fill("input[name=code]", last_code(live_app.outbox))
        page.click("form:not(.resend) button[type=submit]")
        page.wait_for_url("**/join/done")
        screenshot(page, "worker-first-visit-done-360.png")
        context.close()
    finally:
        request_started.disconnect(note, live_app.app)
