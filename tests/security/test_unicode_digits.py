"""Digits beyond ASCII never make a 500, and full-width digits typed by a person count as digits.

The class: `str.isdigit()` is True for "²" (then `int("²")` raises) and `hmac.compare_digest`
raises for a str holding a character beyond ASCII. The app reads numbers through
app/services/numbers.py and compares secrets through `crypto.equal`; the scans below keep it so,
the requests below prove the doors.
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest

from app.models import Role, utcnow
from app.services import crypto, mfa, users
from tests import factories
from tests.web.test_join import code_from, send_code, submit

APP = Path(__file__).resolve().parents[2] / "app"
# Where isdigit() is right: counting digit characters to mask them (any digit is masked), and
# quoting a spreadsheet cell that looks like a number (any digit looks like one to a person).
ISDIGIT_ALLOWED = {"app/logs.py", "app/services/export.py", "app/services/numbers.py"}
ODD_DIGITS = ["²", "١٢", "１２", "𝟗"]  # superscript, Arabic-Indic, full-width, mathematical


def _calls(attribute: str) -> set[str]:
    found = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attribute:
                found.add(path.relative_to(APP.parent).as_posix())
    return found


def test_isdigit_and_compare_digest_are_read_through_one_place_each():
    assert _calls("isdigit") <= ISDIGIT_ALLOWED
    assert _calls("compare_digest") == {"app/services/crypto.py"}


def test_equal_answers_false_not_an_error_for_any_characters():
    assert crypto.equal("123456", "123456") and not crypto.equal("１２３４５６", "123456")
    assert not crypto.equal("é", "e") and crypto.equal(b"\x00", b"\x00")


@pytest.mark.parametrize("value", ODD_DIGITS)
def test_numeric_query_values_with_odd_digits_are_refused_or_ignored_never_a_500(app, client, db, value):
    from tests.web.test_roster import sign_in  # noqa: PLC0415

    factories.district(db, "PD", "浦东")
    db.commit()
    sign_in(client, db)
    for url in (
        f"/dashboard/?days={value}",
        f"/roster/?before={value}",
        f"/roster/?recent={value}",
        f"/roster/?q={value}",
        f"/roster/changes?marker={value}",
    ):
        assert client.get(url).status_code < 500, url
    assert client.post(f"/sms/aliyun/receipts?key={value}", data="[]").status_code == 404


def test_a_join_code_typed_in_full_width_digits_proves_the_phone(app, client, db, sms, station):
    submit(client, factories.join_path(app, station))
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in code_from(sms))  # "１２３４５６"
    assert send_code(client, wide).headers["Location"].endswith("/join/done")


def test_an_authenticator_code_typed_in_full_width_digits_signs_in(db, app):
    cipher = app.extensions["pii"]
    user = users.create(db, "admin@example.org", role=Role.admin, password="correct horse battery staple")
    now = utcnow()
    secret = mfa.pending_secret(db, cipher, user)
    mfa.confirm(db, cipher, user, pyotp.TOTP(secret).at(now), now=now)
    later = now + timedelta(seconds=30)
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in pyotp.TOTP(secret).at(later))
    assert mfa.verify(db, cipher, user, wide, now=later) == "totp"
