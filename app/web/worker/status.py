"""The worker's status page (linked from the decision SMS): phone → SMS code → status; withdraw.

Any valid number gets a code, so nothing is revealed before the phone is proven. Tries and
sends are counted in the `status_check` row; the cookie only names the row.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.db import get_session
from app.models import District, StatusCheck, utcnow
from app.services import events, limits, phone_proof, status, verification
from app.services.phones import PhoneInvalid, masked, normalize
from app.services.sms import SmsError
from app.web.worker import challenge, flow
from app.web.worker.forms import ChallengeForm, CodeForm, EmptyForm, PhoneForm, WithdrawForm
from app.web.worker.messages import PHONE_MESSAGES, PLATFORM_LABELS, SMS_MESSAGES, send_failure

log = logging.getLogger(__name__)
bp = Blueprint("status", __name__, url_prefix="/status")
SESSION_KEY = "status_check"
PENDING = "status_check_for"  # session: the check whose code waits for the human check
CHECK_PAGES = {"answer": "status.answer_check", "again": "status.human_check"}  # its picture's endpoints
LIMIT_MESSAGE = _l("Too many codes were asked for this number today. Please try again tomorrow.")


def _gateway():  # type: ignore[no-untyped-def]
    return current_app.extensions["sms"]


def _refusal(exc: Exception) -> tuple[str, int]:
    """The message and status for a limit that stopped a send or a check (fail closed: 503)."""
    if not isinstance(exc, phone_proof.Refused):
        exc = phone_proof.refusal(exc)  # type: ignore[arg-type]
    return flow.refusal_message(exc), exc.status


def _reserve_send(phone: str) -> None:
    """Count one SMS against the per-phone, per-prefix, per-IP and global limits (raises Refused)."""
    flow.proof().reserve(get_session(), phone, ip=flow.client_ip())


def _challenge_needed(phone: str) -> bool:
    return flow.proof().challenge_needed(get_session(), phone, ip=flow.client_ip(), poster=None)


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
    check_first = _challenge_needed(phone)  # B5: the human check, then the code
    if not check_first:
        try:
            _reserve_send(phone)
        except phone_proof.Refused as exc:
            message, code_status = _refusal(exc)
            return render_template("status/start.html", form=form, message=message), code_status
    try:
        check, _code = status.start(
            db,
            phone,
            pii=current_app.extensions["pii"],
            locale=flow.short_locale(),
            gateway=_gateway(),
            key=config["SECRET_KEY"],
            now=utcnow(),
            ttl=config["CODE_TTL_SECONDS"],
            with_code=False,
        )
    except status.TooManyChecks:
        return render_template("status/start.html", form=form, message=LIMIT_MESSAGE), 429
    if check_first:
        return _to_human_check(check)
    return _send_code(check, phone)


def _send_code(check: StatusCheck, phone: str):  # type: ignore[no-untyped-def]
    """A code on `check`, sent after the commit; a failed send is shown on the code page."""
    db = get_session()
    flow.proof().issue(db, check, phone, flow="status")
    db.commit()
    session[SESSION_KEY] = check.id
    failed = [kind for kind in events.outcomes(db, events.CodeRequested) if kind]
    if failed:
        session["status_sms_error"] = failed[0]
    else:
        session.pop("status_sms_error", None)
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
    return challenge.render_check(check.id, ChallengeForm(), **CHECK_PAGES)


@bp.post("/check")
def answer_check():  # type: ignore[no-untyped-def]
    check = _pending(lock=True)
    if not isinstance(check, StatusCheck):
        return check
    form = ChallengeForm()
    if not form.validate():
        return challenge.render_check(check.id, form, 422, **CHECK_PAGES)
    failure = challenge.judge(check.id, form.answer.data or "", **CHECK_PAGES)
    if failure is not None:
        return failure
    session.pop(PENDING, None)
    phone, db = current_app.extensions["pii"].decrypt(check.phone_enc), get_session()
    try:
        _reserve_send(phone)
    except phone_proof.Refused as exc:
        message, code_status = _refusal(exc)
        db.commit()
        return _render_code(check, CodeForm(), code_status, message)
    return _send_code(check, phone)


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
        now=utcnow(),
        cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"],
    )
    sms_error = session.get("status_sms_error")
    notice = message or send_failure(sms_error)
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
    flow.proof().note_verified(check)
    return redirect(url_for("status.me"), 303)


def _judge(check: StatusCheck, code: str) -> str | None:
    config, pii = current_app.config, current_app.extensions["pii"]
    try:
        status.check_code(
            get_session(),
            check,
            code,
            guard=flow.proof().limits,
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
    wait = verification.resend_wait(old, now=now, cooldown=config["RESEND_COOLDOWN_SECONDS"])
    if wait:
        msg = _("Please wait %(n)d seconds before asking for a new code.", n=wait)
        return _render_code(old, CodeForm(), 429, msg)
    pii = current_app.extensions["pii"]
    check_first = _challenge_needed(pii.decrypt(old.phone_enc))
    if not check_first:
        try:
            _reserve_send(pii.decrypt(old.phone_enc))
        except phone_proof.Refused as exc:
            message, code_status = _refusal(exc)
            return _render_code(old, CodeForm(), code_status, message)
    try:
        check, _code = status.resend(
            db,
            old,
            pii=pii,
            gateway=_gateway(),
            key=config["SECRET_KEY"],
            now=now,
            ttl=config["CODE_TTL_SECONDS"],
            with_code=False,
        )
    except status.TooManyChecks:
        return _render_code(old, CodeForm(), 429, str(LIMIT_MESSAGE))
    if check_first:
        return _to_human_check(check)
    return _send_code(check, pii.decrypt(check.phone_enc))


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
