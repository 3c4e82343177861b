"""The worker's status page (linked from the decision SMS): phone → SMS code → status; withdraw.

Any valid number gets a code, so nothing is revealed before the phone is proven. Tries and
sends are counted in the `status_check` row; the cookie only names the row.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField
from wtforms.fields import TelField
from wtforms.validators import DataRequired

from app.db import get_session
from app.extensions import limiter
from app.models import District, StatusCheck, utcnow
from app.services import limits, status, verification
from app.services.phones import PhoneInvalid, masked, normalize
from app.services.sms import SmsError
from app.web import challenge, sms_guard
from app.web.join import LIMIT_MESSAGES, PHONE_MESSAGES, PLATFORM_LABELS, SMS_MESSAGES, CodeForm, EmptyForm

log = logging.getLogger(__name__)
bp = Blueprint("status", __name__, url_prefix="/status")
SESSION_KEY = "status_check"
PENDING = "status_check_for"  # session: the check whose code waits for the human check
CHECK_PAGES = {"answer": "status.answer_check", "again": "status.human_check"}  # its picture's endpoints
LIMIT_MESSAGE = _l("Too many codes were asked for this number today. Please try again tomorrow.")


class PhoneForm(FlaskForm):
    phone = TelField(_l("Mobile phone"))


class WithdrawForm(FlaskForm):
    confirm = BooleanField(validators=[DataRequired(message=_l("Tick the box to confirm."))])


def _gateway():  # type: ignore[no-untyped-def]
    return current_app.extensions["sms"]


def _guard() -> limits.Limits:
    """The join flow's limits (same store, same keys): a phone's sends and failures count once."""
    return limits.Limits(limiter.limiter, daily_budget=current_app.config["SMS_DAILY_BUDGET"])


def _refusal(exc: Exception) -> tuple[str, int]:
    """The message and status for a limit that stopped a send or a check (fail closed: 503)."""
    if isinstance(exc, limits.LimiterUnavailable):
        return str(SMS_MESSAGES["unavailable"]), 503
    scope = "locked" if isinstance(exc, limits.PhoneLocked) else getattr(exc, "scope", "phone")
    return str(LIMIT_MESSAGES.get(scope, LIMIT_MESSAGES["phone"])), 429


def _reserve_send(phone: str) -> None:
    """Count one SMS against the per-phone, per-prefix, per-IP and global limits (raises)."""
    pii = current_app.extensions["pii"]
    _guard().reserve_send(
        phone=limits.phone_key(pii, phone), prefix=limits.prefix_key(pii, phone), ip=limits.ip_key(request.remote_addr)
    )
    sms_guard.note_sent(phone)  # conversion (B6) counts these codes too: any number may ask for one


@bp.get("/")
def start() -> str:
    return render_template("status/start.html", form=PhoneForm())


@bp.post("/")
def send():  # type: ignore[no-untyped-def]
    form = PhoneForm()
    if not form.validate():
        return render_template("status/start.html", form=form), 422
    try:
        phone = normalize(form.phone.data or "", current_app.config["ALLOWED_REGIONS"])
    except PhoneInvalid as exc:
        form.phone.errors = [PHONE_MESSAGES[exc.reason]]  # type: ignore[assignment]
        return render_template("status/start.html", form=form), 422
    db, config = get_session(), current_app.config
    check_first = sms_guard.challenge_needed(phone, poster=None)  # B5: the human check, then the code
    if not check_first:
        try:
            _reserve_send(phone)
        except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
            message, code_status = _refusal(exc)
            return render_template("status/start.html", form=form, message=message), code_status
    try:
        check, code = status.start(
            db,
            phone,
            pii=current_app.extensions["pii"],
            locale=_short_locale(),
            gateway=_gateway(),
            key=config["SECRET_KEY"],
            now=utcnow(),
            ttl=config["CODE_TTL_SECONDS"],
            with_code=not check_first,
        )
    except status.TooManyChecks:
        return render_template("status/start.html", form=form, message=LIMIT_MESSAGE), 429
    if check_first:
        return _to_human_check(check)
    db.commit()
    session[SESSION_KEY] = check.id
    _deliver(check, phone, code)
    return redirect(url_for("status.code"), 303)


def _to_human_check(check: StatusCheck):  # type: ignore[no-untyped-def]
    get_session().commit()  # the check without its code, and any alert just raised
    session[SESSION_KEY] = check.id
    session[PENDING] = check.id
    return redirect(url_for("status.human_check"), 303)


def _pending(lock: bool = False) -> StatusCheck | Response:
    """The check whose code waits for the human check, or where the worker should be instead."""
    check = _check(lock=lock)
    if check.verified_at is not None:
        return redirect(url_for("status.me"), 303)
    if session.get(PENDING) != check.id:
        return redirect(url_for("status.code"), 303)
    return check


@bp.get("/check")
def human_check():  # type: ignore[no-untyped-def]
    check = _pending()
    if not isinstance(check, StatusCheck):
        return check
    return challenge.render_check(check.id, challenge.ChallengeForm(), **CHECK_PAGES)


@bp.post("/check")
def answer_check():  # type: ignore[no-untyped-def]
    check = _pending(lock=True)
    if not isinstance(check, StatusCheck):
        return check
    form = challenge.ChallengeForm()
    if not form.validate():
        return challenge.render_check(check.id, form, 422, **CHECK_PAGES)
    failure = challenge.judge(check.id, form.answer.data or "", **CHECK_PAGES)
    if failure is not None:
        return failure
    session.pop(PENDING, None)
    phone, config, db = current_app.extensions["pii"].decrypt(check.phone_enc), current_app.config, get_session()
    try:
        _reserve_send(phone)
    except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
        message, code_status = _refusal(exc)
        db.commit()
        return _render_code(check, CodeForm(), code_status, message)
    code = status.issue(
        db, check, gateway=_gateway(), key=config["SECRET_KEY"], now=utcnow(), ttl=config["CODE_TTL_SECONDS"]
    )
    db.commit()
    _deliver(check, phone, code)
    return redirect(url_for("status.code"), 303)


def _deliver(check: StatusCheck, phone: str, code: str | None) -> None:
    try:
        verification.deliver(_gateway(), to=phone, code=code, locale=check.locale)
        session.pop("status_sms_error", None)
    except SmsError as exc:
        log.warning("status code for check %s not sent: %s", check.id[:8], exc.kind)
        session["status_sms_error"] = exc.kind


def _check(lock: bool = False) -> StatusCheck:
    check_id = session.get(SESSION_KEY)
    check = get_session().get(StatusCheck, check_id, with_for_update=lock) if check_id else None
    if check is None:
        abort(404)
    return check


@bp.get("/code")
def code():  # type: ignore[no-untyped-def]
    check = _check()
    if check.verified_at is not None:
        return redirect(url_for("status.me"), 303)
    if check.sends == 0 and session.get(PENDING) == check.id:  # no code yet: the human check first
        return redirect(url_for("status.human_check"), 303)
    return _render_code(check, CodeForm())


def _render_code(check: StatusCheck, form: CodeForm, status_code: int = 200, message: str | None = None):  # type: ignore[no-untyped-def]
    wait = verification.resend_wait(
        check,
        now=utcnow(),  # type: ignore[arg-type]
        cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"],
    )
    sms_error = session.get("status_sms_error")
    notice = message or (str(SMS_MESSAGES[sms_error]) if sms_error in SMS_MESSAGES else None)
    phone = masked(current_app.extensions["pii"].decrypt(check.phone_enc))
    body = render_template("status/code.html", form=form, resend=EmptyForm(), wait=wait, message=notice, phone=phone)
    return body, status_code


@bp.post("/code")
def check_code():  # type: ignore[no-untyped-def]
    check = _check(lock=True)
    if check.verified_at is not None:
        return redirect(url_for("status.me"), 303)
    form = CodeForm()
    if not form.validate():
        return _render_code(check, form, 422)
    message = _judge(check, form.code.data or "")
    get_session().commit()  # the try counts, right or wrong
    if message is not None:
        return _render_code(check, form, 422, message)
    sms_guard.note_verified(check)
    return redirect(url_for("status.me"), 303)


def _judge(check: StatusCheck, code: str) -> str | None:
    config, pii = current_app.config, current_app.extensions["pii"]
    try:
        status.check_code(
            get_session(),
            check,
            code,
            guard=_guard(),
            phone=pii.decrypt(check.phone_enc),
            gateway=_gateway(),
            key=config["SECRET_KEY"],
            now=utcnow(),
            max_tries=config["CODE_MAX_TRIES"],
        )
    except limits.CheckDelayed as exc:
        return _("Please wait %(n)d seconds before trying another code.", n=exc.retry_after)
    except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
        return _refusal(exc)[0]
    except verification.CodeWrong as exc:
        return _("That code is not right. You have %(n)d tries left.", n=exc.tries_left)
    except verification.CodeLocked:
        return _("Too many wrong codes. Ask for a new code.")
    except verification.CodeExpired:
        return _("This code has expired. Ask for a new code.")
    except SmsError as exc:
        return str(SMS_MESSAGES.get(exc.kind, SMS_MESSAGES["unavailable"]))
    return None


@bp.post("/resend")
def resend():  # type: ignore[no-untyped-def]
    old = _check(lock=True)
    if not EmptyForm().validate():
        abort(400)
    config, db, now = current_app.config, get_session(), utcnow()
    wait = verification.resend_wait(old, now=now, cooldown=config["RESEND_COOLDOWN_SECONDS"])  # type: ignore[arg-type]
    if wait:
        msg = _("Please wait %(n)d seconds before asking for a new code.", n=wait)
        return _render_code(old, CodeForm(), 429, msg)
    pii = current_app.extensions["pii"]
    check_first = sms_guard.challenge_needed(pii.decrypt(old.phone_enc), poster=None)
    if not check_first:
        try:
            _reserve_send(pii.decrypt(old.phone_enc))
        except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
            message, code_status = _refusal(exc)
            return _render_code(old, CodeForm(), code_status, message)
    try:
        check, code = status.resend(
            db,
            old,
            pii=pii,
            gateway=_gateway(),
            key=config["SECRET_KEY"],
            now=now,
            ttl=config["CODE_TTL_SECONDS"],
            with_code=not check_first,
        )
    except status.TooManyChecks:
        return _render_code(old, CodeForm(), 429, str(LIMIT_MESSAGE))
    if check_first:
        return _to_human_check(check)
    db.commit()
    session[SESSION_KEY] = check.id
    _deliver(check, pii.decrypt(check.phone_enc), code)
    return redirect(url_for("status.code"), 303)


def _verified() -> StatusCheck:
    try:
        return status.verified(get_session(), session.get(SESSION_KEY), now=utcnow())
    except status.CheckNotVerified:
        abort(404)


@bp.get("/me")
def me() -> str:
    check = _verified()
    db = get_session()
    member = status.member_of(db, check)
    district = db.get(District, member.district_id) if member else None
    return render_template(
        "status/me.html", member=member, district=district, form=WithdrawForm(), platforms=PLATFORM_LABELS
    )


@bp.post("/withdraw")
def withdraw():  # type: ignore[no-untyped-def]
    check = _verified()
    form = WithdrawForm()
    if not form.validate():
        db = get_session()
        member = status.member_of(db, check)
        district = db.get(District, member.district_id) if member else None
        return render_template(
            "status/me.html", member=member, district=district, form=form, platforms=PLATFORM_LABELS
        ), 422
    db = get_session()
    status.withdraw(db, check)
    db.commit()
    session.pop(SESSION_KEY, None)
    session.pop("attempt", None)
    return redirect(url_for("status.withdrawn"), 303)


@bp.get("/withdrawn")
def withdrawn() -> str:
    return render_template("status/withdrawn.html")


def _short_locale() -> str:
    return "en" if str(get_locale()).startswith("en") else "zh"
