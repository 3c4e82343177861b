"""The e-card in Chromium at 360 px, JavaScript off, WeChat's user agent: the card page and the status-page panel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import render_template_string
from markupsafe import Markup
from sqlmodel import Session

from app.models import Role, utcnow
from app.services import cards, roster
from tests import conftest, factories
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser
WECHAT = (
    "Mozilla/5.0 (Linux; Android 13; V2183A) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
    "Chrome/107.0.5304.141 Mobile Safari/537.36 MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64 NetType/WIFI"
)
PANEL_PAGE = '{% extends "base.html" %}{% block main %}{% include "cards/card_panel.html" %}{% endblock %}'


def approved_card(app) -> cards.CardView:  # type: ignore[no-untyped-def]
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        member = make_member(db, app.extensions["pii"], district, 1, name="陈小明")
        official = conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
        member = roster.approve(db, None, member.id, by=official, now=utcnow())
        db.commit()
        view = cards.card_for(
            db,
            member,
            signer=app.extensions["card_signer"],
            name="陈小明",
            base_url=app.config["PUBLIC_BASE_URL"],
            union_name="浦东新区总工会",
            now=utcnow(),
            valid_days=365,
        )
    assert view is not None
    return view


def test_card_page_and_panel_at_360_px_without_javascript(live_app, chromium, tmp_path: Path):
    card = approved_card(live_app.app)
    context = chromium.new_context(  # type: ignore[attr-defined]
        locale="zh-CN", java_script_enabled=False, user_agent=WECHAT, viewport={"width": 360, "height": 740}
    )
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(live_app.url + card.url[card.url.index("/C/") :])
    body = page.inner_text("main")
    assert "有效：此人是在册会员。" in body and "陈*明" in body and "陈小明" not in body and card.member_number in body
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "no sideways scrolling"
    assert all(url.startswith(live_app.url) for url in requests), "nothing from another origin"
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "card-page-360.png"), full_page=True)
    with live_app.app.test_request_context("/", headers={"Accept-Language": "zh"}):
        html = render_template_string(PANEL_PAGE, card=card, card_qr=Markup(cards.qr_svg(card.url)))  # noqa: S704  # nosec B704
    panel = context.new_page()
    panel.goto(live_app.url + "/static/app.css")  # same origin, so the stylesheet loads
    panel.set_content(html.replace('href="/static/', f'href="{live_app.url}/static/'))
    box = panel.locator("figure.card-qr svg").bounding_box()
    assert box is not None and box["width"] >= 250, "a QR large enough to scan from the screen"
    panel.screenshot(path=str(shots / "card-panel-360.png"), full_page=True)
