"""Districts and workplaces: list, create, edit, retire (the CSV import is in place_import.py)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlmodel import select
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3 has it; types-WTForms 3.2 lacks it
from wtforms.validators import DataRequired, Length

from app.db import get_session
from app.models import District, Workplace, WorkplaceKind, utcnow
from app.services import place_admin, places
from app.web.access import staff
from app.web.admin.core import blueprint

KINDS = [
    SelectChoice(WorkplaceKind.delivery_station.value, _l("Delivery station")),
    SelectChoice(WorkplaceKind.rest_station.value, _l("Rest station (驿站)")),
    SelectChoice(WorkplaceKind.hub.value, _l("Hub")),
    SelectChoice(WorkplaceKind.other.value, _l("Other")),
]
PROBLEMS = {
    "code": _l("The code may have 1 to 32 letters, digits, - or _."),
    "code_taken": _l("This code is already used by another place."),
    "name": _l("The name is required, at most 200 characters: letters, digits, spaces and punctuation."),
    "retired": _l("This district is retired: it takes no new stations."),
}


class DistrictForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])


class WorkplaceForm(DistrictForm):
    kind = SelectField(_l("Kind"), choices=KINDS, default=WorkplaceKind.delivery_station.value)


class EditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=KINDS)


def _place(code: str) -> places.Place:
    try:
        return places.find_by_code(get_session(), code)
    except places.PlaceNotFound:
        abort(404)


def _district(code: str) -> District:
    district = get_session().exec(select(District).where(District.code == code)).first()
    if district is None:
        abort(404)
    return district


def _status() -> int:
    return 422 if request.method == "POST" else 200


@blueprint.get("/places")
def place_list() -> str:
    db = get_session()
    districts = db.exec(select(District).order_by(District.code))
    groups = [(d, places.workplaces_of(db, d.id or 0, retired=True)) for d in districts]
    return render_template("admin/places.html", groups=groups, kinds={c.value: c.label for c in KINDS})


@blueprint.route("/places/new", methods=["GET", "POST"])
def new_district() -> ResponseReturnValue:
    form, error = DistrictForm(), None
    if form.validate_on_submit():
        db = get_session()
        try:
            place_admin.create_district(
                db, form.code.data or "", form.name.data or "", now=utcnow(), actor_id=staff().id
            )
        except place_admin.PlaceError as exc:
            db.rollback()
            error = PROBLEMS[exc.reason]
        else:
            db.commit()
            flash(_("The district is created."))
            return redirect(url_for("admin.place_list"), 303)
    return render_template("admin/place_form.html", form=form, error=error, district=None), _status()


@blueprint.route("/places/<code>/new", methods=["GET", "POST"])
def new_workplace(code: str) -> ResponseReturnValue:
    district, form, error = _district(code), WorkplaceForm(), None
    if form.validate_on_submit():
        db = get_session()
        kind = WorkplaceKind(form.kind.data)
        try:
            place_admin.create_workplace(
                db, district, form.code.data or "", form.name.data or "", kind, now=utcnow(), actor_id=staff().id
            )
        except place_admin.PlaceError as exc:
            db.rollback()
            error = PROBLEMS[exc.reason]
        else:
            db.commit()
            flash(_("The station is created."))
            return redirect(url_for("admin.place_list"), 303)
    return render_template("admin/place_form.html", form=form, error=error, district=district), _status()


@blueprint.route("/places/<code>/edit", methods=["GET", "POST"])
def edit_place(code: str) -> ResponseReturnValue:
    place = _place(code)
    is_workplace = isinstance(place, Workplace)
    form = EditForm(obj=place, kind=place.kind.value if isinstance(place, Workplace) else None)
    if not is_workplace:
        del form.kind
    error = None
    if form.validate_on_submit():
        db = get_session()
        kind = WorkplaceKind(form.kind.data) if is_workplace else None
        try:
            place_admin.edit(db, place, form.name.data or "", kind=kind, actor_id=staff().id)
        except place_admin.PlaceError as exc:
            db.rollback()
            error = PROBLEMS[exc.reason]
        else:
            db.commit()
            flash(_("The place is saved."))
            return redirect(url_for("admin.place_list"), 303)
    return render_template("admin/place_edit.html", form=form, error=error, place=place), _status()


@blueprint.get("/places/<code>/retire")
def confirm_retire(code: str) -> str:
    place = _place(code)
    stations = places.workplaces_of(get_session(), place.id or 0) if isinstance(place, District) else []
    return render_template("admin/retire.html", place=place, stations=[s for s in stations if not s.retired_at])


@blueprint.post("/places/<code>/retire")
def retire(code: str) -> Response:
    db, place = get_session(), _place(code)
    retired = place_admin.retire(db, place, now=utcnow(), actor_id=staff().id)
    db.commit()
    flash(_("%(n)d places are retired: their posters no longer work.", n=len(retired)))
    return redirect(url_for("admin.place_list"), 303)
