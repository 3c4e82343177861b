"""API tokens: only a hash stored, revocation, inactive owners."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from app.models import ApiToken, AuditEvent, Role, User, utcnow
from app.services import api_tokens


def user(db, email: str = "api@example.org") -> User:  # type: ignore[no-untyped-def]
    row = User(email=email, password_hash="x", role=Role.admin)
    db.add(row)
    db.flush()
    return row


def test_issue_stores_only_the_sha256(db):
    owner = user(db)
    token, raw = api_tokens.issue(db, owner, now=utcnow())
    assert raw.startswith("sj_") and len(raw) >= 40
    stored = db.exec(select(ApiToken)).one()
    assert stored.token_hash == api_tokens.digest(raw) and raw not in stored.token_hash
    assert api_tokens.authenticate(db, raw, now=utcnow()) is owner
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "api_token.create")).one().target_id == str(token.id)


def test_wrong_or_foreign_tokens_fail(db):
    user(db)
    assert api_tokens.authenticate(db, "sj_" + "A" * 43, now=utcnow()) is None
    assert api_tokens.authenticate(db, "", now=utcnow()) is None
    assert api_tokens.authenticate(db, "Bearer nonsense", now=utcnow()) is None


def test_revoke_one_or_all(db):
    owner = user(db)
    first, raw1 = api_tokens.issue(db, owner, now=utcnow())
    _, raw2 = api_tokens.issue(db, owner, now=utcnow())
    assert [t.id for t in api_tokens.revoke(db, owner, now=utcnow(), token_id=first.id)] == [first.id]
    assert api_tokens.authenticate(db, raw1, now=utcnow()) is None
    assert api_tokens.authenticate(db, raw2, now=utcnow()) is owner
    assert len(api_tokens.revoke(db, owner, now=utcnow())) == 1
    assert api_tokens.authenticate(db, raw2, now=utcnow()) is None


def test_inactive_owner_cannot_use_a_token(db):
    owner = user(db)
    _, raw = api_tokens.issue(db, owner, now=utcnow())
    owner.active = False
    assert api_tokens.authenticate(db, raw, now=utcnow()) is None


def test_last_used_is_touched_at_most_hourly(db):
    owner = user(db)
    token, raw = api_tokens.issue(db, owner, now=utcnow())
    start = utcnow()
    api_tokens.authenticate(db, raw, now=start)
    assert token.last_used_at == start
    api_tokens.authenticate(db, raw, now=start + timedelta(minutes=5))
    assert token.last_used_at == start
    api_tokens.authenticate(db, raw, now=start + timedelta(hours=2))
    assert token.last_used_at == start + timedelta(hours=2)
