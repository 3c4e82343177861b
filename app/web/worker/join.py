"""The worker's path: scan → form → SMS code → pending application. Works without JavaScript."""

from __future__ import annotations

import logging
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from werkzeug.routing import BaseConverter
from wtforms.fields.choices import SelectChoice

from app.db import get_session, read_scope
from app.models import District, JoinAttempt, Member, PlaceKind, Platform, utcnow
from app.services import limits, membership, page_cache, phone_proof, places, verification
from app.services.phones import PhoneInvalid, masked, normalize
from app.services.sms import SmsError
from app.services.tokens import TOKEN_PATTERN
from app.web.worker import flow
from app.web.worker.forms import CodeForm, EmptyForm, JoinForm
from app.web.worker.messages import LIMIT_MESSAGES, PHONE_MESSAGES, SMS_MESSAGES, send_failure

log = logging.getLogger(__name__)
bp = Blueprint("join", __name__)
PENDING = "challenge_for"  # session: the attempt whose next send waits for the human check

NO_WORKPLACE = "none"


class QrTokenConverter(BaseConverter):
    """A 21-character base32 token, in either case (people type the printed URL)."""

    regex = TOKEN_PATTERN


class Refused(Exception):
    """A limit stopped the request: `status`, the message to show and the Retry-After seconds."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def _limits() -> limits.Limits:
    return flow.proof().limits


def _client_ip() -> str:
    return flow.client_ip()


def _refusal(exc: limits.LimitExceeded | limits.LimiterUnavailable | phone_proof.Refused) -> Refused:
    refused = exc if isinstance(exc, phone_proof.Refused) else phone_proof.refusal(exc)
    return Refused(refused.status, flow.refusal_message(refused), refused.retry_after)


_with_retry_after = flow.with_retry_after


def _resolve(token: str, checked: bool = False) -> places.ResolvedPlace:
    """The place a token names, or a 404/410/429 page; `checked`: the address was checked already."""
    if not checked:
        _refuse_blocked_address()
    signer = current_app.extensions["qr_signer"]
    try:
        # Read apart from the request's session: a POST's session writes, and on SQLite its
        # first statement takes the write lock, which the checks before the insert need not hold.
        with read_scope() as db:
            return places.resolve(db, signer, token, utcnow().date())
    except places.PlaceNotFound:
        _note_bad_token(_limits(), _client_ip())
        abort(404)
    except places.PlaceReplaced:
        abort(410)


def _refuse_blocked_address() -> None:
    """429 for an address that tried too many bad tokens (it is the address that is blocked)."""
    wait = _bad_token_wait(_limits(), _client_ip())
    if wait:
        from app.web.errors import render_error

        abort(make_response(_with_retry_after(render_error(429), wait)))


def _bad_token_wait(guard: limits.Limits, ip: str) -> int:
    # Reading a poster costs nothing: when the store is down the page still opens (fail open).
    try:
        return guard.bad_tokens_blocked(ip)
    except limits.LimiterUnavailable:
        return 0


def _note_bad_token(guard: limits.Limits, ip: str) -> None:
    try:
        guard.note_bad_token(ip)
    except limits.LimiterUnavailable:
        pass


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


def _count(kind: PlaceKind, place_id: int, qr_version: int, step: str) -> None:
    """Add one to a funnel counter (written in a batch, off the request's path)."""
    current_app.extensions["funnel"].add(kind, place_id, qr_version, step, utcnow().date())


def _count_place(place: places.ResolvedPlace, step: str) -> None:
    _count(*_count_key(place), step)


def _count_attempt(attempt: JoinAttempt, step: str) -> None:
    source_id = attempt.workplace_id if attempt.source_kind is PlaceKind.workplace else attempt.district_id
    _count(attempt.source_kind, source_id or 0, attempt.source_qr_version, step)


@bp.get("/<qrtoken:token>")
def scan(token: str):  # type: ignore[no-untyped-def]
    cache: page_cache.PageCache = current_app.extensions["scan_pages"]
    if not cache.enabled or "_flashes" in session:
        return _scan_uncached(token)
    _refuse_blocked_address()
    # The page depends on the token, the language, the day (tokens expire by date) and the
    # path with its query (the language switch links back to it).
    key = (request.full_path, str(get_locale()), utcnow().date())
    page = cache.get(key)
    if page is None:
        generation = page_cache.generation()
        place = _resolve(token, checked=True)
        form = JoinForm()
        _prepare(form, place)
        form.csrf_token.current_token = cache.placeholders["csrf_token"]
        form.form_key.data = cache.placeholders["form_key"]
        body, _status = _render_form(form, place, token)
        page = cache.put(key, body, _count_key(place), generation)
    _count(*page.extra, "scans")
    return cache.fill(page, csrf_token=generate_csrf(), form_key=secrets.token_urlsafe(16))


def _scan_uncached(token: str):  # type: ignore[no-untyped-def]
    place = _resolve(token)
    _count_place(place, "scans")
    form = JoinForm()
    _prepare(form, place)
    return _render_form(form, place, token)


def _count_key(place: places.ResolvedPlace) -> tuple[PlaceKind, int, int]:
    source = place.workplace if place.kind is PlaceKind.workplace else place.district
    return (place.kind, source.id or 0, place.qr_version)  # type: ignore[union-attr]


def _render_form(form: JoinForm, place: places.ResolvedPlace, token: str, status: int = 200):  # type: ignore[no-untyped-def]
    body = render_template(
        "join/scan.html", form=form, place=place, token=token, consent_version=membership.CONSENT_VERSION
    )
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
        name=form.name.data.strip(),
        phone=phone,
        platform=Platform(form.platform.data),
        workplace_id=None if form.workplace.data == NO_WORKPLACE else int(form.workplace.data),
        locale=flow.short_locale(),
    )
    return _start(place, applicant, form, token)


def _validated_phone(form: JoinForm) -> str | None:
    """E.164 of an allowed region's mobile number; other regions, premium, VoIP, unallocated → None."""
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
        # The same idempotency key with another payload (SECURITY.md G4: 422).
        form.form_key.data = secrets.token_urlsafe(16)
        form.form_key.errors = [_("This form was already sent with another number. Please send it again.")]
        return _render_form(form, place, token, 422)
    if not created:  # a double tap or a retry: the first draft, no second SMS
        session["attempt"] = attempt.id
        return redirect(url_for("join.code"), 303)
    try:
        _limits().reserve_join_start(limits.poster_key(token))
    except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
        db.rollback()
        refused = _refusal(exc)
        message = LIMIT_MESSAGES["poster"] if refused.status == 429 else None
        from app.web.errors import render_error

        return _with_retry_after(render_error(refused.status, message), refused.retry_after)
    _count_place(place, "forms")
    check = _gate(attempt, applicant.phone, poster=limits.poster_key(token))  # B5
    return check if check is not None else send_first_code(attempt, applicant.phone)


def _gate(attempt: JoinAttempt, phone: str, *, poster: str | None = None):  # type: ignore[no-untyped-def]
    """None: send now. Else the draft is committed and the worker is sent to the human check."""
    if not flow.proof().challenge_needed(get_session(), phone, ip=_client_ip(), poster=poster):
        return None
    get_session().commit()  # the draft, and any alert just raised
    session["attempt"] = attempt.id
    session[PENDING] = attempt.id
    return redirect(url_for("challenge.show"), 303)


def send_first_code(attempt: JoinAttempt, phone: str):  # type: ignore[no-untyped-def]
    """Issue and send the first code; a refused send keeps the draft and shows the code page."""
    db = get_session()
    try:
        _issue(attempt, phone)
    except Refused as refused:
        db.commit()
        session["attempt"] = attempt.id
        return _refused_code_page(attempt, refused)
    db.commit()  # the code goes out after the commit (app/services/events.py)
    session["attempt"] = attempt.id
    return redirect(url_for("join.code"), 303)


def _issue(attempt: JoinAttempt, phone: str) -> None:
    """Count the SMS against every limit, then start a code (sent after the commit). Raises Refused."""
    try:
        flow.proof().reserve(get_session(), phone, ip=_client_ip(), owner=attempt)
    except phone_proof.Refused as refused:
        raise _refusal(refused) from None
    flow.proof().issue(get_session(), attempt, phone, flow="join")


def current_attempt(lock: bool = False) -> JoinAttempt:
    attempt_id = session.get("attempt")
    attempt = get_session().get(JoinAttempt, attempt_id, with_for_update=lock) if attempt_id else None
    if attempt is None:
        abort(404)
    return attempt


@bp.get("/join/code")
def code():  # type: ignore[no-untyped-def]
    attempt = current_attempt()
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    if attempt.sends == 0 and session.get(PENDING) == attempt.id:  # no code yet: the check first
        return redirect(url_for("challenge.show"), 303)
    return _render_code(attempt, CodeForm())


def _render_code(attempt: JoinAttempt, form: CodeForm, status: int = 200, message: str | None = None):  # type: ignore[no-untyped-def]
    pii = current_app.extensions["pii"]
    wait = verification.resend_wait(attempt, now=utcnow(), cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"])
    sms_error = attempt.send_error
    notice = message or send_failure(sms_error)
    body = render_template(
        "join/code.html",
        form=form,
        resend=EmptyForm(),
        wait=wait,
        message=notice,
        phone=masked(pii.decrypt(attempt.phone_enc)),
    )
    return body, status


def _refused_code_page(attempt: JoinAttempt, refused: Refused, form: CodeForm | None = None):  # type: ignore[no-untyped-def]
    page = _render_code(attempt, form or CodeForm(), refused.status, refused.message)
    return _with_retry_after(page, refused.retry_after)


@bp.post("/join/code")
def check_code():  # type: ignore[no-untyped-def]
    attempt = current_attempt(lock=True)
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    form = CodeForm()
    if not form.validate():
        return _render_code(attempt, form, 422)
    db = get_session()
    try:
        message = _check(attempt, form.code.data or "")
    except Refused as refused:
        db.add(attempt)
        db.commit()  # a wrong try already counted on the attempt stays counted
        return _refused_code_page(attempt, refused, form)
    if message is None:
        enrollment = membership.enroll(db, attempt, pii=current_app.extensions["pii"], now=utcnow())
        _count_attempt(attempt, "verified")
        if enrollment.outcome in ("created", "reapplied"):
            _count_attempt(attempt, "joins")
    db.add(attempt)
    db.commit()
    if message is not None:
        return _render_code(attempt, form, 422, message)
    flow.proof().note_verified(attempt)
    return redirect(url_for("join.done"), 303)


def _check(attempt: JoinAttempt, code: str) -> str | None:
    """None when the code is right, else the message to show. Raises Refused (429/503)."""
    config, pii = current_app.config, current_app.extensions["pii"]
    try:
        verification.check_guarded(
            attempt,
            code,
            guard=_limits(),
            phone=pii.decrypt(attempt.phone_enc),
            gateway=current_app.extensions["sms"],
            key=config["SECRET_KEY"],
            now=utcnow(),
            max_tries=config["CODE_MAX_TRIES"],
        )
    except limits.CheckDelayed as exc:
        # 422 like any refused code, with the wait; Retry-After tells clients when to come back.
        raise Refused(
            422, _("Please wait %(n)d seconds before trying another code.", n=exc.retry_after), exc.retry_after
        ) from None
    except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
        raise _refusal(exc) from None
    except verification.CodeWrong as exc:
        return _("That code is not right. You have %(n)d tries left.", n=exc.tries_left)
    except verification.CodeLocked:
        raise Refused(429, _("Too many wrong codes. Ask for a new code.")) from None
    except verification.CodeExpired:
        return _("This code has expired. Ask for a new code.")
    except SmsError as exc:
        return str(SMS_MESSAGES.get(exc.kind, SMS_MESSAGES["unavailable"]))
    return None


@bp.post("/join/resend")
def resend():  # type: ignore[no-untyped-def]
    attempt = current_attempt(lock=True)
    if attempt.verified_at is not None:
        return redirect(url_for("join.done"), 303)
    form = EmptyForm()
    if not form.validate():
        abort(400)
    wait = verification.resend_wait(attempt, now=utcnow(), cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"])
    if wait:
        message = _("Please wait %(n)d seconds before asking for a new code.", n=wait)
        return _refused_code_page(attempt, Refused(429, message, wait))
    phone = current_app.extensions["pii"].decrypt(attempt.phone_enc)
    check = _gate(attempt, phone)
    if check is not None:
        return check
    try:
        _issue(attempt, phone)
    except Refused as refused:
        return _refused_code_page(attempt, refused)
    get_session().commit()  # the code goes out after the commit
    return redirect(url_for("join.code"), 303)


@bp.get("/join/done")
def done() -> str:
    attempt = current_attempt()
    if attempt.verified_at is None:
        abort(404)
    db = get_session()
    member = db.get(Member, attempt.member_id) if attempt.member_id else None
    district = db.get(District, member.district_id if member else attempt.district_id)
    return render_template("join/done.html", outcome=attempt.outcome, member=member, district=district)
