"""Places from a CSV file (what `flask places import` does), with a report of every refused row in the
reader's language: the import service words its reasons in English for the command line and the API,
and this page translates each known wording."""

from __future__ import annotations

import re

from flask import render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from app.db import get_session
from app.extensions import csrf
from app.models import utcnow
from app.services import audit, places
from app.web.access import staff
from app.web.admin.core import blueprint

UPLOAD_LIMIT = 1024 * 1024  # a few thousand places; larger lists go through `flask places import`
FIELDS = {"district_name": _l("district name"), "workplace_name": _l("station name"), "name": _l("name")}
REASONS: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"too many columns"), _l("too many columns (4 or 5 are expected)")),
    (re.compile(r"district_code \("), _l("district_code (letters, digits, - or _) and district_name are required")),
    (
        re.compile(r"workplace_code must be"),
        _l("workplace_code must be letters, digits, - or _, with a workplace_name"),
    ),
    (re.compile(r"unknown kind (?P<value>.*) \("), _l("unknown kind %(value)s")),
    (re.compile(r"code (?P<value>\S+) is already a workplace"), _l("code %(value)s is already a station")),
    (re.compile(r"code (?P<value>\S+) is already a district"), _l("code %(value)s is already a district")),
    (re.compile(r"workplace (?P<value>\S+) belongs to another"), _l("station %(value)s belongs to another district")),
    (re.compile(r"(?P<field>\w+) is required"), _l("%(field)s is required")),
    (re.compile(r"(?P<field>\w+) has more than"), _l("%(field)s has more than 200 characters")),
    (
        re.compile(r"(?P<field>\w+) has a character .*\((?P<value>U\+[0-9A-F]+)\)"),
        _l("%(field)s has a character that cannot be printed (%(value)s)"),
    ),
]


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(message=_l("Choose a CSV file."))])


def reason_text(reason: str) -> str:
    """The import's English reason in the page's language (as it is when the wording is unknown)."""
    for pattern, text in REASONS:
        found = pattern.match(reason)
        if found:
            values = found.groupdict()
            field = values.get("field")
            return str(text) % {"value": values.get("value", ""), "field": FIELDS.get(field or "", field)}
    return reason


@blueprint.get("/places/import")
def import_form() -> str:
    return render_template("admin/place_import.html", form=ImportForm(), report=None)


@blueprint.post("/places/import")
@csrf.exempt  # checked by the form, once the body limit is raised (as on /admin/import)
def import_places() -> ResponseReturnValue:
    request.max_content_length = UPLOAD_LIMIT
    form = ImportForm()
    if not form.validate_on_submit():
        return render_template("admin/place_import.html", form=form, report=None), 422
    try:
        text = form.file.data.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        error = _l("The file is not UTF-8 text. In Excel, save it as “CSV UTF-8”.")
        return render_template("admin/place_import.html", form=form, report=None, error=error), 422
    db = get_session()
    report = places.import_csv(db, text, now=utcnow())
    audit.record(
        db,
        "place.import",
        target_type="place",
        actor_id=staff().id,
        created=len(report.created),
        updated=len(report.updated),
        rejected=len(report.rejected),
    )
    db.commit()
    rejected = [(line, reason_text(reason)) for line, reason in report.rejected]
    page = render_template("admin/place_import.html", form=ImportForm(formdata=None), report=report, rejected=rejected)
    return page
