"""Exports as jobs: a roster export of any size is prepared by `flask --app wsgi worker`, never in a request.

Why: a CSV of a million members takes seconds and an Excel file a minute; a request that long
outlives a proxy's read timeout and ties up a server worker. So a request only writes the job:

* In the request's transaction: an `export_job` row (who, the district scope, the filter
  encrypted like a name since a search may be one, the format, the header words in the user's
  language) and an `ExportRequested` event. The row is the job's own outbox row: no commit, no job.
* After the commit: a wake-up (`export`, with the job's id only) on the task queue (TASK_QUEUE,
  the same queue as the SMS outbox in app/services/tasks.py).
* The consumer claims the job with one UPDATE (queued, or running with its lease run out) and
  writes the file under INSTANCE_PATH/exports, renewing the lease with each step of progress
  (every `export.PROGRESS_EVERY` rows, which the roster shows). A consumer killed mid-file leaves
  the job running with a lease that runs out; the sweep (at the consumer's start, then every
  minute) wakes it again and it starts over from zero. The UPDATE of progress is fenced by the
  attempt: a consumer whose job was handed to another stops.
* Done: a download through a signed, expiring link (`sign` / `unsign`, itsdangerous); the view
  checks the signed-in user's districts cover the job's and audits the download.
* Files and rows go EXPORT_RETENTION_HOURS after the job ended (`purge`, run by the sweep and by
  `flask retention run`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from huey import Huey, crontab
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import Engine, delete, or_, update
from sqlmodel import Session, col, select

from app.models import ExportJob, utcnow
from app.services import events, export, roster
from app.services.crypto import PiiCipher
from app.services.roster import BadFilter, RosterFilter
from app.services.roster.filters import query_kind

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ACTIVE = (QUEUED, RUNNING)
FORMATS = ("csv", "xlsx")
GRACE_SECONDS = 10  # a new job is its commit's wake-up's for this long before a sweep takes it
LEASE_SECONDS = 120  # renewed every PROGRESS_EVERY rows (under a second for CSV, a few for XLSX)
SWEEP_HORIZON_SECONDS = 60
MAX_ATTEMPTS = 3  # a job that killed its consumer this often (memory, a bug) is failed, not retried
SALT = "scanjoin.export-download"
Clock = Callable[[], datetime]


class Superseded(Exception):
    """The job was handed to another consumer (this one's lease ran out): stop writing."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- the request's side ----------------------------------------------------------------------------


def layout_data(layout: export.Layout) -> dict[str, object]:
    """The layout as JSON for the job's row."""
    return {
        "header": list(layout.header),
        "statuses": dict(layout.statuses),
        "platforms": dict(layout.platforms),
        "zone": layout.zone.key if layout.zone is not None else None,
        "national_phones": layout.national_phones,
    }


def layout_from(data: dict[str, Any]) -> export.Layout:
    zone = data.get("zone")
    return export.Layout(
        header=[str(h) for h in data.get("header") or export.HEADER],
        statuses=dict(data.get("statuses") or {}),
        platforms=dict(data.get("platforms") or {}),
        zone=ZoneInfo(zone) if zone else None,
        national_phones=bool(data.get("national_phones")),
    )


def start(
    db: Session,
    pii: PiiCipher,
    *,
    user_id: int,
    scope: list[int] | None,
    args: dict[str, str],
    overdue_days: int,
    fmt: str,
    layout: export.Layout,
    now: datetime | None = None,
) -> ExportJob:
    """Write the job for the filter given by query arguments `args` (BadFilter if they are wrong);
    flushes, never commits. The caller's commit wakes a consumer."""
    if fmt not in FORMATS:
        raise BadFilter("format")
    flt = roster.filter_from_args(args, overdue_days=overdue_days)
    now = now or utcnow()
    sealed = pii.encrypt(json.dumps({"args": args, "overdue_days": overdue_days}, ensure_ascii=False))
    job = ExportJob(
        user_id=user_id,
        scope=sorted(scope) if scope is not None else None,
        filters_enc=sealed,
        filter_shape=flt.describe(),
        layout=layout_data(layout),
        format=fmt,
        due_at=now + timedelta(seconds=GRACE_SECONDS),
        created_at=now,
    )
    db.add(job)
    db.flush()
    assert job.id is not None
    events.record(db, events.ExportRequested(job.id))
    return job


def estimate(db: Session, pii: PiiCipher, scope: list[int] | None, flt: RosterFilter) -> int:
    """Rows the filter gives, at most (a name search is counted as if it matched every row, so
    the estimate never decrypts): what decides whether an export may still stream."""
    if flt.q and query_kind(flt.q) == "name":
        flt = RosterFilter(**{**flt.__dict__, "q": None})
    return total(db, pii, scope, flt)


def total(db: Session, pii: PiiCipher, scope: list[int] | None, flt: RosterFilter, now: datetime | None = None) -> int:
    counts = roster.counts(db, scope, flt, pii=pii, now=now)
    return counts[flt.status.value] if flt.status is not None else sum(counts.values())


def recent(db: Session, user_id: int, limit: int = 20) -> list[ExportJob]:
    """The user's jobs, newest first."""
    query = (
        select(ExportJob)
        .where(ExportJob.user_id == user_id)
        .order_by(col(ExportJob.created_at).desc(), col(ExportJob.id).desc())
        .limit(limit)
    )
    return list(db.exec(query).all())


def downloadable(job: ExportJob | None, *, now: datetime, hours: int) -> bool:
    """Whether the job's file may still be handed out: done, with a file, within its retention
    (a link signed late, or a sweep that has not run yet, never stretches EXPORT_RETENTION_HOURS)."""
    if job is None or job.status != DONE or not job.file_path or job.finished_at is None:
        return False
    return _aware(job.finished_at) + timedelta(hours=hours) > now


def covers(user_scope: list[int] | None, job_scope: list[int] | None) -> bool:
    """Whether a user of `user_scope` may have a file made for `job_scope` (None: every district)."""
    if user_scope is None:
        return True
    return job_scope is not None and set(job_scope) <= set(user_scope)


def sign(key: str, job_id: int) -> str:
    return URLSafeTimedSerializer(key, salt=SALT).dumps(job_id)


def unsign(key: str, token: str, max_age_seconds: int) -> int | None:
    """The job id of a link made by `sign` no longer ago than `max_age_seconds`, else None."""
    try:
        job_id = URLSafeTimedSerializer(key, salt=SALT).loads(token, max_age=max_age_seconds)
    except BadData:
        return None
    return job_id if isinstance(job_id, int) and not isinstance(job_id, bool) else None


def file_name(job: ExportJob, zone: ZoneInfo) -> str:
    """The name a download is saved under: the time the job was asked for, in the service's zone."""
    return f"roster-{_aware(job.created_at).astimezone(zone):%Y%m%d-%H%M}.{job.format}"


def purge(db: Session, folder: Path, *, now: datetime, hours: int) -> int:
    """Delete the files and rows of jobs ended more than `hours` ago (and jobs stuck queued that
    long); how many. Commits nothing."""
    cutoff = now - timedelta(hours=hours)
    old = db.exec(
        select(ExportJob).where(
            or_(
                col(ExportJob.finished_at) < cutoff,
                col(ExportJob.created_at) < cutoff - timedelta(hours=hours),  # never ended: stuck
            )
        )
    ).all()
    for job in old:
        if job.file_path:
            (folder / job.file_path).unlink(missing_ok=True)
    if old:
        db.execute(delete(ExportJob).where(col(ExportJob.id).in_([job.id for job in old])))
    return len(old)


# -- the consumer's side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    folder: Path  # where files are written (INSTANCE_PATH/exports)
    retention_hours: int


class Exports:
    """The export jobs of one app: the wake-up after the commit, the consumer's work, the sweep."""

    def __init__(
        self,
        huey: Huey,
        pii: PiiCipher,
        new_session: Callable[[], Session],
        read_engine: Engine,
        settings: Settings,
    ) -> None:
        self.huey, self.pii, self.new_session = huey, pii, new_session
        self.read_engine, self.settings = read_engine, settings
        self.wake = huey.task(name="export")(self.run)
        self.sweep_task = huey.periodic_task(crontab(minute="*"), name="sweep_exports")(self.sweep)

    def subscribe(self, bus: events.Bus) -> None:
        bus.subscribe(events.ExportRequested, self.enqueue)

    def enqueue(self, requested: events.ExportRequested) -> bool:
        self.wake(requested.job_id)
        return True

    def run(self, job_id: int, now: datetime | None = None) -> str:
        """Claim the job and write its file: "done", "failed", "taken" (not ours) or "superseded"."""
        now = now or utcnow()
        with self.new_session() as db:
            job = self._claim(db, job_id, now)
            if job is None:
                return "taken"
            if job.attempts > MAX_ATTEMPTS:
                self._settle(db, job_id, job.attempts, status=FAILED, error="gave_up")
                return "failed"
        return self._write(job, now)

    def _claim(self, db: Session, job_id: int, now: datetime) -> ExportJob | None:
        claimed = db.execute(
            update(ExportJob)
            .where(col(ExportJob.id) == job_id, col(ExportJob.status).in_(ACTIVE))
            .where(or_(col(ExportJob.attempts) == 0, col(ExportJob.due_at) <= now))
            .values(
                status=RUNNING,
                attempts=ExportJob.attempts + 1,
                due_at=now + timedelta(seconds=LEASE_SECONDS),
                rows_done=0,
                started_at=now,
            )
        )
        db.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return db.get(ExportJob, job_id, populate_existing=True)

    def _write(self, job: ExportJob, now: datetime) -> str:
        assert job.id is not None
        job_id, attempt = job.id, job.attempts
        try:
            saved = json.loads(self.pii.decrypt(job.filters_enc))
            flt = roster.filter_from_args(saved["args"], overdue_days=int(saved["overdue_days"]))
        except (ValueError, KeyError, BadFilter):  # a key since removed, or a filter no longer valid
            with self.new_session() as db:
                self._settle(db, job_id, attempt, status=FAILED, error="bad_filter")
            return "failed"
        folder = self.settings.folder
        folder.mkdir(parents=True, exist_ok=True)
        for left in folder.glob(f"{job_id}-*.part"):  # what a killed consumer's attempt had written
            left.unlink(missing_ok=True)
        name = f"{job_id}-{secrets.token_hex(8)}.{job.format}"
        partial = folder / (name + ".part")
        when = _aware(job.created_at)  # "the last 7 days" as of the request
        layout = layout_from(job.layout)
        try:
            with Session(self.read_engine) as reader:
                rows = total(reader, self.pii, job.scope, flt, now=when)
                self._progress(job_id, attempt, 0, rows)
                count = self._file(reader, partial, job, flt, layout, when)
            os.replace(partial, folder / name)
        except Superseded:
            partial.unlink(missing_ok=True)
            return "superseded"
        except Exception as exc:
            partial.unlink(missing_ok=True)
            log.error("export job %s failed: %s", job_id, type(exc).__name__)
            with self.new_session() as db:
                self._settle(db, job_id, attempt, status=FAILED, error=type(exc).__name__[:64])
            return "failed"
        with self.new_session() as db:
            if not self._settle(db, job_id, attempt, status=DONE, rows=count, path=name):
                (folder / name).unlink(missing_ok=True)
                return "superseded"
        log.info("export job %s done: %s rows", job_id, count)
        return "done"

    def _file(
        self, reader: Session, path: Path, job: ExportJob, flt: RosterFilter, layout: export.Layout, when: datetime
    ) -> int:
        assert job.id is not None
        job_id, attempt = job.id, job.attempts

        def progress(done: int) -> None:
            self._progress(job_id, attempt, done)

        if job.format == "xlsx":
            return export.write_xlsx(
                str(path), reader, self.pii, job.scope, flt, now=when, layout=layout, progress=progress
            )
        written: list[int] = []
        with open(path, "wb") as out:
            for chunk in export.csv_stream(
                reader,
                self.pii,
                job.scope,
                flt,
                finish=lambda n, _ok: written.append(n),
                now=when,
                layout=layout,
                progress=progress,
            ):
                out.write(chunk)
        return written[0]

    def _progress(self, job_id: int, attempt: int, done: int, rows_total: int | None = None) -> None:
        """Rows written so far (and the lease renewed), unless another consumer holds the job now."""
        values: dict[str, object] = {"rows_done": done, "due_at": utcnow() + timedelta(seconds=LEASE_SECONDS)}
        if rows_total is not None:
            values["rows_total"] = rows_total
        with self.new_session() as db:
            kept = db.execute(
                update(ExportJob)
                .where(col(ExportJob.id) == job_id, col(ExportJob.attempts) == attempt)
                .where(col(ExportJob.status) == RUNNING)
                .values(**values)
            )
            db.commit()
        if kept.rowcount != 1:  # type: ignore[attr-defined]
            raise Superseded(job_id)

    @staticmethod
    def _settle(
        db: Session,
        job_id: int,
        attempt: int,
        *,
        status: str,
        rows: int | None = None,
        path: str | None = None,
        error: str | None = None,
    ) -> bool:
        values: dict[str, object] = {"status": status, "finished_at": utcnow(), "file_path": path, "error": error}
        if rows is not None:
            values.update(rows_done=rows, rows_total=rows)
        settled = db.execute(
            update(ExportJob).where(col(ExportJob.id) == job_id, col(ExportJob.attempts) == attempt).values(**values)
        )
        db.commit()
        return bool(settled.rowcount == 1)  # type: ignore[attr-defined]

    # -- the sweep ---------------------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> int:
        """Wake every job due before the next sweep (queued without a wake-up, or held by a consumer
        that died), and delete files past their retention; how many jobs were woken."""
        now = now or utcnow()
        horizon = now + timedelta(seconds=SWEEP_HORIZON_SECONDS)
        with self.new_session() as db:
            due = db.exec(
                select(ExportJob.id, ExportJob.due_at).where(
                    col(ExportJob.status).in_(ACTIVE), col(ExportJob.due_at) <= horizon
                )
            ).all()
            purged = purge(db, self.settings.folder, now=now, hours=self.settings.retention_hours)
            db.commit()
        if purged:
            log.info("export jobs past retention deleted: %s", purged)
        for job_id, at in due:
            assert job_id is not None
            if self.huey.immediate:
                if _aware(at) <= now:
                    self.run(job_id, now)
            else:
                self.wake.schedule(args=(job_id,), eta=max(_aware(at), now))
        return len(due)
