"""The worker pages' message tables and the platform labels (the roster reads these too)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.models import Platform

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


def send_failure(kind: str | None) -> str | None:
    """What the code page says about a code that could not be sent, or None.

    Nothing about a phone's history before its owner proved it (docs/security.md; issue 12): an
    opted-out number reads like any number the provider would not take.
    """
    if kind is None:
        return None
    return str(SMS_MESSAGES.get(kind, SMS_MESSAGES["rejected"]))
