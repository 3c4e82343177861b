"""Export jobs with a real consumer (`flask --app wsgi worker` on the SQLite queue): a job written
with the commit is prepared by the consumer, which was not running when it was asked for; a job
whose consumer was killed mid-file (left running, its lease run out, a partial file behind) is
started again from zero by the sweep at the next consumer's start."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from app import create_app
from app.models import ExportJob, Role, utcnow
from app.services import export, export_jobs
from tests import conftest, factories
from tests.conftest import need
from tests.scale.test_delivery_kill import BIN, _consumer, _env, _kill
from tests.services.test_roster import make_member

ROWS = 40


def _wait_done(engine, job_id: int, within: float) -> ExportJob | None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with Session(engine) as db:
            job = db.get(ExportJob, job_id)
            if job is not None and job.status in (export_jobs.DONE, export_jobs.FAILED):
                return job
        time.sleep(0.25)
    return None


@pytest.mark.slow
def test_the_consumer_prepares_a_job_and_restarts_one_its_predecessor_left(tmp_path, migrated_template):  # type: ignore[no-untyped-def]
    need((BIN / "flask").exists(), "flask in the venv")
    env = _env(tmp_path, migrated_template, f"sqlite:///{tmp_path / 'tasks.db'}")
    app = create_app(env=env)
    engine, pii = app.extensions["db_engine"], app.extensions["pii"]
    with Session(engine, expire_on_commit=False) as db:
        district = factories.district(db, "PD", "浦东")
        user = conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
        for n in range(1, ROWS + 1):
            make_member(db, pii, district, n)
        db.commit()

        def ask(fmt: str) -> int:
            job = export_jobs.start(
                db, pii, user_id=user.id, scope=[district.id], args={}, overdue_days=15, fmt=fmt, layout=export.CODES
            )
            db.commit()  # the wake-up goes to the queue file; no consumer runs yet
            assert job.id is not None
            return job.id

        first, second = ask("csv"), ask("xlsx")
        # The second one's consumer "died" mid-file: running, its lease over, a partial file behind.
        folder = app.extensions["exports"].settings.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{second}-deadbeefdeadbeef.xlsx.part").write_bytes(b"PK half")
        db.execute(
            update(ExportJob)
            .where(ExportJob.id == second)
            .values(status="running", attempts=1, rows_done=20, due_at=utcnow() - timedelta(seconds=1))
        )
        db.commit()
    consumer = _consumer(env)
    try:
        done = _wait_done(engine, first, within=60)
        assert done is not None and done.status == "done" and done.rows_done == ROWS
        rows = list(csv.reader(io.StringIO((folder / done.file_path).read_text(encoding="utf-8-sig"))))
        assert len(rows) == ROWS + 1
        again = _wait_done(engine, second, within=60)
        assert again is not None and again.status == "done" and again.attempts == 2 and again.rows_done == ROWS
        assert sorted(p.name for p in folder.iterdir()) == sorted([done.file_path, again.file_path])
    finally:
        _kill(consumer)
        with Session(engine) as db:
            assert len(db.exec(select(ExportJob)).all()) == 2
        engine.dispose()
