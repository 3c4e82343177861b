"""Staff accounts: create, authenticate, lock and unlock. Passwords hashed with argon2id."""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from datetime import datetime
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.models import District, Role, User, UserDistrict
from app.services import audit

log = logging.getLogger(__name__)

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# docs/security.md D1 (NIST SP 800-63B-4 §3.1.1.2): at least 15 characters, at most 256 (≥ 64 must be
# allowed), no composition rules, and none of the 3000 most common passwords.
MIN_PASSWORD = 15
MAX_PASSWORD = 256
# docs/security.md D4: NIST caps consecutive failures at 100; past that only an admin unlocks.
LOCK_AFTER_FAILURES = 100
COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile: 64 MiB, t=3, p=4 (above OWASP's 19 MiB, t=2)
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """Bad input for an account; the message says which."""


class UserNotFound(LookupError):
    """No account has this email."""


def generate_password() -> str:
    return secrets.token_urlsafe(18)


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def normalize_password(password: str) -> str:
    """NFKC, so the same password typed on another keyboard or OS still matches (SP 800-63B §3.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def password_problem(password: str, email: str = "") -> str | None:
    """What is wrong with a password under the policy: "short", "long", "common", "email", or None."""
    password = normalize_password(password)
    lowered = password.lower()
    if len(password) < MIN_PASSWORD:
        return "short"
    if len(password) > MAX_PASSWORD:
        return "long"
    if lowered in common_passwords():
        return "common"
    if email and lowered == email.strip().lower():
        return "email"
    return None


PROBLEMS = {
    "short": f"password must have at least {MIN_PASSWORD} characters",
    "long": f"password must have at most {MAX_PASSWORD} characters",
    "common": "this password is one of the most common ones; choose another",
    "email": "the password must not be the email address",
}


def check_password(password: str, email: str = "") -> str:
    """The normalised password when it meets the policy, else UserError saying why."""
    problem = password_problem(password, email)
    if problem is not None:
        raise UserError(PROBLEMS[problem])
    return normalize_password(password)


def verify_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, normalize_password(password))
    except (VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create(
    session: Session,
    email: str,
    *,
    role: Role,
    password: str,
    district_codes: list[str] | None = None,
    actor_id: int | None = None,
) -> User:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise UserError("not an email address")
    password = check_password(password, email)
    return _add(session, email, role, hash_password(password), district_codes or [], actor_id)


def invite(session: Session, email: str, *, role: Role, district_codes: list[str], actor_id: int | None = None) -> User:
    """An account without a usable password: its holder sets one through a set-up link (staff_setup)."""
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise UserError("not an email address")
    # A hash of a random secret nobody keeps: no password signs in until the link is used.
    return _add(session, email, role, hash_password(secrets.token_urlsafe(32)), district_codes, actor_id)


def _add(
    session: Session, email: str, role: Role, password_hash: str, district_codes: list[str], actor_id: int | None
) -> User:
    if session.exec(select(User).where(User.email == email)).first():
        raise UserError("a user with this email exists")
    districts = [_district(session, code) for code in district_codes]
    if role is not Role.admin and not districts:
        raise UserError("officials and organizers need at least one --district")
    user = User(email=email, password_hash=password_hash, role=role)
    session.add(user)
    session.flush()
    for district in districts:
        session.add(UserDistrict(user_id=user.id or 0, district_id=district.id or 0))
    audit.record(session, "user.create", target_type="user", target_id=user.id, actor_id=actor_id, role=role.value)
    return user


def update_access(
    session: Session, user: User, *, role: Role, district_codes: list[str], actor_id: int | None = None
) -> User:
    """Give the account a role and its districts (admins act everywhere and keep none)."""
    districts = [] if role is Role.admin else [_district(session, code) for code in district_codes]
    if role is not Role.admin and not districts:
        raise UserError("officials and organizers need at least one --district")
    user.role = role
    session.add(user)
    session.execute(delete(UserDistrict).where(col(UserDistrict.user_id) == user.id))
    session.add_all(UserDistrict(user_id=user.id or 0, district_id=d.id or 0) for d in districts)
    session.flush()
    codes = sorted(d.code for d in districts)
    audit.record(
        session,
        "user.access",
        target_type="user",
        target_id=user.id,
        actor_id=actor_id,
        role=role.value,
        districts=codes,
    )
    return user


def _district(session: Session, code: str) -> District:
    district = session.exec(select(District).where(District.code == code)).first()
    if district is None:
        raise UserError(f"no district with code {code}")
    return district


def find(session: Session, email: str) -> User:
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise UserNotFound(email)
    return user


def get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound(user_id)
    return user


def all_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.email)))


def authenticate(session: Session, email: str, password: str, *, now: datetime) -> User | None:
    """The active, unlocked user with this email and password, or None (same work either way)."""
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    password = normalize_password(password)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        if user is not None:
            _count_failure(session, user, now)
        else:
            log.info("sign-in failed: unknown account")
        return None
    if user is None or not user.active or user.locked_at is not None:
        state = "inactive" if user is None or not user.active else "locked"
        log.warning("sign-in refused: user %s is %s", user and user.id, state)
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.add(user)
    # The failure count is reset only after the second factor too (complete_sign_in): someone who
    # knows the password must not get unlimited code guesses by signing in between them.
    log.info("password accepted: user %s", user.id)
    return user


def complete_sign_in(session: Session, user: User, *, now: datetime, method: str) -> None:
    """Both factors passed: reset the failure count and record the sign-in (`method`: totp, recovery)."""
    user.last_login_at = now
    user.failed_logins = 0
    session.add(user)
    audit.record(session, "user.sign_in", target_type="user", target_id=user.id, actor_id=user.id, method=method)
    log.info("sign-in: user %s", user.id)


def record_failure(session: Session, user: User, *, now: datetime, step: str) -> None:
    """A wrong second factor counts like a wrong password, toward the same hard lock (D4); audited
    with the step it failed at (code, setup, reauth), never what was typed."""
    _count_failure(session, user, now)
    audit.record(session, "user.sign_in_failed", target_type="user", target_id=user.id, actor_id=user.id, step=step)


def _count_failure(session: Session, user: User, now: datetime) -> None:
    # An atomic increment: two guesses at once must both count.
    session.execute(update(User).where(col(User.id) == user.id).values(failed_logins=col(User.failed_logins) + 1))
    session.refresh(user)
    log.info("sign-in failed: user %s, %s consecutive failures", user.id, user.failed_logins)
    if user.failed_logins >= LOCK_AFTER_FAILURES and user.locked_at is None:
        user.locked_at = now
        session.add(user)
        audit.record(session, "user.lock", target_type="user", target_id=user.id, failures=user.failed_logins)
        log.warning("account locked: user %s after %s consecutive failed sign-ins", user.id, user.failed_logins)


def unlock(session: Session, user: User, *, actor_id: int | None = None) -> User:
    """Clear the lock and the failure count (an admin's recovery step)."""
    user.locked_at = None
    user.failed_logins = 0
    session.add(user)
    audit.record(session, "user.unlock", target_type="user", target_id=user.id, actor_id=actor_id)
    return user


def set_password(session: Session, user: User, password: str, *, actor_id: int | None = None) -> User:
    """Replace the password and end every session of the user."""
    user.password_hash = hash_password(check_password(password, user.email))
    user.session_version += 1
    session.add(user)
    audit.record(session, "user.password", target_type="user", target_id=user.id, actor_id=actor_id)
    return user


def deactivate(session: Session, user: User, *, actor_id: int | None = None) -> User:
    """Switch the account off: its sessions end at once (tokens stop working with `active`)."""
    user.active = False
    user.session_version += 1
    session.add(user)
    audit.record(session, "user.deactivate", target_type="user", target_id=user.id, actor_id=actor_id)
    return user


def end_sessions(session: Session, user: User) -> None:
    """Every cookie the user holds stops working (sign-out, timeouts)."""
    session.execute(update(User).where(col(User.id) == user.id).values(session_version=col(User.session_version) + 1))


def district_ids(session: Session, user: User) -> list[int] | None:
    """The districts a user may act in; None means every district (admin)."""
    if user.role is Role.admin:
        return None
    rows = session.exec(select(UserDistrict.district_id).where(UserDistrict.user_id == user.id))
    return list(rows)


def district_codes(session: Session, user: User) -> list[str]:
    """The codes of the districts a non-admin user may act in, sorted."""
    query = (
        select(District.code)
        .join(UserDistrict, col(UserDistrict.district_id) == col(District.id))
        .where(UserDistrict.user_id == user.id)
        .order_by(District.code)
    )
    return list(session.exec(query))
