"""The worker's path: scan → form → SMS code → pending application. Works without JavaScript."""

from __future__ import annotations

import logging
import secrets

from flask import (
    Blueprint,
    Flask,
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
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from sqlalchemy import update
from werkzeug.routing import BaseConverter
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.fields import TelField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from app.db import get_session, read_scope, session_scope
from app.extensions import limiter
from app.models import District, JoinAttempt, Member, PlaceKind, Platform, utcnow
from app.services import limits, membership, page_cache, places, sms, verification
from app.services.phones import PhoneInvalid, masked, normalize
from app.services.sms import SmsError
from app.services.tokens import TOKEN_PATTERN
from app.web import sms_guard

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
    "opted_out": _l(
        "This number has turned off our text messages. To get codes again, reply START to any of our earlier"
        " messages, then ask for a new code."
    ),
}
LIMIT_MESSAGES = {
    "phone": _l("Too many codes were requested for this number. Please wait a while and try again."),
    "ip": _l("Too many codes were requested from this network. Please wait a while and try again."),
    "prefix": _l("Too many codes were requested for numbers like this one. Please wait a while and try again."),
    "global": _l("We cannot send more codes today. Your details are saved: please try again later."),
    "poster": _l("This poster is receiving too many sign-ups right now. Please try again later."),
    "attempt": _l(
        "You have had the most codes allowed for this form. Wait for the SMS, or fill in the form again later."
    ),
    "locked": _l("Too many wrong codes for this number. Please try again tomorrow."),
}
NO_WORKPLACE = "none"


class QrTokenConverter(BaseConverter):
    """A 21-character base32 token, in either case (people type the printed URL)."""

    regex = TOKEN_PATTERN


class JoinForm(FlaskForm):
    form_key = HiddenField()
    name = StringField(
        _l("Your name"),
        validators=[
            DataRequired(message=_l("Please enter your name.")),
            Length(max=50, message=_l("Please use at most 50 characters.")),
        ],
    )
    phone = TelField(_l("Mobile phone"))
    platform = SelectField(
        _l("Platform you work for"), choices=[SelectChoice(p.value, label) for p, label in PLATFORM_LABELS.items()]
    )
    workplace = SelectField(_l("Your station"), choices=[], validate_choice=True)
    consent = BooleanField(
        validators=[
            DataRequired(message=_l("Please read the notice and tick the box to continue.")),
        ]
    )


class CodeForm(FlaskForm):
    code = StringField(_l("6-digit code"), validators=[DataRequired(message=_l("Please enter the code from the SMS."))])


class EmptyForm(FlaskForm):
    """A CSRF token and nothing else (the resend button)."""


class Refused(Exception):
    """A limit stopped the request: `status`, the message to show and the Retry-After seconds."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def _limits() -> limits.Limits:
    """The app's limits on Flask-Limiter's strategy and store (shared by every worker)."""
    return limits.Limits(limiter.limiter, daily_budget=current_app.config["SMS_DAILY_BUDGET"])


def _client_ip() -> str:
    # remote_addr is the peer, or what the configured number of trusted proxies said (ProxyFix).
    return limits.ip_key(request.remote_addr)


def _refusal(exc: limits.LimitExceeded | limits.LimiterUnavailable) -> Refused:
    if isinstance(exc, limits.LimiterUnavailable):
        return Refused(503, str(SMS_MESSAGES["unavailable"]))
    scope = "locked" if isinstance(exc, limits.PhoneLocked) else exc.scope
    return Refused(429, str(LIMIT_MESSAGES.get(scope, LIMIT_MESSAGES["phone"])), exc.retry_after)


def _with_retry_after(body_and_status, retry_after: int | None):  # type: ignore[no-untyped-def]
    body, status = body_and_status
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return body, status, headers


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
        locale=_short_locale(),
    )
    return _start(place, applicant, form, token)


def _short_locale() -> str:
    # The column holds 8 characters (PostgreSQL enforces it): "zh" or "en", as the SMS needs.
    return "en" if str(get_locale()).startswith("en") else "zh"


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
        # The same idempotency key with another payload (docs/security.md G4: 422).
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
    check = sms_guard.gate(attempt, applicant.phone, poster=limits.poster_key(token))  # B5
    return check if check is not None else _send_first_code(attempt, applicant.phone)


def _send_first_code(attempt: JoinAttempt, phone: str):  # type: ignore[no-untyped-def]
    """Issue and send the first code; a refused send keeps the draft and shows the code page."""
    db = get_session()
    try:
        code = _issue(attempt, phone)
    except Refused as refused:
        db.commit()
        session["attempt"] = attempt.id
        return _refused_code_page(attempt, refused)
    db.commit()
    session["attempt"] = attempt.id
    _deliver(attempt, phone, code)
    return redirect(url_for("join.code"), 303)


def _issue(attempt: JoinAttempt, phone: str) -> str | None:
    """Count the SMS against every limit, then start a code. Raises Refused."""
    config, pii = current_app.config, current_app.extensions["pii"]
    if attempt.sends >= verification.MAX_SENDS_PER_ATTEMPT:
        raise Refused(429, str(LIMIT_MESSAGES["attempt"]))
    try:
        _limits().reserve_send(
            phone=limits.phone_key(pii, phone), prefix=limits.prefix_key(pii, phone), ip=_client_ip()
        )
        sms_guard.note_sent(phone)  # before the attempt changes: a refusal here leaves it as it was
        code = verification.issue(
            attempt,
            gateway=current_app.extensions["sms"],
            key=config["SECRET_KEY"],
            now=utcnow(),
            ttl=config["CODE_TTL_SECONDS"],
        )
    except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
        raise _refusal(exc) from None
    attempt.send_error = None  # this code's send reports for itself
    get_session().add(attempt)
    return code


def _deliver(attempt: JoinAttempt, phone: str, code: str | None) -> None:
    """Send the code after the commit, on the sender's thread (app/services/sender.py): the
    request answers at once. A failure is written to the attempt, which the code page shows."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    current_app.extensions["sender"].submit(send_code, app, attempt.id, phone, code, attempt.locale)


def send_code(app: Flask, attempt_id: str, phone: str, code: str | None, locale: str) -> None:
    """One code to one phone; on failure the draft is kept and the reason stored on it."""
    with app.app_context():
        try:
            verification.deliver(app.extensions["sms"], to=phone, code=code, locale=locale)
        except SmsError as exc:
            log.warning("code for attempt %s not sent: %s", attempt_id[:8], exc.kind)
            with session_scope() as db:
                db.execute(
                    update(JoinAttempt)
                    .where(JoinAttempt.id == attempt_id)  # type: ignore[arg-type]
                    .values(send_error=exc.kind)
                )
                if exc.kind == "opted_out":  # remember it, so no unasked-for text goes to this phone
                    sms.record_opt_out(db, app.extensions["pii"], phone, utcnow())


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
    if attempt.sends == 0 and session.get(sms_guard.PENDING) == attempt.id:  # no code yet: the check first
        return redirect(url_for("challenge.show"), 303)
    return _render_code(attempt, CodeForm())


def _render_code(attempt: JoinAttempt, form: CodeForm, status: int = 200, message: str | None = None):  # type: ignore[no-untyped-def]
    pii = current_app.extensions["pii"]
    wait = verification.resend_wait(attempt, now=utcnow(), cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"])
    sms_error = attempt.send_error
    notice = message or (str(SMS_MESSAGES[sms_error]) if sms_error in SMS_MESSAGES else None)
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
    attempt = _current_attempt(lock=True)
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
    sms_guard.note_verified(attempt)
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
    attempt = _current_attempt(lock=True)
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
    check = sms_guard.gate(attempt, phone)
    if check is not None:
        return check
    try:
        code = _issue(attempt, phone)
    except Refused as refused:
        return _refused_code_page(attempt, refused)
    get_session().commit()
    _deliver(attempt, phone, code)
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
