"""Staff accounts: create, authenticate. Passwords hashed with argon2id."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from app.models import District, Role, User, UserDistrict
from app.services import audit

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 15
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile: 64 MiB, t=3, p=4
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """Bad input for an account; the message says which."""


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def create(
    session: Session, email: str, *, role: Role, password: str, district_codes: list[str] | None = None,
    actor_id: int | None = None,
) -> User:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise UserError("not an email address")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password must have at least {MIN_PASSWORD} characters")
    if session.exec(select(User).where(User.email == email)).first():
        raise UserError("a user with this email exists")
    districts = [_district(session, code) for code in district_codes or []]
    if role is not Role.admin and not districts:
        raise UserError("officials and organizers need at least one --district")
    user = User(email=email, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    for district in districts:
        session.add(UserDistrict(user_id=user.id or 0, district_id=district.id or 0))
    audit.record(session, "user.create", target_type="user", target_id=user.id, actor_id=actor_id, role=role.value)
    return user


def _district(session: Session, code: str) -> District:
    district = session.exec(select(District).where(District.code == code)).first()
    if district is None:
        raise UserError(f"no district with code {code}")
    return district


def authenticate(session: Session, email: str, password: str, *, now: datetime) -> User | None:
    """The active user with this email and password, or None (same work either way)."""
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    session.add(user)
    return user


def district_ids(session: Session, user: User) -> list[int] | None:
    """The districts a user may act in; None means every district (admin)."""
    if user.role is Role.admin:
        return None
    rows = session.exec(select(UserDistrict.district_id).where(UserDistrict.user_id == user.id))
    return list(rows)
