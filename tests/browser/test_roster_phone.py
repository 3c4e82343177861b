"""Issue 11 item 6: the roster on a phone (390 px) is cards without sideways scrolling, with
44 px actions on screen; at 1366 px it is still a table. SCREENSHOTS=dir keeps the pictures."""

from __future__ import annotations

import os

import pytest
from sqlmodel import Session

from app.models import MemberStatus, Role
from tests import factories
from tests.browser.staff import signed_in_page
from tests.services.test_roster import make_member

pytestmark = pytest.mark.browser
NAMES = ["欧阳娜娜", "王小明", "司马相如", "李雷", "阿卜杜热合曼·买买提", "韩梅梅"]


def some_applications(app) -> None:  # type: ignore[no-untyped-def]
    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        district = factories.district(db)
        station = factories.workplace(db, district)
        for n, name in enumerate(NAMES, start=1):
            status = MemberStatus.approved if n == 4 else MemberStatus.pending
            make_member(db, app.extensions["pii"], district, n, name=name, workplace=station, status=status, age_days=n)
        db.commit()


def screenshot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, name), full_page=True)


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
def test_the_roster_fits_a_phone_with_44px_actions(live_app, chromium, javascript):
    some_applications(live_app.app)
    page = signed_in_page(
        live_app, chromium, "official@example.org", Role.official, ["PD"], javascript=javascript, width=390, height=844
    )
    page.goto(live_app.url + "/roster/")
    assert page.locator("tr[data-id]").count() == len(NAMES)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= page.evaluate("innerWidth"), f"sideways scrolling: {width} px wide"
    viewport = page.evaluate("innerWidth")
    actions = page.locator("button:visible:not([disabled])")
    assert actions.count() >= 5 + 2 + 1, "every pending row's Approve, the bulk pair and Search"
    for box in (actions.nth(i).bounding_box() for i in range(actions.count())):
        assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= viewport, box
    for box in (b.bounding_box() for b in page.locator("td.pick label").all()):
        assert box["height"] >= 44 and box["width"] >= 44
    # A Chinese name stays on one line: its cell is one line high.
    for cell in page.locator("td.name").all():
        line = cell.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
        box = cell.bounding_box()
        assert box["height"] < 1.5 * line and box["width"] >= 2 * line, cell.inner_text()
    # The same filters and bulk actions as on a computer.
    for field in ("q", "district", "workplace", "platform", "sort", "recent", "overdue", "reason"):
        assert page.locator(f"[name={field}]").count() == 1
    screenshot(page, f"roster-390-{'js' if javascript else 'nojs'}.png")


def test_the_roster_is_still_a_table_at_1366(live_app, chromium):
    some_applications(live_app.app)
    page = signed_in_page(live_app, chromium, "official@example.org", Role.official, ["PD"], width=1366, height=900)
    page.goto(live_app.url + "/roster/")
    assert page.locator("table.roster thead").is_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('tr[data-id]')).display") == "table-row"
    tops = [c.bounding_box()["y"] for c in page.locator("tr[data-id]").first.locator("td").all()]
    assert max(tops) - min(tops) < 2, "a row's cells side by side"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 1366
    screenshot(page, "roster-1366.png")


def test_a_whole_name_typed_with_a_space_finds_its_member_without_javascript(live_app, chromium):
    """Issue 17 item 4: the search answers from the keyed name index; spaces and "·" are not the name."""
    some_applications(live_app.app)
    page = signed_in_page(
        live_app, chromium, "official@example.org", Role.official, ["PD"], javascript=False, width=390, height=844
    )
    page.goto(live_app.url + "/roster/")
    page.fill("[name=q]", "阿卜杜热合曼 买买提")
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_url("**q=*")
    assert page.locator("td.name").all_inner_texts() == ["阿卜杜热合曼·买买提"]
    assert page.get_by_text("完整姓名或手机号后四位").count() == 1
    screenshot(page, "roster-search-390.png")
    page.fill("[name=q]", "买买提")  # a part of a name finds no one (docs/security.md)
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("tr[data-id]").count() == 0
