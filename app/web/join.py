"""The worker's path: scan → form → SMS code → pending application. Works without JavaScript."""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, redirect, render_template, session, url_for
from flask_babel import get_locale, gettext as _, lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.fields import TelField
from wtforms.validators import DataRequired, Length

from sqlalchemy.exc import SQLAlchemyError

from app.db import get_session, session_scope
from app.models import District, JoinAttempt, Member, PlaceKind, Platform, utcnow
from app.services import membership, places, stats, verification
from app.services.phones import PhoneInvalid, masked, normalize
from app.services.sms import SmsError
from app.services.tokens import TOKEN_PATTERN

log = logging.getLogger(__name__)
bp = Blueprint("join", __name__)

PLATFORM_LABELS = {
    Platform.meituan: _l("Meituan"),
    Platform.eleme: _l("Ele.me"),
    Platform.didi: _l("DiDi"),
    Platform.huolala: _l("Huolala"),
    Platform.shansong: _l("Shansong"),
    Platform.sf_intra_city: _l("SF Intra-city"),
    Platform.other: _l("Other"),
}
PHONE_MESSAGES = {
    "empty": _l("Please enter your mobile number."),
    "malformed": _l("This is not a valid mobile number. Check the digits and try again."),
    "region": _l("Numbers from this country or region cannot be used here."),
    "not_mobile": _l("Please enter a mobile number that can receive SMS."),
}
SMS_MESSAGES = {
    "rate_limited": _l("Too many codes were requested for this number. Please wait a while and try again."),
    "rejected": _l("We could not send a code to this number. Check the number and try again."),
    "unavailable": _l("SMS is temporarily unavailable. Your details are saved: please try again in a few minutes."),
    "expired": _l("This code has expired. Ask for a new one."),
}
NO_WORKPLACE = "none"


class QrTokenConverter(BaseConverter):
    """A 21-character base32 token, in either case (people type the printed URL)."""

    regex = TOKEN_PATTERN


class JoinForm(FlaskForm):
    form_key = HiddenField()
    name = StringField(_l("Your name"), validators=[
        DataRequired(message=_l("Please enter your name.")), Length(max=50, message=_l("Please use at most 50 characters.")),
    ])
    phone = TelField(_l("Mobile phone"))
    platform = SelectField(_l("Platform you work for"), choices=[SelectChoice(p.value, label) for p, label in PLATFORM_LABELS.items()])
    workplace = SelectField(_l("Your station"), choices=[], validate_choice=True)
    consent = BooleanField(validators=[DataRequired(message=_l("Please read the notice and tick the box to continue."))])


class CodeForm(FlaskForm):
    code = StringField(_l("6-digit code"), validators=[DataRequired(message=_l("Please enter the code from the SMS."))])


class EmptyForm(FlaskForm):
    """A CSRF token and nothing else (the resend button)."""


def _resolve(token: str) -> places.ResolvedPlace:
    signer = current_app.extensions["qr_signer"]
    try:
        return places.resolve(get_session(), signer, token, utcnow().date())
    except places.PlaceNotFound:
        abort(404)
    except places.PlaceReplaced:
        abort(410)


def _prepare(form: JoinForm, place: places.ResolvedPlace) -> None:
    if place.workplace is None:
        workplaces = places.workplaces_of(get_session(), place.district.id or 0)
        choices = [SelectChoice(str(w.id), w.name) for w in workplaces]
        form.workplace.choices = [*choices, SelectChoice(NO_WORKPLACE, _("No fixed station"))]
    else:
        form.workplace.choices = [SelectChoice(str(place.workplace.id), place.workplace.name)]
        form.workplace.data = str(place.workplace.id)
    if not form.form_key.data:
        form.form_key.data = secrets.token_urlsafe(16)


def _count(kind: PlaceKind, place_id: int, qr_version: int, step: str, db=None) -> None:  # type: ignore[no-untyped-def]
    """Bump a funnel counter; in `db`'s transaction, or in a short one of its own."""
    args = {"kind": kind, "place_id": place_id, "qr_version": qr_version, "step": step, "day": utcnow().date()}
    if db is not None:
        stats.bump(db, **args)
        return
    try:
        with session_scope() as own:
            stats.bump(own, **args)
    except SQLAlchemyError:
        log.warning("scan not counted: database busy")


def _count_place(place: places.ResolvedPlace, step: str, db=None) -> None:  # type: ignore[no-untyped-def]
    source = place.workplace if place.kind is PlaceKind.workplace else place.district
    _count(place.kind, source.id or 0, place.qr_version, step, db)  # type: ignore[union-attr]


def _count_attempt(attempt: JoinAttempt, step: str) -> None:
    source_id = attempt.workplace_id if attempt.source_kind is PlaceKind.workplace else attempt.district_id
    _count(attempt.source_kind, source_id or 0, attempt.source_qr_version, step, get_session())


@bp.get("/<qrtoken:token>")
def scan(token: str) -> str:
    place = _resolve(token)
    _count_place(place, "scans")
    form = JoinForm()
    _prepare(form, place)
    return _render_form(form, place, token)


def _render_form(form: JoinForm, place: places.ResolvedPlace, token: str, status: int = 200):  # type: ignore[no-untyped-def]
    body = render_template("join/scan.html", form=form, place=place, token=token,
                           consent_version=membership.CONSENT_VERSION)
    return body, status


@bp.post("/<qrtoken:token>")
def submit(token: str):  # type: ignore[no-untyped-def]
    place = _resolve(token)
    form = JoinForm()
    _prepare(form, place)
    valid = form.validate()
    phone = _validated_phone(form)
    if not valid or phone is None or not form.form_key.data:
        return _render_form(form, place, token, 422)
    applicant = membership.Applicant(
        name=form.name.data.strip(), phone=phone, platform=Platform(form.platform.data),
        workplace_id=None if form.workplace.data == NO_WORKPLACE else int(form.workplace.data),
        locale=str(get_locale()),
    )
    return _start(place, applicant, form, token)


def _validated_phone(form: JoinForm) -> str | None:
    try:
        return normalize(form.phone.data or "", current_app.config["ALLOWED_REGIONS"])
    except PhoneInvalid as exc:
        form.phone.errors = [*form.phone.errors, PHONE_MESSAGES[exc.reason]]  # type: ignore[assignment]
        return None


def _start(place: places.ResolvedPlace, applicant: membership.Applicant, form: JoinForm, token: str):  # type: ignore[no-untyped-def]
    db, now = get_session(), utcnow()
    try:
        attempt, created = membership.start_attempt(
            db, place, applicant, form_key=form.form_key.data, pii=current_app.extensions["pii"], now=now
        )
    except membership.AttemptMismatch:
        form.form_key.data = secrets.token_urlsafe(16)
        form.form_key.errors = [_("This form was already sent with another number. Please send it again.")]
        return _render_form(form, place, token, 409)
    code = _issue(attempt) if created else None
    if created:
        _count_place(place, "forms", db)
    db.commit()
    session["attempt"] = attempt.id
    if created:
        _deliver(attempt, applicant.phone, code)
    return redirect(url_for("join.code"), 303)


def _issue(attempt: JoinAttempt) -> str | None:
    config = current_app.config
    code = verification.issue(
        attempt, gateway=current_app.extensions["sms"], key=config["SECRET_KEY"], now=utcnow(),
        ttl=config["CODE_TTL_SECONDS"],
    )
    get_session().add(attempt)
    return code


def _deliver(attempt: JoinAttempt, phone: str, code: str | None) -> None:
    """Send the code after the commit; a failure is shown on the code page, the draft is kept."""
    try:
        verification.deliver(current_app.extensions["sms"], to=phone, code=code, locale=attempt.locale)
        session.pop("sms_error", None)
    except SmsError as exc:
        log.warning("code for attempt %s not sent: %s", attempt.id[:8], exc.kind)
        session["sms_error"] = exc.kind


def _current_attempt(lock: bool = False) -> JoinAttempt:
    attempt_id = session.get("attempt")
    attempt = get_session().get(JoinAttempt, attempt_id, with_for_update=lock) if attempt_id else None
    if attempt is None:
        abort(404)
    return attempt


@bp.get("/join/code")
def code():  # type: ignore[no-untyped-def]
    attempt = _current_attempt()
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    return _render_code(attempt, CodeForm())


def _render_code(attempt: JoinAttempt, form: CodeForm, status: int = 200, message: str | None = None):  # type: ignore[no-untyped-def]
    pii = current_app.extensions["pii"]
    wait = verification.resend_wait(attempt, now=utcnow(), cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"])
    sms_error = session.get("sms_error")
    notice = message or (str(SMS_MESSAGES[sms_error]) if sms_error in SMS_MESSAGES else None)
    body = render_template("join/code.html", form=form, resend=EmptyForm(), wait=wait, message=notice,
                           phone=masked(pii.decrypt(attempt.phone_enc)))
    return body, status


@bp.post("/join/code")
def check_code():  # type: ignore[no-untyped-def]
    attempt = _current_attempt(lock=True)
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    form = CodeForm()
    if not form.validate():
        return _render_code(attempt, form, 422)
    message = _check(attempt, form.code.data or "")
    db = get_session()
    if message is None:
        enrollment = membership.enroll(db, attempt, pii=current_app.extensions["pii"], now=utcnow())
        _count_attempt(attempt, "verified")
        if enrollment.outcome in ("created", "reapplied"):
            _count_attempt(attempt, "joins")
    db.add(attempt)
    db.commit()
    if message is not None:
        return _render_code(attempt, form, 422, message)
    return redirect(url_for("join.done"), 303)


def _check(attempt: JoinAttempt, code: str) -> str | None:
    """None when the code is right, else the message to show."""
    config, pii = current_app.config, current_app.extensions["pii"]
    try:
        verification.check(
            attempt, code, phone=pii.decrypt(attempt.phone_enc), gateway=current_app.extensions["sms"],
            key=config["SECRET_KEY"], now=utcnow(), max_tries=config["CODE_MAX_TRIES"],
        )
    except verification.CodeWrong as exc:
        return _("That code is not right. You have %(n)d tries left.", n=exc.tries_left)
    except verification.CodeLocked:
        return _("Too many wrong codes. Ask for a new code.")
    except verification.CodeExpired:
        return _("This code has expired. Ask for a new code.")
    except SmsError as exc:
        return str(SMS_MESSAGES.get(exc.kind, SMS_MESSAGES["unavailable"]))
    return None


@bp.post("/join/resend")
def resend():  # type: ignore[no-untyped-def]
    attempt = _current_attempt(lock=True)
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    form = EmptyForm()
    if not form.validate():
        abort(400)
    wait = verification.resend_wait(attempt, now=utcnow(), cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"])
    if wait:
        return _render_code(attempt, CodeForm(), 429, _("Please wait %(n)d seconds before asking for a new code.", n=wait))
    code = _issue(attempt)
    get_session().commit()
    _deliver(attempt, current_app.extensions["pii"].decrypt(attempt.phone_enc), code)
    return redirect(url_for("join.code"), 303)


@bp.get("/join/done")
def done() -> str:
    attempt = _current_attempt()
    if attempt.verified_at is None:
        abort(404)
    db = get_session()
    member = db.get(Member, attempt.member_id) if attempt.member_id else None
    district = db.get(District, member.district_id if member else attempt.district_id)
    return render_template("join/done.html", outcome=attempt.outcome, member=member, district=district)
