"""Callbacks from Twilio (message delivery status). Only requests signed with our auth token count.

Twilio posts a form without our CSRF token, so the blueprint is exempt from CSRF; the
X-Twilio-Signature (HMAC-SHA1 of the URL and the fields under TWILIO_AUTH_TOKEN) stands in.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, request
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator

from app.db import get_session
from app.extensions import csrf
from app.models import utcnow
from app.services import sms

log = logging.getLogger(__name__)
bp = Blueprint("twilio_hooks", __name__)
csrf.exempt(bp)


@bp.post(sms.STATUS_CALLBACK_PATH)
def status() -> tuple[str, int]:
    """A message's delivery status; an opt-out (21610) is recorded so the phone is not texted again."""
    if not _signed_by_twilio():
        abort(403)
    form = request.form
    log.info(
        "sms %s: %s (error %s)", form.get("MessageSid", "?"), form.get("MessageStatus", "?"), form.get("ErrorCode", "-")
    )
    db = get_session()
    try:
        sms.handle_receipt(db, current_app.extensions["pii"], sms.twilio_receipt(form), now=utcnow())
        db.commit()
    except IntegrityError:
        db.rollback()  # a concurrent callback recorded the same phone first
    return "", 204


def _signed_by_twilio() -> bool:
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    return RequestValidator(token).validate(_public_url(), request.form.to_dict(), signature)


def _public_url() -> str:
    """The URL Twilio was given (PUBLIC_BASE_URL), not the one a proxy forwarded to us."""
    query = request.query_string.decode()
    path = request.script_root + request.path
    return current_app.config["PUBLIC_BASE_URL"] + path + (f"?{query}" if query else "")
