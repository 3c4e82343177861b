"""The poster's side of the join form: the token in the URL, the place it names, the form's
choices, the funnel counters and the cached scan page."""

from __future__ import annotations

import secrets
from datetime import date

from flask import abort, current_app, make_response, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.routing import BaseConverter
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3 has it; types-WTForms 3.2 lacks it

from app.db import get_session, read_scope
from app.models import JoinAttempt, PlaceKind, utcnow
from app.services import limits, membership, page_cache, places
from app.services.sms import backends
from app.services.tokens import TOKEN_PATTERN
from app.sessions import csrf_token
from app.web.errors import render_error
from app.web.worker import flow
from app.web.worker.forms import JoinForm, please_choose

NO_WORKPLACE = "none"


class QrTokenConverter(BaseConverter):
    """A 21-character base32 token, in either case (people type the printed URL)."""

    regex = TOKEN_PATTERN


def resolve(token: str, checked: bool = False) -> places.ResolvedPlace:
    """The place a token names, or a 404/410/429 page; `checked`: the address was checked already."""
    if not checked:
        refuse_blocked_address()
    signer = current_app.extensions["qr_signer"]
    try:
        # Read apart from the request's session: a POST's session writes, and on SQLite its
        # first statement takes the write lock, which the checks before the insert need not hold.
        with read_scope() as db:
            return places.resolve(db, signer, token, utcnow().date())
    except places.PlaceNotFound:
        _note_bad_token(flow.proof().limits, flow.client_ip())
        abort(404)
    except places.PlaceReplaced:
        abort(410)


def refuse_blocked_address() -> None:
    """429 for an address that tried too many bad tokens (it is the address that is blocked)."""
    wait = _bad_token_wait(flow.proof().limits, flow.client_ip())
    if wait:
        abort(make_response(render_error(429, retry_after=wait)))


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


def sms_consent() -> tuple[tuple[str, ...], bool]:
    """The SMS providers the join notice names (the configured backend, then its fallback), and
    whether one of them sends the number abroad: then the form asks a consent of its own (PIPL
    Art. 39), apart from the consent to the membership data (Art. 29)."""
    names = (current_app.config["SMS_BACKEND"], current_app.config.get("SMS_FALLBACK_BACKEND") or "")
    return backends.providers(*names), backends.sends_abroad(*names)


def prepare(form: JoinForm, place: places.ResolvedPlace) -> None:
    if not sms_consent()[1]:
        del form.cross_border  # the number stays in mainland China: nothing to ask
    if place.workplace is None:
        workplaces = places.workplaces_of(get_session(), place.district.id or 0)
        choices = [SelectChoice(str(w.id), w.name) for w in workplaces]
        form.workplace.choices = [please_choose(), *choices, SelectChoice(NO_WORKPLACE, _("No fixed station"))]
    else:
        form.workplace.choices = [SelectChoice(str(place.workplace.id), place.workplace.name)]
        form.workplace.data = str(place.workplace.id)
    if not form.form_key.data:
        form.form_key.data = new_form_key()


def fill_from(form: JoinForm, attempt: JoinAttempt, name: str) -> None:
    """The join form as the worker sent it (the draft `attempt`), but for the phone: it is typed
    again. The consent boxes stay ticked: the same person gave them a moment ago."""
    form.name.data = name
    form.platform.data = attempt.platform.value
    if form.workplace.data is None:  # a district's poster: the station chosen, or none
        form.workplace.data = str(attempt.workplace_id) if attempt.workplace_id else NO_WORKPLACE
    form.consent.data = True
    if form.cross_border:
        form.cross_border.data = True


def count(kind: PlaceKind, place_id: int, qr_version: int, step: str) -> None:
    """Add one to a funnel counter (written in a batch, off the request's path)."""
    current_app.extensions["funnel"].add(kind, place_id, qr_version, step, utcnow().date())


def count_place(place: places.ResolvedPlace, step: str) -> None:
    count(*count_key(place), step)


def count_attempt(attempt: JoinAttempt, step: str) -> None:
    source_id = attempt.workplace_id if attempt.source_kind is PlaceKind.workplace else attempt.district_id
    count(attempt.source_kind, source_id or 0, attempt.source_qr_version, step)


def scan_page(token: str):  # type: ignore[no-untyped-def]
    """The join form of the poster `token`, from the per-process page cache when it can be."""
    cache: page_cache.PageCache = current_app.extensions["scan_pages"]
    if not cache.enabled or "_flashes" in session:
        return _scan_uncached(token)
    refuse_blocked_address()
    key = page_key(request.full_path, str(get_locale()), utcnow().date())
    page = cache.get(key)
    if page is None:
        generation = page_cache.generation()
        place = resolve(token, checked=True)
        form = JoinForm()
        prepare(form, place)
        form.csrf_token.current_token = cache.placeholders["csrf_token"]
        form.form_key.data = cache.placeholders["form_key"]
        body, _status = render_form(form, place, token)
        page = cache.put(key, body, count_key(place), generation)
    extra: tuple[PlaceKind, int, int] = page.extra  # count_key(place), stored by put() above
    count(*extra, "scans")
    return cache.fill(page, csrf_token=csrf_token(), form_key=new_form_key())


def page_key(full_path: str, locale: str, day: date) -> tuple[str, str, date]:
    """A cached page's key: the page depends on the token, the language, the day (tokens expire
    by date) and the path with its query (the language switch links back to it). `full_path` is
    Werkzeug's `request.full_path`: the path, "?", the query string (empty or not)."""
    return (full_path, locale, day)


def new_form_key() -> str:
    """The join form's idempotency key: one per page served."""
    return secrets.token_urlsafe(16)


def _scan_uncached(token: str):  # type: ignore[no-untyped-def]
    place = resolve(token)
    count_place(place, "scans")
    form = JoinForm()
    prepare(form, place)
    return render_form(form, place, token)


def count_key(place: places.ResolvedPlace) -> tuple[PlaceKind, int, int]:
    source = place.workplace if place.kind is PlaceKind.workplace else place.district
    return (place.kind, source.id or 0, place.qr_version)  # type: ignore[union-attr]


def render_form(form: JoinForm, place: places.ResolvedPlace, token: str, status: int = 200, **extra: object):  # type: ignore[no-untyped-def]
    providers, abroad = sms_consent()
    body = render_template(
        "join/scan.html",
        lang_next=url_for("join.scan", token=token),  # a form sent with errors: the language switch comes back here
        **extra,
        form=form,
        place=place,
        token=token,
        consent_version=membership.consent_version(providers),
        sms_providers=providers,
        sms_abroad=abroad,
    )
    return body, status
