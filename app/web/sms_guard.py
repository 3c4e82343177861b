"""Around every join-flow SMS: the conversion monitor (B6) and the decision to ask for the human
check (B5) first. The join views call `gate` before a send, `note_sent` once a send is counted
and `note_verified` after a right code; the check itself is the `challenge` blueprint.
"""

from __future__ import annotations

from flask import current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response

from app.db import get_session
from app.extensions import limiter
from app.models import JoinAttempt, StatusCheck
from app.services import conversion, limits

PENDING = "challenge_for"  # session: the attempt whose next send waits for the human check


def guard() -> limits.Limits:
    return limits.Limits(limiter.limiter, daily_budget=current_app.config["SMS_DAILY_BUDGET"])


def monitor() -> conversion.Monitor:
    config = current_app.config
    thresholds = conversion.Thresholds(
        min_sends=config["CONVERSION_MIN_SENDS"],
        min_percent=config["CONVERSION_MIN_PERCENT"],
        window_seconds=config["CONVERSION_WINDOW_SECONDS"],
        grace_seconds=config["CONVERSION_GRACE_SECONDS"],
    )
    return conversion.Monitor(guard(), thresholds)


def client_ip() -> str:
    return limits.ip_key(request.remote_addr)


def gate(attempt: JoinAttempt, phone: str, *, poster: str | None = None) -> Response | None:
    """None: send now. Else the draft is committed and the worker is sent to the human check.

    A send the limits refuse anyway is let through to be refused: no picture before a "no".
    """
    if not challenge_needed(phone, poster):
        return None
    get_session().commit()  # the draft, and any alert just raised
    session["attempt"] = attempt.id
    session[PENDING] = attempt.id
    return redirect(url_for("challenge.show"), 303)


def challenge_needed(phone: str, poster: str | None) -> bool:
    """Whether the next send to `phone` must wait for the human check.

    False when the store does not answer: the send's own limits meet the same store and refuse
    it (503, fail closed), so a picture would only come before a "no".
    """
    try:
        return _challenge_needed(phone, poster)
    except limits.LimiterUnavailable:
        return False


def _challenge_needed(phone: str, poster: str | None) -> bool:
    pii, ip, percent = current_app.extensions["pii"], client_ip(), current_app.config["CHALLENGE_NEAR_LIMIT_PERCENT"]
    prefix, checks, watch = limits.prefix_key(pii, phone), guard(), monitor()
    low = watch.low(prefix)
    if not low and (percent >= 100 or not checks.near_budget(ip=ip, poster=poster, percent=percent)):
        return False  # the usual case: a few reads, nothing written
    if checks.send_refused(phone=limits.phone_key(pii, phone), prefix=prefix, ip=ip):
        return False
    watch.raise_alerts(get_session(), low)  # usually raised already by note_sent; committed by gate
    return True


def note_sent(phone: str) -> None:
    """Count a code about to be sent (overall and for its prefix); alert if conversion is now low."""
    prefix = limits.prefix_key(current_app.extensions["pii"], phone)
    watch = monitor()
    watch.note_sent(prefix)
    watch.raise_alerts(get_session(), watch.low(prefix))


def note_verified(proven: JoinAttempt | StatusCheck) -> None:
    """Count a right code (join or status page). A store failure must not undo it: only logged."""
    pii = current_app.extensions["pii"]
    try:
        monitor().note_verified(limits.prefix_key(pii, pii.decrypt(proven.phone_enc)))
    except limits.LimiterUnavailable:
        pass  # Limits already logged it; the figures will read low, which errs towards the check
