"""Bearer tokens for /api/v1: issued once, stored only as a SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from app.models import ApiToken, User
from app.services import audit

# A recognisable prefix lets secret scanners find leaked tokens; 32 random bytes = 256 bits.
PREFIX = "sj_"
# last_used_at is for humans ("is this integration alive?"): an hour's precision spares a write per call.
TOUCH_EVERY = timedelta(hours=1)
# "read" answers GET only; "write" also decides and upserts, within what the user's role allows.
SCOPES = ("read", "write")


class TokenNotFound(LookupError):
    """No such token of this user."""


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue(
    session: Session,
    user: User,
    *,
    now: datetime,
    actor_id: int | None = None,
    scope: str = "write",
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user`: the row and the only copy of the secret."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id or 0, token_hash=digest(raw), created_at=now, scope=scope, expires_at=expires_at)
    session.add(token)
    session.flush()
    audit.record(
        session,
        "api_token.create",
        target_type="api_token",
        target_id=token.id,
        actor_id=actor_id,
        user_id=user.id,
        scope=scope,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return token, raw


def authenticate(session: Session, raw: str, *, now: datetime) -> User | None:
    """The active user a live token belongs to, or None."""
    found = check(session, raw, now=now)
    return found[0] if found else None


def check(session: Session, raw: str, *, now: datetime) -> tuple[User, ApiToken] | None:
    """The active user and the live (unrevoked, unexpired) token, or None."""
    if not raw.startswith(PREFIX) or len(raw) > 128:
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == digest(raw))).first()
    if token is None or token.revoked_at is not None or expired(token, now):
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        return None
    if token.last_used_at is None or _aware(token.last_used_at) < now - TOUCH_EVERY:
        token.last_used_at = now
        session.add(token)
    return user, token


def expired(token: ApiToken, now: datetime) -> bool:
    return token.expires_at is not None and _aware(token.expires_at) <= now


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).where(col(ApiToken.user_id) == user.id).order_by(col(ApiToken.id))))


def revoke(
    session: Session, user: User, *, now: datetime, token_id: int | None = None, actor_id: int | None = None
) -> list[ApiToken]:
    """Revoke one token of `user` (by id) or all of them; returns those revoked now."""
    live = [t for t in tokens_of(session, user) if t.revoked_at is None and token_id in (None, t.id)]
    if token_id is not None and not live:
        raise TokenNotFound(token_id)
    for token in live:
        token.revoked_at = now
        session.add(token)
        audit.record(
            session, "api_token.revoke", target_type="api_token", target_id=token.id, actor_id=actor_id, user_id=user.id
        )
    return live
