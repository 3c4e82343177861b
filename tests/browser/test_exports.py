"""Issue 17, Done when: a large export never ties up a request and its progress is visible. An
official presses Export, lands on /roster/exports, watches the job's progress (polled with
JavaScript, reloaded by <meta refresh> without it) and downloads the file, at 1366 px and 390 px.
The consumer is played by the test (TASK_QUEUE=immediate would finish the job inside the press):
its wake-up is kept, then it claims the job, reports half the rows, and finishes.
SCREENSHOTS=dir keeps the pictures."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from app.models import ExportJob, Role, utcnow
from app.services import export_jobs
from tests.browser.staff import signed_in_page
from tests.browser.test_roster_phone import NAMES, screenshot, some_applications

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("width", "javascript"), [(1366, True), (390, False), (390, True)], ids=["1366-js", "390-nojs", "390-js"]
)
def test_an_official_starts_an_export_watches_it_and_downloads_it(live_app, chromium, monkeypatch, width, javascript):
    app = live_app.app
    some_applications(app)
    exports = app.extensions["exports"]
    woken: list[int] = []
    monkeypatch.setattr(exports, "wake", woken.append)  # the consumer is the test
    page = signed_in_page(
        live_app, chromium, "official@example.org", Role.official, ["PD"], javascript=javascript, width=width
    )
    page.goto(live_app.url + "/roster/?status=pending")
    page.click("form.export-start button[value=csv]")
    page.wait_for_url("**/roster/exports/")
    assert page.locator("ul.jobs li.job.queued progress").count() == 1
    assert page.get_by_text("等待开始").is_visible()
    [job_id] = woken
    tag = f"{width}-{'js' if javascript else 'nojs'}"
    screenshot(page, f"exports-{tag}-queued.png")

    now = utcnow()
    with exports.new_session() as db:  # the consumer takes the job and has written 2 of the 5 rows
        assert exports._claim(db, job_id, now) is not None
    exports._progress(job_id, 1, 2, 5)
    page.get_by_text("已生成 2 / 5 行").wait_for(timeout=10_000)  # polled, or the page reloaded itself
    assert page.locator("ul.jobs progress").get_attribute("value") == "40"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width, "no sideways scrolling"
    screenshot(page, f"exports-{tag}-running.png")

    assert exports.run(job_id, now + timedelta(seconds=export_jobs.LEASE_SECONDS + 1)) == "done"
    link = page.locator("ul.jobs a.button")
    link.wait_for(timeout=10_000)
    box = link.bounding_box()
    assert box["height"] >= 44 and box["x"] + box["width"] <= width
    screenshot(page, f"exports-{tag}-done.png")
    with page.expect_download() as download:
        link.click()
    body = download.value.path().read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][0] == "会员编号" and sorted(r[1] for r in rows[1:]) == sorted(NAMES[:3] + NAMES[4:])
    with Session(app.extensions["db_engine"]) as db:
        assert db.exec(select(ExportJob.status)).one() == "done"
    # The roster shows the finished job too.
    page.goto(live_app.url + "/roster/")
    assert page.locator("ul.jobs.brief a.button").count() == 1
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    screenshot(page, f"exports-{tag}-roster.png")
