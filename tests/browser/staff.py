"""Signing a staff member in through both steps in a real browser page."""

from __future__ import annotations

import time

import pyotp
from sqlmodel import Session

from app.models import Role
from tests import conftest


def signed_in_page(  # type: ignore[no-untyped-def]
    live_app,
    chromium,
    email: str,
    role: Role,
    districts: list[str],
    *,
    javascript: bool = True,
    width: int = 1366,
    height: int = 900,
):
    """A zh-CN page of `email` (created with an authenticator app) past the password and the code."""
    app = live_app.app
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        user = conftest.make_staff(db, email, role, districts)
        secret = conftest.enrol(app, db, user)
    context = chromium.new_context(
        locale="zh-CN", java_script_enabled=javascript, viewport={"width": width, "height": height}
    )
    page = context.new_page()
    page.goto(live_app.url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", conftest.STAFF_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/login/code")
    # enrol() used this step's code; the next step's is accepted (±1 step) and not a replay.
    page.fill("input[name=code]", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page
