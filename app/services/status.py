"""The worker's status page: prove the phone by SMS code, see the application, withdraw consent.

The code state (tries, sends, expiry) lives in a `status_check` row, never in a cookie; the
per-phone limits count every check of the last 24 h, so starting over resets nothing. Any
phone gets a code (member or not), so the page reveals nothing before the code is proven.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from app.models import JoinAttempt, Member, StatusCheck
from app.services import audit, events, verification
from app.services.crypto import PiiCipher
from app.services.limits import Limits
from app.services.sms import SmsGateway

CHECKS_PER_DAY = 4  # SMS per phone per rolling 24 h (docs/security.md B3)
FAILS_PER_DAY = 10  # wrong codes per phone per rolling 24 h (docs/security.md A6)
VERIFIED_FOR = timedelta(minutes=30)


class TooManyChecks(Exception):
    """This phone asked for too many codes or got too many wrong: wait a day."""


class CheckNotVerified(Exception):
    """No proven phone behind this check (unknown, unverified or too old)."""


def start(
    session: Session,
    phone: str,
    *,
    pii: PiiCipher,
    locale: str,
    now: datetime,
    gateway: SmsGateway | None = None,
    key: str = "",
    ttl: int = 0,
    with_code: bool = True,
) -> tuple[StatusCheck, str | None]:
    """A new check with a fresh code (send it after the commit), unless the phone is over its limits.

    `with_code` off: no code yet (the web flow issues it through app/services/phone_proof.py,
    after the human check if one is needed); `gateway`, `key` and `ttl` serve only `with_code`.
    """
    index = pii.index(phone)
    _within_limits(session, index, now)
    check = StatusCheck(
        id=secrets.token_hex(16), phone_index=index, phone_enc=pii.encrypt(phone), locale=locale, created_at=now
    )
    code = issue(session, check, gateway=gateway, key=key, now=now, ttl=ttl) if with_code and gateway else None
    session.add(check)
    session.flush()
    return check, code


def issue(
    session: Session, check: StatusCheck, *, gateway: SmsGateway, key: str, now: datetime, ttl: int
) -> str | None:
    """A fresh code on `check` (send it after the commit)."""
    code = verification.issue(check, gateway=gateway, key=key, now=now, ttl=ttl)
    session.add(check)
    return code


def _within_limits(session: Session, index: str, now: datetime) -> None:
    since = now - timedelta(days=1)
    sends, tries = session.execute(
        select(func.coalesce(func.sum(StatusCheck.sends), 0), func.coalesce(func.sum(StatusCheck.code_tries), 0)).where(
            col(StatusCheck.phone_index) == index, col(StatusCheck.created_at) >= since
        )
    ).one()
    if sends >= CHECKS_PER_DAY or tries >= FAILS_PER_DAY:
        raise TooManyChecks()


def resend(
    session: Session,
    old: StatusCheck,
    *,
    pii: PiiCipher,
    now: datetime,
    gateway: SmsGateway | None = None,
    key: str = "",
    ttl: int = 0,
    with_code: bool = True,
) -> tuple[StatusCheck, str | None]:
    """A new code in a new row (cooldown is the caller's): the old row keeps its wrong tries for the count."""
    old.code_hash = None
    old.code_expires_at = None
    session.add(old)
    return start(
        session,
        pii.decrypt(old.phone_enc),
        pii=pii,
        locale=old.locale,
        gateway=gateway,
        key=key,
        now=now,
        ttl=ttl,
        with_code=with_code,
    )


def check_code(
    session: Session,
    check: StatusCheck,
    code: str,
    *,
    guard: Limits,
    phone: str,
    gateway: SmsGateway,
    key: str,
    now: datetime,
    max_tries: int,
) -> None:
    """Accept the code or raise a verification.CodeError (the try is counted either way).

    Behind the shared per-phone lock and backoff of the join flow (limits.LimitExceeded), and
    this table's own daily count of wrong codes.
    """
    _within_limits_for_check(session, check, now)
    try:
        verification.check_guarded(
            check,
            code,
            guard=guard,
            phone=phone,
            gateway=gateway,
            key=key,
            now=now,
            max_tries=max_tries,
        )
    finally:
        session.add(check)


def _within_limits_for_check(session: Session, check: StatusCheck, now: datetime) -> None:
    since = now - timedelta(days=1)
    tries = session.execute(
        select(func.coalesce(func.sum(StatusCheck.code_tries), 0)).where(
            col(StatusCheck.phone_index) == check.phone_index, col(StatusCheck.created_at) >= since
        )
    ).scalar_one()
    if tries >= FAILS_PER_DAY:
        raise verification.CodeLocked()


def verified(session: Session, check_id: str | None, *, now: datetime) -> StatusCheck:
    """The check behind the worker's session, if its phone was proven recently."""
    check = session.get(StatusCheck, check_id) if check_id else None
    if check is None or check.verified_at is None or now - check.verified_at > VERIFIED_FOR:
        raise CheckNotVerified()
    return check


def member_of(session: Session, check: StatusCheck) -> Member | None:
    return session.execute(select(Member).where(col(Member.phone_index) == check.phone_index)).scalar_one_or_none()


def withdraw(session: Session, check: StatusCheck) -> int | None:
    """Delete everything held about this phone; the audit event keeps ids only. Returns the member id."""
    member = member_of(session, check)
    member_id = member.id if member else None
    if member is not None:
        audit.record(
            session,
            "member.withdraw",
            target_type="member",
            target_id=member.id,
            district_id=member.district_id,
            status=member.status.value,
        )
        events.record(session, events.MemberWithdrawn(member.id or 0, member.district_id))
    session.execute(delete(JoinAttempt).where(col(JoinAttempt.phone_index) == check.phone_index))
    if member is not None:
        session.execute(delete(Member).where(col(Member.id) == member_id))
    session.execute(delete(StatusCheck).where(col(StatusCheck.phone_index) == check.phone_index))
    session.flush()
    return member_id
