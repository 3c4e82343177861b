"""The second factor of staff sign-in (docs/security.md D3): TOTP (RFC 6238) and one-time recovery codes.

Secrets are kept only as field-encrypted ciphertext (the PII cipher of app/services/crypto.py);
recovery codes only as a SHA-256 (80 random bits each, so a fast hash is enough, as for API tokens).
A code is accepted once: its time step must be newer than the last one accepted, and the check and
the update are one conditional UPDATE, so two requests racing with the same code cannot both pass.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata
from datetime import datetime

import pyotp
import qrcode
import qrcode.image.svg
from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from app.models import RecoveryCode, User
from app.services import audit, crypto
from app.services.crypto import PiiCipher

ISSUER = "ScanJoin"
# RFC 6238 defaults every authenticator app knows: 30-second steps, 6 digits, SHA-1.
# ±1 step tolerates a phone clock up to 30 s off (RFC 6238 §5.2 recommends at most one step back).
VALID_WINDOW = 1
RECOVERY_CODES = 10
TOTP_RE = re.compile(r"^[0-9]{6}$")
RECOVERY_RE = re.compile(r"^[a-z2-7]{16}$")


class CodeRejected(ValueError):
    """The code is wrong, malformed, too old or already used (one answer for all of them)."""


def enrolled(user: User) -> bool:
    return user.totp_secret_enc is not None


def pending_secret(session: Session, cipher: PiiCipher, user: User) -> str:
    """The secret being set up: the same one on every reload until it is confirmed."""
    if user.totp_pending_enc is None:
        user.totp_pending_enc = cipher.encrypt(pyotp.random_base32(32))  # 160 bits (RFC 4226 §4)
        session.add(user)
        session.flush()
    return cipher.decrypt(user.totp_pending_enc)


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG (made here: nothing is loaded from another origin)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    return image.to_string(encoding="unicode")


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _normalise(code: str) -> str:
    # NFKC first: a Chinese input method in full-width mode types １２３４５６ for 123456.
    return re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", code or "")).lower()


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if crypto.equal(totp.generate_otp(step), code):
            return step
    return None


def confirm(session: Session, cipher: PiiCipher, user: User, code: str, *, now: datetime) -> list[str]:
    """Make the pending secret the account's second factor; returns new recovery codes (shown once).

    Every session of the account ends (a replaced app, or sessions from before enrolment).
    """
    code = _normalise(code)
    if user.totp_pending_enc is None or not TOTP_RE.match(code):
        raise CodeRejected()
    step = _matching_step(cipher.decrypt(user.totp_pending_enc), code, now)
    if step is None:
        raise CodeRejected()
    replaced = enrolled(user)
    user.totp_secret_enc, user.totp_pending_enc = user.totp_pending_enc, None
    user.totp_enrolled_at, user.totp_last_step = now, step
    user.session_version += 1
    session.add(user)
    audit.record(
        session,
        "user.mfa_replace" if replaced else "user.mfa_enrol",
        target_type="user",
        target_id=user.id,
        actor_id=user.id,
        method="totp",
    )
    return new_recovery_codes(session, user, now=now)


def verify(session: Session, cipher: PiiCipher, user: User, code: str, *, now: datetime) -> str:
    """Check a current TOTP code or an unused recovery code: "totp" or "recovery", else CodeRejected."""
    code = _normalise(code)
    if user.totp_secret_enc is not None and TOTP_RE.match(code):
        step = _matching_step(cipher.decrypt(user.totp_secret_enc), code, now)
        if step is not None and _take_step(session, user, step):
            return "totp"
    elif RECOVERY_RE.match(code) and _take_recovery_code(session, user, code, now):
        audit.record(
            session,
            "user.recovery_code_used",
            target_type="user",
            target_id=user.id,
            actor_id=user.id,
            left=recovery_codes_left(session, user),
        )
        return "recovery"
    raise CodeRejected()


def _take_step(session: Session, user: User, step: int) -> bool:
    result = session.execute(
        update(User)
        .where(col(User.id) == user.id, or_(col(User.totp_last_step).is_(None), col(User.totp_last_step) < step))
        .values(totp_last_step=step)
    )
    session.refresh(user)
    return result.rowcount == 1  # type: ignore[attr-defined]


def _take_recovery_code(session: Session, user: User, code: str, now: datetime) -> bool:
    result = session.execute(
        update(RecoveryCode)
        .where(
            col(RecoveryCode.user_id) == user.id,
            col(RecoveryCode.code_hash) == _digest(code),
            col(RecoveryCode.used_at).is_(None),
        )
        .values(used_at=now)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _new_recovery_code() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 16 characters, 80 bits


def show_recovery_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def new_recovery_codes(session: Session, user: User, *, now: datetime) -> list[str]:
    """Replace the account's recovery codes; the plain codes exist only in the return value."""
    session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id or 0, code_hash=_digest(c), created_at=now) for c in codes)
    session.flush()
    audit.record(
        session, "user.recovery_codes", target_type="user", target_id=user.id, actor_id=user.id, count=len(codes)
    )
    return [show_recovery_code(c) for c in codes]


def recovery_codes_left(session: Session, user: User) -> int:
    query = (
        select(func.count())
        .select_from(RecoveryCode)
        .where(col(RecoveryCode.user_id) == user.id, col(RecoveryCode.used_at).is_(None))
    )
    return int(session.exec(query).one())


def reset(session: Session, user: User, *, actor_id: int | None = None) -> User:
    """An admin's recovery step: forget the second factor; the account enrols again at its next sign-in.

    Every session of the account ends at once.
    """
    user.totp_secret_enc = user.totp_pending_enc = None
    user.totp_enrolled_at = user.totp_last_step = None
    user.session_version += 1
    session.add(user)
    session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
    audit.record(session, "user.mfa_reset", target_type="user", target_id=user.id, actor_id=actor_id)
    return user
