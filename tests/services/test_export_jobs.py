"""Export jobs (app/services/export_jobs.py): written with the commit or not at all, claimed once,
fenced by their attempt, given up after MAX_ATTEMPTS, signed links that name one job."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from app.models import ExportJob, utcnow
from app.services import export, export_jobs
from tests import conftest, factories
from tests.services.test_roster import make_member


@pytest.fixture
def setup(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db, "PD", "浦东")
    user = conftest.make_staff(db, "official@example.org", conftest.Role.official, ["PD"])
    for n in range(1, 4):
        make_member(db, app.extensions["pii"], district, n)
    db.commit()
    return app.extensions["exports"], user, district


def new_job(app, db, user, district, fmt: str = "csv", **args: str) -> int:  # type: ignore[no-untyped-def]
    exports = app.extensions["exports"]
    exports_wake, exports.wake = exports.wake, lambda job_id: None  # the consumer is the test
    try:
        job = export_jobs.start(
            db,
            app.extensions["pii"],
            user_id=user.id,
            scope=[district.id],
            args=args,
            overdue_days=15,
            fmt=fmt,
            layout=export.CODES,
        )
        db.commit()
    finally:
        exports.wake = exports_wake
    assert job.id is not None
    return job.id


def job(db, job_id: int) -> ExportJob:  # type: ignore[no-untyped-def]
    db.commit()
    found = db.exec(select(ExportJob).where(ExportJob.id == job_id).execution_options(populate_existing=True)).one()
    return found


def test_no_commit_no_job(app, db, setup):  # type: ignore[no-untyped-def]
    _, user, district = setup
    export_jobs.start(
        db, app.extensions["pii"], user_id=user.id, scope=None, args={}, overdue_days=15, fmt="csv", layout=export.CODES
    )
    db.rollback()
    assert db.exec(select(ExportJob)).all() == []


def test_a_consumer_whose_job_was_handed_on_stops_and_leaves_no_file(app, db, setup):  # type: ignore[no-untyped-def]
    exports, user, district = setup
    job_id = new_job(app, db, user, district)
    now = utcnow()
    with exports.new_session() as other:
        assert exports._claim(other, job_id, now) is not None  # the first consumer, then it stalls
    assert exports.run(job_id, now) == "taken", "its lease holds"
    later = now + timedelta(seconds=export_jobs.LEASE_SECONDS + 1)
    assert exports.run(job_id, later) == "done"
    with pytest.raises(export_jobs.Superseded):
        exports._progress(job_id, 1, 10)  # the stalled first consumer wakes up: it must stop
    assert job(db, job_id).attempts == 2 and job(db, job_id).rows_done == 3
    assert [p.name for p in exports.settings.folder.iterdir()] == [job(db, job_id).file_path]


def test_a_job_that_keeps_killing_its_consumer_is_given_up(app, db, setup):  # type: ignore[no-untyped-def]
    exports, user, district = setup
    job_id = new_job(app, db, user, district)
    now = utcnow()
    for n in range(export_jobs.MAX_ATTEMPTS):
        with exports.new_session() as other:
            assert exports._claim(other, job_id, now + timedelta(seconds=n * (export_jobs.LEASE_SECONDS + 1)))
    last = now + timedelta(seconds=export_jobs.MAX_ATTEMPTS * (export_jobs.LEASE_SECONDS + 1))
    assert exports.run(job_id, last) == "failed"
    assert job(db, job_id).status == "failed" and job(db, job_id).error == "gave_up"


def test_the_filter_and_the_words_travel_with_the_job(app, db, setup):  # type: ignore[no-untyped-def]
    exports, user, district = setup
    layout = export.Layout(header=["甲"] * 12, statuses={"pending": "待审核"}, zone=ZoneInfo("Asia/Shanghai"))
    assert export_jobs.layout_from(export_jobs.layout_data(layout)) == layout
    job_id = new_job(app, db, user, district, status="approved")
    assert exports.run(job_id) == "done"
    assert job(db, job_id).rows_done == 0 and job(db, job_id).filter_shape == {"status": "approved", "sort": "applied"}


def test_a_filter_sealed_under_a_removed_key_fails_the_job(app, db, setup):  # type: ignore[no-untyped-def]
    exports, user, district = setup
    job_id = new_job(app, db, user, district)
    row = db.get(ExportJob, job_id)
    row.filters_enc = "v1:not-a-ciphertext"
    db.add(row)
    db.commit()
    assert exports.run(job_id) == "failed" and job(db, job_id).error == "bad_filter"


def test_signed_links_name_one_job_and_expire():
    token = export_jobs.sign("k" * 32, 7)
    assert export_jobs.unsign("k" * 32, token, 60) == 7
    assert export_jobs.unsign("x" * 32, token, 60) is None, "another key"
    assert export_jobs.unsign("k" * 32, token + "x", 60) is None
    assert export_jobs.unsign("k" * 32, token, -1) is None, "expired"
    assert export_jobs.covers(None, [1]) and export_jobs.covers([1, 2], [1]) and not export_jobs.covers([1], None)
    assert not export_jobs.covers([1], [1, 2])
