"""The members export: the filtered roster as a streamed CSV or XLSX file when small, else a job.

A filter of more than EXPORT_STREAM_MAX_ROWS rows answers 422 `export_too_large` on the streamed
endpoint: a file that size is an export job (POST /exports, app/services/export_jobs.py), prepared
by `flask worker`, never streamed through one request. GET /exports/{id} shows its progress and,
once done, a signed, expiring `download_url`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, jsonify, request, send_file, stream_with_context, url_for

from app.db import get_session, session_scope
from app.models import ExportJob, utcnow
from app.security import action_limit
from app.services import export, export_jobs
from app.web.api.core import MEMBER_ROLES, ApiError, blueprint, caller, require, scope
from app.web.api.members import roster_filter

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@blueprint.get("/members/export")
@action_limit("export", lambda: caller().id or 0)
def export_members() -> Response:
    """The filtered roster as a streamed file; the audit event is written when the stream ends."""
    require(*MEMBER_ROLES)
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise ApiError(400, "bad_format", "format must be csv or xlsx")
    flt, user, ids = roster_filter(), caller(), scope()
    limit = current_app.config["EXPORT_STREAM_MAX_ROWS"]
    if export_jobs.estimate(get_session(), current_app.extensions["pii"], ids, flt) > limit:
        raise ApiError(
            422,
            "export_too_large",
            f"more than {limit} rows: start an export job (POST /api/v1/exports) or use /roster/exports/",
        )

    def finish(rows: int, complete: bool) -> None:
        with session_scope() as own:
            export.record(own, by=user, fmt=fmt, flt=flt, rows=rows, complete=complete)

    make = export.csv_stream if fmt == "csv" else export.xlsx_stream
    chunks = make(get_session(), current_app.extensions["pii"], ids, flt, finish=finish)
    mimetype = "text/csv; charset=utf-8" if fmt == "csv" else XLSX
    name = f"members-{utcnow():%Y%m%d-%H%M}.{fmt}"
    return Response(
        stream_with_context(chunks),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


API_FILTERS = ("status", "workplace", "platform", "q", "since")


def _aware_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def job_json(job: ExportJob) -> dict[str, Any]:
    """A job as the API shows it; `download_url` (signed, expiring) once its file is ready."""
    link = None
    if job.status == export_jobs.DONE and job.file_path and job.id is not None:
        link = url_for("api.export_file", token=export_jobs.sign(str(current_app.config["SECRET_KEY"]), job.id))
    return {
        "id": job.id,
        "format": job.format,
        "status": job.status,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "created_at": _aware_iso(job.created_at),
        "finished_at": _aware_iso(job.finished_at),
        "download_url": link,
    }


@blueprint.post("/exports")
@action_limit("export", lambda: caller().id or 0)
def start_export() -> tuple[Response, int, dict[str, str]]:
    """Start an export job of the filtered roster: 202 with the job; `flask worker` prepares the file."""
    require(*MEMBER_ROLES)
    fmt = request.args.get("format", "csv")
    if fmt not in export_jobs.FORMATS:
        raise ApiError(400, "bad_format", "format must be csv or xlsx")
    roster_filter()  # the same checks as the roster's own endpoints
    args = {k: request.args[k] for k in API_FILTERS if request.args.get(k)}
    db = get_session()
    job = export_jobs.start(
        db,
        current_app.extensions["pii"],
        user_id=caller().id or 0,
        scope=scope(),
        args=args,
        overdue_days=current_app.config["ROSTER_OVERDUE_DAYS"],
        fmt=fmt,
        layout=export.CODES,
    )
    db.commit()
    assert job.id is not None
    db.refresh(job)  # TASK_QUEUE=immediate has run it already
    return jsonify(job_json(job)), 202, {"Location": url_for("api.get_export", job_id=job.id)}


@blueprint.get("/exports/<int:job_id>")
def get_export(job_id: int) -> Response:
    """One of the caller's export jobs: its status, progress and, when done, its download link."""
    require(*MEMBER_ROLES)
    job = get_session().get(ExportJob, job_id)
    if job is None or job.user_id != caller().id:
        raise ApiError(404, "not_found", "no such export job of yours")
    return jsonify(job_json(job))


@blueprint.get("/exports/file/<token>")
def export_file(token: str) -> Response:
    """A finished job's file through its signed link, for a caller whose districts cover the job's; audited."""
    require(*MEMBER_ROLES)
    max_age = int(current_app.config["EXPORT_RETENTION_HOURS"]) * 3600
    job_id = export_jobs.unsign(str(current_app.config["SECRET_KEY"]), token, max_age)
    db = get_session()
    job = db.get(ExportJob, job_id) if job_id is not None else None
    folder = current_app.extensions["exports"].settings.folder
    hours = int(current_app.config["EXPORT_RETENTION_HOURS"])
    if (
        job is None
        or not export_jobs.downloadable(job, now=utcnow(), hours=hours)
        or not job.file_path
        or not export_jobs.covers(scope(), job.scope)
        or not (folder / job.file_path).is_file()
    ):
        raise ApiError(404, "not_found", "no such file: the link expired, or the file was deleted")
    export.record_job(db, by=caller(), job=job)
    db.commit()
    mimetype = "text/csv; charset=utf-8" if job.format == "csv" else XLSX
    name = f"members-{job.created_at:%Y%m%d-%H%M}.{job.format}"
    response = send_file(folder / job.file_path, mimetype=mimetype, as_attachment=True, download_name=name, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response
