"""The members export: the filtered roster as a streamed CSV or XLSX file, when small.

A filter of more than EXPORT_STREAM_MAX_ROWS rows answers 422 `export_too_large`: a file that
size is prepared as a job on the roster (/roster/exports, app/web/exports.py), never streamed
through one request.
"""

from __future__ import annotations

from flask import Response, current_app, request, stream_with_context

from app.db import get_session, session_scope
from app.models import utcnow
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
            422, "export_too_large", f"more than {limit} rows: prepare this export on the roster (/roster/exports/)"
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
