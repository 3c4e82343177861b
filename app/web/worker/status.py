"""The worker's status page (linked from the decision SMS): phone → SMS code → status; withdraw.

Any valid number gets a code, so nothing is revealed before the phone is proven. Tries and
sends are counted in the `status_check` row; the cookie only names the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.db import get_session
from app.models import District, StatusCheck, utcnow
from app.services import lifecycle, phone_proof, status
from app.web.worker import challenge, flow, standing
from app.web.worker.forms import AnswerForm, AppealForm, ChallengeForm, CodeForm, EmptyForm, PhoneForm, WithdrawForm
from app.web.worker.messages import PLATFORM_LABELS

log = logging.getLogger(__name__)
bp = Blueprint("status", __name__, url_prefix="/status")
SESSION_KEY = "status_check"
PENDING = "status_check_for"  # session: the check whose code waits for the human check
CHECK_PAGES: challenge.CheckPages = {
    "answer": "status.answer_check",
    "again": "status.human_check",
}  # its picture's endpoints
CODE_PAGE = "worker/code.html"  # the code step of both flows
LIMIT_MESSAGE = _l("Too many codes were asked for this number today. Please try again tomorrow.")


@bp.get("/")
def start() -> str:
    return render_template("status/start.html", form=PhoneForm())


@bp.post("/")
def send():  # type: ignore[no-untyped-def]
    form = PhoneForm()
    if not form.validate():
        return _start_page(form), 422
    phone = flow.validated_phone(form.phone)
    if phone is None:
        return _start_page(form), 422
    try:
        pii, locale = current_app.extensions["pii"], flow.short_locale()
        return _new_check(phone, lambda: status.start(get_session(), phone, pii=pii, locale=locale, now=utcnow())[0])
    except phone_proof.Refused as exc:
        return _start_page(form, flow.refusal_message(exc)), exc.status
    except status.TooManyChecks:
        return _start_page(form, str(LIMIT_MESSAGE)), 429


def _start_page(form: PhoneForm, message: str | None = None) -> str:
    # Answering a post: the language switch goes back to this step's GET.
    return render_template("status/start.html", form=form, message=message, lang_next=url_for("status.start"))


def _new_check(phone: str, make: Callable[[], StatusCheck]):  # type: ignore[no-untyped-def]
    """A new check row for `phone`: the human check first if needed (B5), else the send counted
    against every limit (raises phone_proof.Refused) and the code sent after the commit."""
    db = get_session()
    check_first = flow.proof().challenge_needed(db, phone, ip=flow.client_ip(), poster=None)
    if not check_first:
        flow.proof().reserve(db, phone, ip=flow.client_ip())
    check = make()  # a row without its code yet
    if check_first:
        db.commit()  # the check without its code, and any alert just raised
        session[SESSION_KEY] = check.id
        session[PENDING] = check.id
        return redirect(url_for("status.human_check"), 303)
    return _send_code(check, phone)


def _send_code(check: StatusCheck, phone: str):  # type: ignore[no-untyped-def]
    """A code on `check`, sent by the consumer after the commit; a failed send is shown on the code page."""
    db = get_session()
    flow.proof().issue(db, check, phone, flow="status")
    db.commit()
    session[SESSION_KEY] = check.id
    return redirect(url_for("status.code"), 303)


def _pending(lock: bool = False) -> StatusCheck | Response:
    return flow.waiting_for_check(_check(lock=lock), PENDING, done="status.me", code="status.code")


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
    failure = challenge.answered(check.id, **CHECK_PAGES)
    if failure is not None:
        return failure
    session.pop(PENDING, None)
    phone, db = current_app.extensions["pii"].decrypt(check.phone_enc), get_session()
    try:
        flow.proof().reserve(db, phone, ip=flow.client_ip())
    except phone_proof.Refused as exc:
        db.commit()
        return _code_page(check, CodeForm(), flow.refused(exc))
    return _send_code(check, phone)


def _check(lock: bool = False) -> StatusCheck:
    return flow.owner_from_session(StatusCheck, SESSION_KEY, lock)


def _code_page(check: StatusCheck, form: CodeForm, verdict: flow.Verdict | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    return flow.render_code(CODE_PAGE, check, form, verdict, status=status, send_error=check.send_error)


PAGES = flow.CodePages(_check, PENDING, "status.me", "status.human_check", _code_page, "status.code")


@bp.post("/code")
def check_code():  # type: ignore[no-untyped-def]
    check, form, verdict, answer = flow.take_code(PAGES)
    if answer is not None:
        return answer
    get_session().commit()  # the try counts, right or wrong
    if verdict is not None:  # every refused code: a 303 to the code page, which shows its words
        return flow.code_refused(PAGES, flow.Verdict(verdict.message))
    flow.proof().note_verified(check, ip=flow.client_ip())
    return redirect(url_for("status.me"), 303)


@bp.get("/code")
def code():  # type: ignore[no-untyped-def]
    return flow.show_code(PAGES)


@bp.post("/resend")
def resend():  # type: ignore[no-untyped-def]
    old = _check(lock=True)
    if not EmptyForm().validate():
        abort(400)
    wait = flow.resend_wait(old)
    if wait:  # post/redirect/get: a reload never posts the resend again
        return flow.code_refused(PAGES, flow.too_soon(wait))
    pii = current_app.extensions["pii"]

    def make() -> StatusCheck:
        return status.resend(get_session(), old, pii=pii, now=utcnow(), with_code=False)[0]

    try:
        return _new_check(pii.decrypt(old.phone_enc), make)
    except phone_proof.Refused as exc:
        return flow.code_refused(PAGES, flow.refused(exc))
    except status.TooManyChecks:
        return flow.code_refused(PAGES, flow.Verdict(str(LIMIT_MESSAGE), 429, not_sent=True))


def _verified() -> StatusCheck:
    try:
        return status.verified(get_session(), session.get(SESSION_KEY), now=utcnow())
    except status.CheckNotVerified:
        abort(404)


def _me_page(check: StatusCheck, form: WithdrawForm, code: int = 200, **forms: Any):  # type: ignore[no-untyped-def]
    db = get_session()
    member = status.member_of(db, check)
    district = db.get(District, member.district_id) if member else None
    extras = standing.extras(db, member, **forms)
    page = render_template(
        "status/me.html",
        member=member,
        district=district,
        form=form,
        platforms=PLATFORM_LABELS,
        lang_next=url_for("status.me"),
        **extras,
    )
    return page, code


@bp.get("/me")
def me():  # type: ignore[no-untyped-def]
    return _me_page(_verified(), WithdrawForm())


@bp.post("/answer")
def answer():  # type: ignore[no-untyped-def]
    """The applicant answers an official's question: the application is back with the district."""
    check, form = _verified(), AnswerForm()
    db = get_session()
    member = status.member_of(db, check)
    if member is None or not form.validate():
        return _me_page(check, WithdrawForm(), 422, answer=form)
    try:
        lifecycle.answer(db, member, text=form.text.data or "", pii=current_app.extensions["pii"], now=utcnow())
    except (lifecycle.NoOpenQuestion, lifecycle.TextInvalid):
        return _me_page(check, WithdrawForm(), 409, answer=form)
    db.commit()
    flash(_("Thank you: your answer was sent to the union."))
    return redirect(url_for("status.me"), 303)


@bp.post("/appeal")
def appeal():  # type: ignore[no-untyped-def]
    """A rejected applicant's one appeal: to the federation's escalation queue."""
    check, form = _verified(), AppealForm()
    db = get_session()
    member = status.member_of(db, check)
    if member is None or not form.validate():
        return _me_page(check, WithdrawForm(), 422, appeal=form)
    try:
        lifecycle.appeal(db, member, text=form.text.data or "", pii=current_app.extensions["pii"], now=utcnow())
    except (lifecycle.AppealRefused, lifecycle.TextInvalid):
        db.rollback()
        return _me_page(check, WithdrawForm(), 409, appeal=form)
    db.commit()
    flash(_("Your appeal was sent. The federation will review it."))
    return redirect(url_for("status.me"), 303)


@bp.post("/withdraw")
def withdraw():  # type: ignore[no-untyped-def]
    check = _verified()
    form = WithdrawForm()
    if not form.validate():
        return _me_page(check, form, 422)
    db = get_session()
    status.withdraw(db, check)
    db.commit()
    session.pop(SESSION_KEY, None)
    session.pop("attempt", None)
    return redirect(url_for("status.withdrawn"), 303)


@bp.get("/withdrawn")
def withdrawn() -> str:
    return render_template("status/withdrawn.html")
