"""The TOTP second factor and recovery codes as a service: RFC 6238 steps, replay, single use, reset."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlmodel import select

from app.models import AuditEvent, RecoveryCode, Role, utcnow
from app.services import mfa, users


@pytest.fixture
def cipher(app):  # type: ignore[no-untyped-def]
    return app.extensions["pii"]


@pytest.fixture
def user(db):  # type: ignore[no-untyped-def]
    return users.create(db, "admin@example.org", role=Role.admin, password="correct horse battery staple")


def enrolled(db, cipher, user, now=None):  # type: ignore[no-untyped-def]
    now = now or utcnow()
    secret = mfa.pending_secret(db, cipher, user)
    codes = mfa.confirm(db, cipher, user, pyotp.TOTP(secret).at(now), now=now)
    return secret, codes


def test_the_pending_secret_is_kept_encrypted_and_stable_until_confirmed(db, cipher, user):
    secret = mfa.pending_secret(db, cipher, user)
    assert len(secret) == 32 and mfa.pending_secret(db, cipher, user) == secret, "a reload shows the same QR code"
    assert secret not in user.totp_pending_enc and not mfa.enrolled(user)
    uri = mfa.provisioning_uri(secret, user.email)
    assert uri.startswith("otpauth://totp/ScanJoin:admin%40example.org?secret=" + secret)
    svg = mfa.qr_svg(uri)
    assert svg.startswith("<svg") and "<path" in svg and "http" not in svg.replace("http://www.w3.org", "")
    assert mfa.grouped("ABCDEFGHIJKL") == "ABCD EFGH IJKL"


def test_confirm_needs_a_current_code_then_gives_ten_hashed_recovery_codes(db, cipher, user):
    secret = mfa.pending_secret(db, cipher, user)
    version = user.session_version
    with pytest.raises(mfa.CodeRejected):
        mfa.confirm(db, cipher, user, "12345", now=utcnow())
    now = utcnow()
    codes = mfa.confirm(db, cipher, user, pyotp.TOTP(secret).at(now), now=now)
    assert mfa.enrolled(user) and user.totp_pending_enc is None and secret not in user.totp_secret_enc
    assert cipher.decrypt(user.totp_secret_enc) == secret
    assert user.session_version == version + 1, "sessions from before enrolment end"
    assert len(set(codes)) == 10 and all(len(c) == 19 for c in codes)
    stored = [r.code_hash for r in db.exec(select(RecoveryCode))]
    assert len(stored) == 10 and not any(c.replace("-", "") in h for c in codes for h in stored)
    details = str([e.details for e in db.exec(select(AuditEvent))])
    assert secret not in details and not any(c in details for c in codes)


def test_one_step_either_side_is_accepted_two_are_not(db, cipher, user):
    now = utcnow()
    secret, _codes = enrolled(db, cipher, user, now - timedelta(minutes=5))
    totp = pyotp.TOTP(secret)
    for offset, ok in ((-60, False), (60, False), (-30, True), (0, True), (30, True)):
        user.totp_last_step = None
        code = totp.at(now + timedelta(seconds=offset))
        if ok:
            assert mfa.verify(db, cipher, user, code, now=now) == "totp", offset
        else:
            with pytest.raises(mfa.CodeRejected):
                mfa.verify(db, cipher, user, code, now=now)


def test_a_code_is_accepted_once_and_older_steps_never_after_a_newer_one(db, cipher, user):
    now = utcnow()
    secret, _codes = enrolled(db, cipher, user, now - timedelta(minutes=5))
    totp = pyotp.TOTP(secret)
    assert mfa.verify(db, cipher, user, totp.at(now), now=now) == "totp"
    with pytest.raises(mfa.CodeRejected):
        mfa.verify(db, cipher, user, totp.at(now), now=now)  # replay within the same step
    with pytest.raises(mfa.CodeRejected):
        mfa.verify(db, cipher, user, totp.at(now - timedelta(seconds=30)), now=now)  # the step before
    assert mfa.verify(db, cipher, user, totp.at(now + timedelta(seconds=30)), now=now) == "totp"


def test_the_confirming_code_cannot_sign_in_again(db, cipher, user):
    now = utcnow()
    secret, _codes = enrolled(db, cipher, user, now)
    with pytest.raises(mfa.CodeRejected):
        mfa.verify(db, cipher, user, pyotp.TOTP(secret).at(now), now=now)


def test_recovery_codes_work_once_in_any_spelling(db, cipher, user):
    _secret, codes = enrolled(db, cipher, user)
    assert mfa.verify(db, cipher, user, f"  {codes[0].upper()} ", now=utcnow()) == "recovery"
    with pytest.raises(mfa.CodeRejected):
        mfa.verify(db, cipher, user, codes[0], now=utcnow())
    assert mfa.verify(db, cipher, user, codes[1].replace("-", " "), now=utcnow()) == "recovery"
    assert mfa.recovery_codes_left(db, user) == 8
    fresh = mfa.new_recovery_codes(db, user, now=utcnow())
    with pytest.raises(mfa.CodeRejected):
        mfa.verify(db, cipher, user, codes[2], now=utcnow())  # replaced codes no longer work
    assert mfa.verify(db, cipher, user, fresh[0], now=utcnow()) == "recovery"


@pytest.mark.parametrize("code", ["", "abc", "1234567", "aaaa-aaaa-aaaa-aaaa", "x" * 64])
def test_malformed_or_unknown_codes_are_rejected(db, cipher, user, code):
    enrolled(db, cipher, user)
    with pytest.raises(mfa.CodeRejected):
        mfa.verify(db, cipher, user, code, now=utcnow())


def test_reset_forgets_the_app_and_the_codes_and_ends_sessions(db, cipher, user):
    _secret, codes = enrolled(db, cipher, user)
    version = user.session_version
    mfa.reset(db, user, actor_id=None)
    assert not mfa.enrolled(user) and user.totp_last_step is None and user.session_version == version + 1
    assert mfa.recovery_codes_left(db, user) == 0
    with pytest.raises(mfa.CodeRejected):
        mfa.verify(db, cipher, user, codes[0], now=utcnow())
    assert "user.mfa_reset" in [e.action for e in db.exec(select(AuditEvent))]
