"""The worker's path: scan → form → SMS code → pending application. Works without JavaScript.

Each view parses, calls a service (membership, app/services/phone_proof.py), commits, and
redirects; the code goes out after the commit (app/services/events.py). See __init__.py.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from app.db import get_session
from app.models import District, JoinAttempt, Member, Platform, utcnow
from app.services import events, limits, membership, phone_proof, places, transfers
from app.web.errors import render_error
from app.web.worker import flow, poster
from app.web.worker.flow import Verdict
from app.web.worker.forms import CodeForm, EmptyForm, JoinForm

log = logging.getLogger(__name__)
bp = Blueprint("join", __name__)
PENDING = "challenge_for"  # session: the attempt whose next send waits for the human check
POSTER = "poster"  # session: the poster the attempt came through (its outstanding codes)
POSTER_URL = "poster_token"  # session: that poster's token, for "wrong number? change it" (names a place, no one)
CODE_PAGE = "worker/code.html"  # the code step of both flows
CALLING = "calling"  # session: the attempt whose code a voice call is reading out


@bp.get("/<qrtoken:token>")
def scan(token: str):  # type: ignore[no-untyped-def]
    return poster.scan_page(token)


@bp.post("/<qrtoken:token>")
def submit(token: str):  # type: ignore[no-untyped-def]
    place = poster.resolve(token)
    form = JoinForm()
    poster.prepare(form, place)
    valid = form.validate()
    phone = flow.validated_phone(form.phone)
    if not valid or phone is None or not form.form_key.data:
        return poster.render_form(form, place, token, 422)
    applicant = membership.Applicant(
        name=(form.name.data or "").strip(),
        phone=phone,
        platform=Platform(form.platform.data),
        workplace_id=None if form.workplace.data == poster.NO_WORKPLACE else int(form.workplace.data),
        locale=flow.short_locale(),
        consent_version=membership.consent_version(poster.sms_consent()[0]),
    )
    return _start(place, applicant, form, token)


def _start(place: places.ResolvedPlace, applicant: membership.Applicant, form: JoinForm, token: str):  # type: ignore[no-untyped-def]
    db, now = get_session(), utcnow()
    session[POSTER_URL] = token
    try:
        attempt, created = membership.start_attempt(
            db, place, applicant, form_key=form.form_key.data or "", pii=current_app.extensions["pii"], now=now
        )
    except membership.AttemptMismatch:
        # The same idempotency key with another payload (docs/security.md G4: 422).
        form.form_key.data = secrets.token_urlsafe(16)
        form.form_key.errors = [_("This form was already sent with another number. Please send it again.")]
        return poster.render_form(form, place, token, 422)
    if not created:  # a double tap or a retry: the first draft, no second SMS
        session["attempt"] = attempt.id
        return redirect(url_for("join.code"), 303)
    try:
        flow.proof().limits.reserve_join_start(limits.poster_key(token))
    except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
        db.rollback()
        refused = phone_proof.refusal(exc)
        message = flow.refusal_message(refused) if refused.status == 429 else None
        return render_error(refused.status, message, retry_after=refused.retry_after)
    poster.count_place(place, "forms")
    return send_code(attempt, applicant.phone, poster=limits.poster_key(token))


def send_code(  # type: ignore[no-untyped-def]
    attempt: JoinAttempt, phone: str, *, poster: str | None = None, checked: bool = False, resending: bool = False
):
    """The human check first if needed (B5), else a code, sent after the commit; a refused send
    keeps the draft and shows the code page. `checked`: the human check was just passed;
    `resending`: the "send a new code" button, whose refusal is a 303 to the code page (a reload
    never posts it again; the form's own post is harmless to repeat: its key names one draft)."""
    db = get_session()
    if session.get("attempt") != attempt.id:
        session.pop(POSTER, None)
    session["attempt"] = attempt.id
    if poster:  # the resend and the human check's send count against the same poster
        session[POSTER] = poster
    poster = session.get(POSTER)
    try:
        if checked:
            flow.proof().reserve(db, phone, ip=flow.client_ip(), owner=attempt, poster=poster)
            flow.proof().issue(db, attempt, phone, flow="join")
        else:
            flow.proof().send(db, attempt, phone, flow="join", ip=flow.client_ip(), poster=poster)
    except phone_proof.NeedsHumanCheck:
        db.commit()  # the draft, and any alert just raised
        session[PENDING] = attempt.id
        return redirect(url_for("challenge.show"), 303)
    except phone_proof.Refused as refused:
        db.commit()
        if resending:
            return flow.code_refused(PAGES, flow.refused(refused))
        return _code_page(attempt, CodeForm(), flow.refused(refused))
    db.commit()  # the code goes out after the commit (app/services/events.py)
    return redirect(url_for("join.code"), 303)


def current_attempt(lock: bool = False) -> JoinAttempt:
    return flow.owner_from_session(JoinAttempt, "attempt", lock)


def _code_page(attempt: JoinAttempt, form: CodeForm, verdict: Verdict | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    return flow.render_code(
        CODE_PAGE,
        attempt,
        form,
        verdict,
        status=status,
        send_error=attempt.send_error,
        voice=flow.proof().voice_offered(attempt),
        calling=session.get(CALLING) == attempt.id and not attempt.send_error,
    )


PAGES = flow.CodePages(current_attempt, PENDING, "join.done", "challenge.show", _code_page, "join.code")


@bp.get("/join/code")
def code():  # type: ignore[no-untyped-def]
    return flow.show_code(PAGES)


@bp.post("/join/code")
def check_code():  # type: ignore[no-untyped-def]
    attempt, form, verdict, answer = flow.take_code(PAGES)
    if answer is not None:
        return answer
    db, pii = get_session(), current_app.extensions["pii"]
    if verdict is None:
        enrollment = membership.enroll(db, attempt, pii=pii, now=utcnow())
        member = enrollment.member
        events.record(db, events.ApplicationSubmitted(member.id or 0, member.district_id, enrollment.outcome))
        poster.count_attempt(attempt, "verified")
        if enrollment.outcome in ("created", "reapplied"):
            poster.count_attempt(attempt, "joins")
    db.add(attempt)
    db.commit()  # a wrong try counted on the attempt stays counted
    if verdict is not None:  # post/redirect/get: the code page shows the words once
        return flow.code_refused(PAGES, verdict)
    flow.proof().note_verified(attempt, ip=flow.client_ip(), poster=session.get(POSTER))
    return redirect(url_for("join.done"), 303)


@bp.post("/join/resend")
def resend():  # type: ignore[no-untyped-def]
    attempt = current_attempt(lock=True)
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    if not EmptyForm().validate():
        abort(400)
    wait = flow.resend_wait(attempt)
    if wait:  # post/redirect/get: a reload never posts the resend again
        return flow.code_refused(PAGES, flow.too_soon(wait))
    return send_code(attempt, current_app.extensions["pii"].decrypt(attempt.phone_enc), resending=True)


@bp.get("/join/change")
def change():  # type: ignore[no-untyped-def]
    """The join form again, filled from the draft the session names (kept server-side, nothing in
    the URL) with the phone to type anew; sending it makes a new draft, and a new code goes out."""
    attempt = current_attempt()
    token = session.get(POSTER_URL)
    if attempt.verified_at is not None or not isinstance(token, str):
        return redirect(url_for("join.done" if attempt.verified_at else "join.code"), 303)
    place = poster.resolve(token)
    form = JoinForm(formdata=None)
    poster.prepare(form, place)
    poster.fill_from(form, attempt, current_app.extensions["pii"].decrypt(attempt.name_enc))
    return poster.render_form(form, place, token, changing=True)


@bp.post("/join/voice")
def voice():  # type: ignore[no-untyped-def]
    """The same code read out in a call, after a failed or slow SMS; counted as a resend."""
    attempt = current_attempt(lock=True)
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    if not EmptyForm().validate():
        abort(400)
    db, phone = get_session(), current_app.extensions["pii"].decrypt(attempt.phone_enc)
    poster_key = session.get(POSTER)
    if flow.proof().challenge_needed(db, phone, ip=flow.client_ip(), poster=poster_key):
        db.commit()  # any alert just raised; after the check a new code goes by SMS
        session[PENDING] = attempt.id
        return redirect(url_for("challenge.show"), 303)
    try:
        flow.proof().call(db, attempt, phone, flow="join", ip=flow.client_ip(), poster=poster_key)
    except phone_proof.NotOffered:
        db.rollback()
        return _code_page(
            attempt, CodeForm(), flow.Verdict(_("A voice call is not available now."), 409, not_sent=True)
        )
    except phone_proof.Refused as refused:
        db.commit()
        return _code_page(attempt, CodeForm(), flow.refused(refused))
    db.commit()  # the call is placed after the commit (app/services/tasks.py)
    session[CALLING] = attempt.id
    return redirect(url_for("join.code"), 303)


@bp.get("/join/done")
def done() -> ResponseReturnValue:
    attempt = current_attempt()
    if attempt.verified_at is None:
        abort(404)
    db = get_session()
    if transfers.worker_offer(db, attempt) is not None:  # a member of another district: offer the move
        return redirect(url_for("transfer.offer"), 303)
    member = db.get(Member, attempt.member_id) if attempt.member_id else None
    district = db.get(District, member.district_id if member else attempt.district_id)
    return render_template("join/done.html", outcome=attempt.outcome, member=member, district=district)
