"""Roster exports as jobs: start one, watch its progress, download the file (app/services/export_jobs.py).

The roster's Export buttons post here; the job is written with the commit and prepared by the
consumer (`flask --app wsgi worker`), so no request waits for a million rows. /roster/exports lists
the user's jobs with their progress; it reloads itself while one runs (a <meta refresh> inside
<noscript>, or exports.js polling /roster/exports/progress). A finished file is downloaded through
a signed link that expires with the file (EXPORT_RETENTION_HOURS), only by a signed-in official
or admin whose districts cover the job's; each download is audited like a streamed export.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from app.db import get_session
from app.models import ExportJob, Role, utcnow
from app.security import action_limit
from app.services import export, export_jobs, roster
from app.web.access import deny, role_required, scope, staff
from app.web.roster import FILTER_KEYS, STATUS_LABELS, _export_layout
from app.web.worker.messages import PLATFORM_LABELS

bp = Blueprint("exports", __name__, url_prefix="/roster/exports")
LISTED = 20
PANEL = 3  # the latest jobs shown on the roster itself
FILTER_LABELS = {
    "status": _l("Status"),
    "platform": _l("Platform"),
    "workplace": _l("Station code"),
    "district": _l("District code"),
    "q": _l("Search"),
    "recent_days": _l("Joined in the last days"),
    "overdue": _l("Only overdue"),
    "since": _l("Since"),
}
QUERY_KINDS = {"name": _l("a name"), "last4": _l("last 4 digits"), "phone": _l("a phone number")}


class StartForm(FlaskForm):
    """CSRF only: the format and the filter (f_<key>) are read from request.form."""


def _key() -> str:
    return str(current_app.config["SECRET_KEY"])


def _max_age() -> int:
    return int(current_app.config["EXPORT_RETENTION_HOURS"]) * 3600


def _shape_text(shape: dict[str, object]) -> str:
    """The job's filter in words (its shape only: a search shows its kind, never its text)."""
    platforms = {p.value: str(label) for p, label in PLATFORM_LABELS.items()}
    words = {"status": {k: str(v) for k, v in STATUS_LABELS.items()}, "platform": platforms}
    parts = []
    for key, label in FILTER_LABELS.items():
        if key not in shape:
            continue
        value = shape[key]
        if key == "q":
            value = QUERY_KINDS.get(str(value), value)
        elif key == "overdue":
            parts.append(str(label))
            continue
        parts.append(_("%(label)s: %(value)s", label=label, value=words.get(key, {}).get(str(value), value)))
    return " · ".join(parts) or _("the whole roster")


def _view(job: ExportJob) -> dict[str, object]:
    """What the page shows of a job: no filter text, only its shape."""
    total = job.rows_total
    percent = 100 if job.status == export_jobs.DONE else (int(job.rows_done * 100 / total) if total else 0)
    link = None
    if job.status == export_jobs.DONE and job.file_path and job.id is not None:
        link = url_for("exports.download", token=export_jobs.sign(_key(), job.id))
    return {
        "id": job.id,
        "format": job.format,
        "status": job.status,
        "rows_done": job.rows_done,
        "rows_total": total,
        "percent": min(percent, 100),
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "shape_text": _shape_text(job.filter_shape),
        "link": link,
    }


def _jobs() -> tuple[list[dict[str, object]], bool]:
    jobs = export_jobs.recent(get_session(), staff().id or 0, limit=LISTED)
    return [_view(job) for job in jobs], any(job.status in export_jobs.ACTIVE for job in jobs)


@bp.app_context_processor
def panel() -> dict[str, object]:
    """`export_panel()` in templates: the signed-in user's latest jobs (the roster's panel)."""

    def export_panel() -> list[dict[str, object]]:
        return [_view(job) for job in export_jobs.recent(get_session(), staff().id or 0, limit=PANEL)]

    return {"export_panel": export_panel}


@bp.get("/")
@role_required(Role.official)
def index() -> str:
    jobs, running = _jobs()
    return render_template("roster/exports.html", jobs=jobs, running=running, form=StartForm())


@bp.get("/progress")
@role_required(Role.official)
def progress() -> Response:
    """Polled by exports.js while a job runs: the rows of the list and whether one still runs."""
    jobs, running = _jobs()
    return jsonify({"running": running, "rows": render_template("roster/_exports_rows.html", jobs=jobs)})


@bp.post("/")
@role_required(Role.official)
@action_limit("export", lambda: staff().id or 0)
def start() -> ResponseReturnValue:
    """Write the job with the commit; the consumer is woken after it."""
    if not StartForm().validate():
        abort(400)
    fmt = request.form.get("format", "")
    args = {k: request.form[f"f_{k}"] for k in FILTER_KEYS if request.form.get(f"f_{k}")}
    db = get_session()
    try:
        export_jobs.start(
            db,
            current_app.extensions["pii"],
            user_id=staff().id or 0,
            scope=scope(),
            args=args,
            overdue_days=current_app.config["ROSTER_OVERDUE_DAYS"],
            fmt=fmt,
            layout=_export_layout(),
        )
    except roster.BadFilter:
        flash(_("This export could not be started: its filter or format is not valid. Please search again."))
        return redirect(url_for("roster.index"), 303)
    db.commit()
    flash(_("Your export is being prepared. This page shows its progress; download it here when it is ready."))
    return redirect(url_for("exports.index"), 303)


@bp.get("/file/<token>")
@role_required(Role.official)
def download(token: str) -> ResponseReturnValue:
    """The file of a finished job, for a user whose districts cover the job's; audited."""
    job_id = export_jobs.unsign(_key(), token, _max_age())
    if job_id is None:
        return render_template("roster/export_gone.html"), 410
    db = get_session()
    job = db.get(ExportJob, job_id)
    if not export_jobs.downloadable(job, now=utcnow(), hours=current_app.config["EXPORT_RETENTION_HOURS"]):
        return render_template("roster/export_gone.html"), 410
    assert job is not None and job.file_path is not None
    if not export_jobs.covers(scope(), job.scope):
        deny(404, "export scope")
    folder = current_app.extensions["exports"].settings.folder
    path = folder / job.file_path
    if not path.is_file():
        return render_template("roster/export_gone.html"), 410
    export.record_job(db, by=staff(), job=job)
    db.commit()
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    mimetype = "text/csv; charset=utf-8" if job.format == "csv" else export.XLSX_MIMETYPE
    response = send_file(
        path, mimetype=mimetype, as_attachment=True, download_name=export_jobs.file_name(job, zone), max_age=0
    )
    response.headers["Cache-Control"] = "no-store"
    return response
