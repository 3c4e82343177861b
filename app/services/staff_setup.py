"""One-time set-up links for staff accounts: the account holder chooses the password, nobody sends one around.

A link carries the account id and a random nonce, signed with SECRET_KEY under a salt of its own
(itsdangerous, one salt per purpose as pypi/warehouse does) and timestamped, so it expires. Only
the nonce's SHA-256 is stored on the account: issuing a new link replaces it (the old link stops
working), and using the link clears it in one conditional UPDATE, so a second use fails even when
two requests race.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import update
from sqlmodel import Session, col

from app.models import User
from app.services import audit, crypto, users

SALT = "scanjoin/staff-setup/v1"
DEFAULT_MAX_AGE = 72 * 3600  # project choice: three days to open a link sent over a weekend


class LinkInvalid(Exception):
    """Tampered, signed with another key, or for an account that no longer exists or is switched off."""


class LinkExpired(Exception):
    """Genuine but older than its maximum age."""


class LinkUsed(Exception):
    """Genuine but already used, or replaced by a newer link."""


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def issue(session: Session, user: User, *, secret_key: str, actor_id: int | None = None) -> str:
    """A new link token for `user` (shown once); any older link of the account stops working."""
    nonce = secrets.token_urlsafe(16)
    user.setup_hash = _digest(nonce)
    session.add(user)
    audit.record(session, "user.setup_link", target_type="user", target_id=user.id, actor_id=actor_id)
    return str(_serializer(secret_key).dumps({"u": user.id, "n": nonce}))


def check(session: Session, token: str, *, secret_key: str, max_age: int) -> User:
    """The account a live link is for, else LinkInvalid, LinkExpired or LinkUsed."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise LinkExpired() from exc
    except BadSignature as exc:
        raise LinkInvalid() from exc
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("n"), str):
        raise LinkInvalid()
    user = session.get(User, data["u"])
    if user is None or not user.active:
        raise LinkInvalid()
    if user.setup_hash is None or not crypto.equal(user.setup_hash, _digest(data["n"])):
        raise LinkUsed()
    return user


def complete(session: Session, token: str, password: str, *, secret_key: str, max_age: int, now: datetime) -> User:
    """Use the link: set the password (users.UserError if the policy refuses it); the link is spent.

    A locked account is unlocked (the admin sent the link to recover it); every older session ends.
    """
    user = check(session, token, secret_key=secret_key, max_age=max_age)
    password = users.check_password(password, user.email)
    spent = session.execute(
        update(User).where(col(User.id) == user.id, col(User.setup_hash) == user.setup_hash).values(setup_hash=None)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]  # another request used it first
        raise LinkUsed()
    session.refresh(user)
    user.password_hash = users.hash_password(password)
    user.session_version += 1
    user.failed_logins, user.locked_at = 0, None
    session.add(user)
    audit.record(session, "user.setup_done", target_type="user", target_id=user.id, actor_id=user.id)
    return user
