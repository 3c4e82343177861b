"""Join attempts and members: from a submitted form to a pending application."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.models import JoinAttempt, Member, MemberStatus, Platform
from app.services import audit, names
from app.services.crypto import PiiCipher
from app.services.phones import last4
from app.services.places import ResolvedPlace

# v2: the notice names the SMS provider, and a provider abroad (Twilio) gets a consent of its own.
CONSENT_VERSION = "2026-12-v2"


def consent_version(providers: Sequence[str] = ()) -> str:
    """The version of the notice a worker agreed to. It names the SMS providers (the cross-border
    consent comes with `twilio`), so they are part of the version: `2026-12-v2-aliyun`."""
    return "-".join((CONSENT_VERSION, *providers))


class AttemptMismatch(Exception):
    """The form key was already used for a different submission."""


@dataclass(frozen=True)
class Applicant:
    name: str
    phone: str  # E.164
    platform: Platform
    workplace_id: int | None
    locale: str
    consent_version: str = CONSENT_VERSION


@dataclass(frozen=True)
class Enrollment:
    member: Member
    outcome: str  # "created", "reapplied", "pending" or "approved" (an earlier membership)


def start_attempt(
    session: Session, place: ResolvedPlace, applicant: Applicant, *, form_key: str, pii: PiiCipher, now: datetime
) -> tuple[JoinAttempt, bool]:
    """Store the submitted form as a draft; a repeated form key returns the first draft.

    The insert comes first (one statement for the usual new form); a repeated key, from a double
    tap or a retry, fails it and reads the first draft instead.
    """
    attempt = JoinAttempt(
        id=secrets.token_hex(16),
        form_key=form_key,
        district_id=place.district.id or 0,
        workplace_id=applicant.workplace_id,
        source_kind=place.kind,
        source_qr_version=place.qr_version,
        name_enc=pii.encrypt(applicant.name),
        phone_enc=pii.encrypt(applicant.phone),
        phone_index=pii.index(applicant.phone),
        platform=applicant.platform,
        consent_version=applicant.consent_version,
        consent_at=now,
        locale=applicant.locale,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(attempt)
    except IntegrityError:
        # This form was sent before (or a double tap raced us to it): use the first draft.
        first = session.exec(select(JoinAttempt).where(JoinAttempt.form_key == form_key)).one()
        return _same_submission(first, applicant, pii), False
    return attempt, True


def _same_submission(attempt: JoinAttempt, applicant: Applicant, pii: PiiCipher) -> JoinAttempt:
    if attempt.phone_index != pii.index(applicant.phone):
        raise AttemptMismatch()
    return attempt


def enroll(session: Session, attempt: JoinAttempt, *, pii: PiiCipher, now: datetime) -> Enrollment:
    """Turn a verified attempt into a pending member, or report the membership that exists."""
    if attempt.member_id is not None:
        known = session.get(Member, attempt.member_id)
        if known is not None:
            return Enrollment(known, attempt.outcome or known.status.value)
    # Most verified phones are new: insert first, and look for the earlier membership only when
    # the phone's unique index says there is one (or a concurrent join just made it).
    existing = None
    try:
        with session.begin_nested():
            member = _new_member(attempt, pii, now)
            session.add(member)
        outcome = "created"
    except IntegrityError:
        existing = _member_by_index(session, attempt.phone_index)
        assert existing is not None
    if existing is not None:
        member, outcome = _reapply_or_report(existing, attempt, now)
        if outcome == "reapplied":
            member.name_index = names.index(pii, pii.decrypt(attempt.name_enc))
    session.add(member)
    session.flush()
    attempt.member_id, attempt.outcome = member.id, outcome
    session.add(attempt)
    if outcome in ("created", "reapplied"):
        audit.record(
            session,
            f"member.{outcome}",
            target_type="member",
            target_id=member.id,
            district_id=member.district_id,
            source=attempt.source_kind.value,
        )
    return Enrollment(member, outcome)


def _member_by_index(session: Session, phone_index: str) -> Member | None:
    return session.exec(select(Member).where(Member.phone_index == phone_index)).first()


def _new_member(attempt: JoinAttempt, pii: PiiCipher, now: datetime) -> Member:
    phone = pii.decrypt(attempt.phone_enc)
    return Member(
        district_id=attempt.district_id,
        workplace_id=attempt.workplace_id,
        name_enc=attempt.name_enc,
        phone_enc=attempt.phone_enc,
        phone_index=attempt.phone_index,
        phone_last4_index=pii.index(last4(phone), purpose="last4"),
        name_index=names.index(pii, pii.decrypt(attempt.name_enc)),
        platform=attempt.platform,
        consent_version=attempt.consent_version,
        consent_at=attempt.consent_at,
        source_kind=attempt.source_kind,
        source_qr_version=attempt.source_qr_version,
        created_at=now,
        verified_at=now,
    )


def _reapply_or_report(member: Member, attempt: JoinAttempt, now: datetime) -> tuple[Member, str]:
    """A rejected applicant applies again on the same row; others keep their membership."""
    if member.status is not MemberStatus.rejected:
        return member, member.status.value
    for name in (
        "district_id",
        "workplace_id",
        "name_enc",
        "phone_enc",
        "platform",
        "consent_version",
        "consent_at",
        "source_kind",
        "source_qr_version",
    ):
        setattr(member, name, getattr(attempt, name))
    member.status = MemberStatus.pending
    member.created_at = member.verified_at = now
    member.decided_at = member.decided_by_id = member.reject_reason = None
    return member, "reapplied"
