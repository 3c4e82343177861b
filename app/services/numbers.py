"""Numbers as people and browsers send them.

`str.isdigit()` is True for "²" and "١" as well as "7", and `int("²")` raises: a check with
`isdigit()` before `int()` turns such input into a 500. `digits` accepts ASCII digits only
(tests/security/test_unicode_digits.py keeps `isdigit()` out of the app). Where a person types a
number (a code from an SMS, an authenticator), `typed` first folds full-width digits ("１２３")
into ASCII ones, as a Chinese input method in full-width mode types them.
"""

from __future__ import annotations

import unicodedata


def digits(text: str) -> bool:
    """True when `text` is one or more ASCII digits."""
    return text.isascii() and text.isdigit()


def typed(text: str) -> str:
    """What a person typed, with full-width digits and letters made plain and spaces trimmed."""
    return unicodedata.normalize("NFKC", text).strip()
