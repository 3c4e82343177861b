"""Admins register webhook endpoints, read their delivery log and send a delivery again
(what `flask webhooks …` does). The secret is shown once, on the page that answers the add."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlmodel import col, select
from wtforms import SelectField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3 has it; types-WTForms 3.2 lacks it
from wtforms.validators import DataRequired, Length, ValidationError

from app.db import get_session
from app.models import District
from app.services import webhooks
from app.services.webhooks import endpoints
from app.web.access import deny, role_required

bp = Blueprint("admin_webhooks", __name__, url_prefix="/admin/webhooks")

EVENT_LABELS = {
    "member.submitted": _l("new application"),
    "member.approved": _l("approved"),
    "member.rejected": _l("rejected"),
    "member.withdrawn": _l("withdrawn by the worker"),
}
STATUS_LABELS = {"pending": _l("waiting to be tried again"), "delivered": _l("delivered"), "failed": _l("failed")}
SHOWN = 50


def _chosen(_form: FlaskForm, field: SelectMultipleField) -> None:
    if not field.data:
        raise ValidationError(_l("Choose at least one event."))


class EndpointForm(FlaskForm):
    url = StringField(_l("Address (URL)"), validators=[DataRequired(_l("Enter the address.")), Length(max=2000)])
    events = SelectMultipleField(
        _l("Events"),
        choices=[SelectChoice(name, label) for name, label in EVENT_LABELS.items()],
        option_widget=widgets.CheckboxInput(),
        validators=[_chosen],  # not DataRequired: it would mark every box required in the browser
    )
    district = SelectField(_l("District"), choices=[])


def _form(*, blank: bool = False) -> EndpointForm:
    form = EndpointForm(formdata=None) if blank else EndpointForm()
    districts = get_session().exec(select(District).order_by(col(District.code))).all()
    form.district.choices = [SelectChoice("", _l("every district"))]
    form.district.choices += [SelectChoice(d.code, f"{d.code} {d.name}") for d in districts]
    return form


def _page(form: EndpointForm, *, error: object = None, secret: str | None = None, status: int = 200) -> tuple[str, int]:
    db = get_session()
    page = render_template(
        "admin_webhooks/index.html",
        form=form,
        error=error,
        secret=secret,
        listed=endpoints.listed(db),
        deliveries=endpoints.deliveries(db, None, SHOWN),
        event_labels=EVENT_LABELS,
        status_labels=STATUS_LABELS,
    )
    return page, status


@bp.get("/")
@role_required()  # admins only
def index() -> ResponseReturnValue:
    return _page(_form())


@bp.post("/")
@role_required()
def add() -> ResponseReturnValue:
    form = _form()
    if not form.validate_on_submit():
        return _page(form, status=422)
    db = get_session()
    try:
        _endpoint, secret = endpoints.add(
            db,
            current_app.extensions["pii"],
            form.url.data or "",
            list(form.events.data or []),
            district_code=form.district.data or None,
            allow_private=current_app.config["WEBHOOK_ALLOW_PRIVATE"],
        )
    except webhooks.UrlRefused:
        return _page(form, error=_l("This address is refused: it is not a public http(s) address."), status=422)
    except webhooks.WebhookError:
        return _page(form, error=_l("Check the address, the events and the district."), status=422)
    db.commit()
    return _page(_form(blank=True), secret=secret)


@bp.post("/<int:endpoint_id>/remove")
@role_required()
def remove(endpoint_id: int) -> ResponseReturnValue:
    db = get_session()
    try:
        endpoints.remove(db, endpoint_id)
    except webhooks.EndpointNotFound:
        deny(404, "endpoint")
    db.commit()
    return redirect(url_for("admin_webhooks.index"), 303)


@bp.post("/deliveries/<delivery_id>/resend")
@role_required()
def resend(delivery_id: str) -> ResponseReturnValue:
    db, hooks = get_session(), current_app.extensions["webhooks"]
    try:
        owed = hooks.resend(db, delivery_id)
    except webhooks.DeliveryNotFound:
        deny(404, "delivery")
    db.commit()
    hooks.outbox.wake_one(owed.id)
    return redirect(url_for("admin_webhooks.index"), 303)
