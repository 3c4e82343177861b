"""Admins import an existing register of members from a CSV file (what `flask members import` does).

The upload is larger than any other form, so this view raises the request's body limit before
the body is read; Flask-WTF's global CSRF check would read it first, so the view is exempt from
it and the form checks its own CSRF token instead. Larger registers go through the command line
(`flask --app wsgi members import`), which shows progress and has no request timeout.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlmodel import Session
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3 has it; types-WTForms 3.2 lacks it

from app.db import engine, get_session
from app.extensions import csrf
from app.services import member_import
from app.web.access import role_required, staff

bp = Blueprint("admin_import", __name__, url_prefix="/admin")

UPLOAD_LIMIT = 2 * 1024 * 1024  # about 30,000 rows: imported well within a request's 30 s
SHOWN_ROWS = 1000  # rows of the report listed on the page (the counts cover all)
ENCODINGS = [
    SelectChoice("auto", _l("Detect (UTF-8 or GBK)")),
    SelectChoice("utf-8", "UTF-8"),
    SelectChoice("gbk", _l("GBK (Chinese Excel)")),
]
FILE_ERRORS = {
    "encoding": _l("The file could not be read. Save it as “CSV UTF-8”, or choose its encoding."),
    "header": _l("The first row must name the columns. Missing: %(columns)s."),
    "format": _l("The file is not a CSV table (line %(columns)s could not be read)."),
}
REASONS = {
    "missing_name": _l("no name"),
    "name_too_long": _l("name longer than 50 characters"),
    "control_characters": _l("control characters in a cell"),
    "phone_empty": _l("no mobile number"),
    "phone_malformed": _l("not a valid mobile number"),
    "phone_region": _l("number from a region that cannot join"),
    "phone_not_mobile": _l("not a mobile number"),
    "missing_district": _l("no district"),
    "unknown_district": _l("unknown district"),
    "unknown_workplace": _l("unknown station"),
    "workplace_other_district": _l("station of another district"),
    "unknown_platform": _l("unknown platform"),
    "bad_date": _l("join date not a past date (YYYY-MM-DD)"),
    "phone_already_member": _l("already a member (same phone)"),
    "number_taken": _l("member number already used: a new one was given"),
    "conflict": _l("written by someone else at the same time: try this row again"),
}
OUTCOMES = {
    member_import.IMPORTED: _l("imported"),
    member_import.WOULD_IMPORT: _l("would be imported"),
    member_import.DUPLICATE_EXISTING: _l("already a member"),
    member_import.DUPLICATE_IN_FILE: _l("repeated in the file"),
    member_import.REJECTED: _l("not imported"),
}


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(message=_l("Choose a CSV file."))])
    encoding = SelectField(_l("Encoding"), choices=ENCODINGS, default="auto")
    dry_run = BooleanField(_l("Only check the file: write nothing"), default=True)


@bp.get("/import")
@role_required()  # admins only
def form() -> str:
    return render_template("admin_import/form.html", form=ImportForm(), limit_mb=UPLOAD_LIMIT // 1024 // 1024)


@bp.post("/import")
@csrf.exempt  # checked by the form, once the body limit is raised
@role_required()
def upload() -> tuple[str, int] | str | Response:
    request.max_content_length = UPLOAD_LIMIT
    form_ = ImportForm()
    if not form_.validate_on_submit():
        return _form_page(form_, None, 422)
    try:
        result = _run(form_.file.data.read(), form_.encoding.data or "auto", dry_run=bool(form_.dry_run.data))
    except member_import.ImportFileError as exc:
        return _form_page(form_, FILE_ERRORS[exc.reason] % {"columns": exc.detail}, 422)
    rows = [r for r in result.rows if r.outcome not in (member_import.IMPORTED, member_import.WOULD_IMPORT)]
    return render_template(
        "admin_import/report.html",
        result=result,
        counts=result.counts(),
        rows=rows[:SHOWN_ROWS],
        more=max(0, len(rows) - SHOWN_ROWS),
        dry_run=bool(form_.dry_run.data),
        reasons=REASONS,
        outcomes=OUTCOMES,
    )


def _form_page(form_: ImportForm, error: object, status: int) -> tuple[str, int]:
    page = render_template("admin_import/form.html", form=form_, error=error, limit_mb=UPLOAD_LIMIT // 1024 // 1024)
    return page, status


def _run(data: bytes, encoding: str, *, dry_run: bool) -> member_import.Plan:
    """Plan, write batch by batch (a commit each), then the audit event."""
    db, pii = get_session(), current_app.extensions["pii"]
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    text = member_import.decode(data, encoding)
    with Session(engine()) as reader:  # a read transaction: on SQLite the writer's would hold the write lock
        result = member_import.plan(
            reader,
            text,
            pii=pii,
            allowed_regions=current_app.config["ALLOWED_REGIONS"],
            today=datetime.now(zone).date(),
        )
    if dry_run:
        member_import.preview_numbers(result)
    else:
        writer = member_import.Writer(result, pii, zone, actor_id=staff().id)
        for batch in member_import.batches(result):
            writer.write(db, batch)
            db.commit()
    member_import.forget_personal_data(result)
    member_import.record(db, result, actor_id=staff().id, dry_run=dry_run, via="web")
    db.commit()
    return result
