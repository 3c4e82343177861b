"""Phone numbers: parse what a worker typed into E.164, or say why not."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class PhoneInvalid(ValueError):
    """Not a mobile number we can send a code to; `reason` is one of the keys below."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "empty", "malformed", "region", "not_mobile"


def normalize(raw: str, allowed_regions: list[str], default_region: str = "CN") -> str:
    """Return the E.164 form of a mobile number from an allowed region."""
    text = (raw or "").strip()
    if not text:
        raise PhoneInvalid("empty")
    if len(text) > 32:
        raise PhoneInvalid("malformed")
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        raise PhoneInvalid("malformed") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneInvalid("malformed")
    if phonenumbers.region_code_for_number(number) not in allowed_regions:
        raise PhoneInvalid("region")
    if phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise PhoneInvalid("not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def last4(e164: str) -> str:
    return e164[-4:]


def masked(e164: str) -> str:
    """A form safe to show on screen or in a notice: the last four digits only."""
    return "*" * 7 + e164[-4:]
