"""Roster exports as jobs (app/web/exports.py): the roster's buttons start a job written with the
commit, /roster/exports shows its progress (refreshing itself without JavaScript while it runs),
and the finished file is downloaded through a signed, expiring link by a user of its scope, audited."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from app.models import AuditEvent, ExportJob, MemberStatus, Role, utcnow
from app.services import export_jobs
from tests import conftest
from tests.conftest import hidden_fields
from tests.services.test_roster import make_member
from tests.web.test_roster import pii, places, sign_in  # noqa: F401 - fixtures

LINK = re.compile(r'href="(/roster/exports/file/[^"]+)"')


def start(client, fmt: str = "csv", **filters: str):  # type: ignore[no-untyped-def]
    page = client.get("/roster/")
    token = hidden_fields(page.text)["csrf_token"]
    data = {"csrf_token": token, "format": fmt, **{f"f_{k}": v for k, v in filters.items()}}
    return client.post("/roster/exports/", data=data)


def jobs(db) -> list[ExportJob]:  # type: ignore[no-untyped-def]
    db.commit()
    return list(db.exec(select(ExportJob).execution_options(populate_existing=True)).all())


def lose_wake_ups(app, monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    asked: list[int] = []
    monkeypatch.setattr(app.extensions["exports"], "wake", asked.append)
    return asked


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_is_a_job_whose_file_is_downloaded_once_done(client, db, pii, places, fmt):  # noqa: F811
    pd, xh = places
    make_member(db, pii, pd, 1, name="韩梅梅", status=MemberStatus.approved)
    make_member(db, pii, pd, 2, name="=HYPERLINK(1)")
    make_member(db, pii, xh, 3, name="李雷")  # another district: not in this official's file
    db.commit()
    sign_in(client, db)
    response = start(client, fmt)
    assert response.status_code == 303 and response.headers["Location"].endswith("/roster/exports/")
    [job] = jobs(db)
    assert job.status == "done" and job.rows_done == job.rows_total == 2 and job.format == fmt
    assert "韩梅梅" not in job.filters_enc, "the filter is sealed like a name"
    page = client.get("/roster/exports/")
    assert page.status_code == 200 and 'http-equiv="refresh"' not in page.text, "nothing runs: no reload"
    [link] = LINK.findall(page.text)
    assert not db.exec(select(AuditEvent).where(AuditEvent.action == "roster.export")).all()
    body = client.get(link.replace("&amp;", "&"))
    assert body.status_code == 200 and "attachment" in body.headers["Content-Disposition"]
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(body.data.decode("utf-8-sig"))))
        assert sorted(r[1] for r in rows[1:]) == ["'=HYPERLINK(1)", "韩梅梅"]
        assert rows[0][0] == "会员编号" or rows[0][0] == "Member number"
    else:
        sheet = load_workbook(io.BytesIO(body.data))["members"]
        names = sorted(sheet.cell(row=r, column=2).value for r in (2, 3))
        assert names == ["=HYPERLINK(1)", "韩梅梅"] and sheet.cell(row=2, column=2).data_type == "s"
    db.commit()  # a fresh snapshot
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "roster.export")).all()
    assert event.details["rows"] == 2 and event.details["job"] == job.id and event.details["format"] == fmt
    assert "韩梅梅" not in str(event.details)


def test_the_roster_shows_the_buttons_and_the_latest_jobs(client, db, pii, places):  # noqa: F811
    pd, _ = places
    make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    page = client.get("/roster/?status=pending&q=1234")
    assert 'action="/roster/exports/"' in page.text and 'name="f_q" value="1234"' in page.text
    start(client, "csv", status="pending", q="韩")
    page = client.get("/roster/")
    assert "/roster/exports/file/" in page.text, "the panel links the finished file"
    listing = client.get("/roster/exports/").text
    assert "韩" not in listing, "a search shows its kind, never its text"


def test_a_running_job_reloads_the_page_and_shows_its_progress(app, client, db, pii, places, monkeypatch):  # noqa: F811
    pd, _ = places
    for n in range(1, 4):
        make_member(db, pii, pd, n)
    db.commit()
    sign_in(client, db)
    asked = lose_wake_ups(app, monkeypatch)
    start(client, "xlsx")
    [job] = jobs(db)
    assert asked == [job.id] and job.status == "queued", "the queue carries the job's id only"
    page = client.get("/roster/exports/")
    assert '<noscript><meta http-equiv="refresh"' in page.text and "<progress" in page.text
    exports = app.extensions["exports"]
    now = utcnow()
    with exports.new_session() as other:  # a consumer claims it and counts, then is killed
        exports._claim(other, job.id, now)
    exports._progress(job.id, 1, 2, 3)
    progress = client.get("/roster/exports/progress").json
    assert progress["running"] and 'value="66"' in progress["rows"], "2 rows of 3 written"
    assert exports.sweep(now + timedelta(seconds=1)) == 0 and jobs(db)[0].status == "running", "its lease holds"
    assert exports.sweep(now + timedelta(seconds=export_jobs.LEASE_SECONDS + 1)) == 1
    [job] = jobs(db)
    assert job.status == "done" and job.attempts == 2 and job.rows_done == 3, "started again from zero"
    assert not client.get("/roster/exports/progress").json["running"]


def test_the_link_is_for_a_user_of_the_scope_and_expires(app, client, db, pii, places):  # noqa: F811
    pd, _ = places
    make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    start(client)
    [link] = LINK.findall(client.get("/roster/exports/").text)
    other = app.test_client()
    sign_in(other, db, "xh@example.org", districts=["XH"])
    assert other.get(link).status_code == 404, "another district's official never gets the file"
    colleague = app.test_client()
    sign_in(colleague, db, "pd2@example.org", districts=["PD"])
    assert colleague.get(link).status_code == 200
    assert client.get(link[:-3] + "abc").status_code == 410
    assert app.test_client().get(link).status_code in (302, 401), "signed in only"
    app.config["EXPORT_RETENTION_HOURS"] = 0
    assert client.get(link).status_code == 410, "an expired link"


def test_files_and_rows_go_after_the_retention_period(app, client, db, pii, places):  # noqa: F811
    pd, _ = places
    make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    start(client)
    [job] = jobs(db)
    exports = app.extensions["exports"]
    path = exports.settings.folder / job.file_path
    assert path.is_file()
    exports.sweep(utcnow() + timedelta(hours=exports.settings.retention_hours - 1))
    assert path.is_file() and jobs(db)
    exports.sweep(utcnow() + timedelta(hours=exports.settings.retention_hours + 1))
    assert not path.exists() and jobs(db) == []


def test_bad_input_is_a_message_not_a_job(client, db, places):  # noqa: F811
    sign_in(client, db)
    response = start(client, "pdf")
    assert response.status_code == 303 and jobs(db) == []
    response = start(client, "csv", sort="sideways")
    assert response.status_code == 303 and jobs(db) == []
    assert "无法开始导出" in client.get("/roster/").text, "the flash says why"


def test_a_large_filter_is_offered_as_a_job_not_streamed(app, client, db, pii, places):  # noqa: F811
    pd, _ = places
    for n in range(1, 4):
        make_member(db, pii, pd, n)
    db.commit()
    sign_in(client, db)
    app.config["EXPORT_STREAM_MAX_ROWS"] = 2
    page = client.get("/roster/export.csv?status=pending")
    assert page.status_code == 200 and "attachment" not in page.headers.get("Content-Disposition", "")
    fields = hidden_fields(page.text)
    assert fields["f_status"] == "pending" and 'value="csv"' in page.text
    app.config["EXPORT_STREAM_MAX_ROWS"] = 3
    assert "attachment" in client.get("/roster/export.csv").headers["Content-Disposition"]


def test_organizers_never_reach_exports(client, db, places):  # noqa: F811
    sign_in(client, db, "org@example.org", Role.organizer)
    assert client.get("/roster/exports/").status_code == 403
    assert client.get("/roster/exports/progress").status_code == 403


def test_a_job_that_fails_says_so(app, client, db, pii, places, monkeypatch):  # noqa: F811
    pd, _ = places
    make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr("app.services.export.csv_stream", broken)
    start(client)
    [job] = jobs(db)
    assert (
        job.status == "failed"
        and job.error == "OSError"
        and not list(app.extensions["exports"].settings.folder.iterdir())
    )
    assert "导出失败" in client.get("/roster/exports/").text


conftest  # noqa: B018 - the module's helpers are used through test_roster's


def test_a_file_past_its_retention_is_gone_even_before_the_sweep_and_with_a_fresh_link(app, client, db, pii, places):  # noqa: F811
    pd, _ = places
    make_member(db, pii, pd, 1)
    db.commit()
    sign_in(client, db)
    start(client)
    [job] = jobs(db)
    path = app.extensions["exports"].settings.folder / job.file_path
    job.finished_at = utcnow() - timedelta(hours=app.config["EXPORT_RETENTION_HOURS"] + 1)
    db.add(job)
    db.commit()
    assert path.is_file(), "no sweep has run: the file is still on disk"
    fresh = export_jobs.sign(app.config["SECRET_KEY"], job.id)  # a link signed just now
    assert client.get(f"/roster/exports/file/{fresh}").status_code == 410
