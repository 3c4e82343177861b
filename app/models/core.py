"""The core tables: places, members, join attempts, staff, audit, tokens, statistics, status checks."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Enum, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class PlaceKind(enum.StrEnum):
    district = "district"
    workplace = "workplace"


class WorkplaceKind(enum.StrEnum):
    delivery_station = "delivery_station"
    rest_station = "rest_station"
    hub = "hub"
    other = "other"


class MemberStatus(enum.StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class MemberSource(enum.StrEnum):
    """How a member reached the roster: the QR join flow, or an import of an existing register."""

    # typeshed reads a member named like a str method as overriding it; the enum member is what we want.
    join = "join"  # type: ignore[assignment]
    import_ = "import"


class Role(enum.StrEnum):
    admin = "admin"
    official = "official"
    organizer = "organizer"


class Platform(enum.StrEnum):
    meituan = "meituan"
    eleme = "eleme"
    didi = "didi"
    huolala = "huolala"
    shansong = "shansong"
    sf_intra_city = "sf_intra_city"
    other = "other"


def enum_column(enum_cls: type[enum.Enum], name: str) -> Column[Any]:
    # Stored as plain strings with a CHECK constraint, so adding a value is a small migration.
    return Column(Enum(enum_cls, name=name, native_enum=False, create_constraint=True, length=32), nullable=False)


class QrState(SQLModel):
    """The signed-code state every place carries: rotate bumps the version."""

    qr_version: int = Field(default=1)
    qr_issued_at: datetime = Field(default_factory=utcnow)
    qr_revoked_at: datetime | None = None
    # Set when an admin retires the place: its poster stops working and no new one is issued.
    retired_at: datetime | None = None


class CodeState(SQLModel):
    """The SMS-code state of whatever proves a phone (a join attempt, a status check).

    The code is kept only as an HMAC; tries and sends are counted on the row so they survive
    across requests and processes. app/services/verification.py works on this type.
    """

    id: str = Field(primary_key=True, max_length=32)
    phone_index: str = Field(max_length=64, index=True)
    phone_enc: str
    locale: str = Field(default="zh", max_length=8)
    code_hash: str | None = Field(default=None, max_length=64)
    code_sent_at: datetime | None = None
    code_expires_at: datetime | None = None
    code_tries: int = Field(default=0)
    sends: int = Field(default=0)
    verified_at: datetime | None = None
    # Why the last code could not be sent ("rejected", "unavailable", "opted_out"): the consumer
    # sends after the response (app/services/tasks.py) and the code page reads it from here.
    send_error: str | None = Field(default=None, max_length=20)
    # The code sealed with the PII cipher while it may be asked for again by voice call (the same
    # code, read out); cleared once proven. None when the provider makes the code (Twilio Verify).
    code_enc: str | None = None


class District(QrState, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=200)
    member_seq: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow)


class Workplace(QrState, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=200)
    district_id: int = Field(foreign_key="district.id", index=True)
    kind: WorkplaceKind = Field(default=WorkplaceKind.other, sa_column=enum_column(WorkplaceKind, "workplace_kind"))
    created_at: datetime = Field(default_factory=utcnow)


class Member(SQLModel, table=True):
    """One row per person (phone); a rejected applicant who reapplies reuses the row."""

    # The roster's keyset lists of one district: newest first, all statuses or one (a tab), and by
    # decision time; each also serves every lookup by district_id alone.
    __table_args__ = (
        Index("ix_member_district_created", "district_id", "created_at", "id"),
        Index("ix_member_district_status_created", "district_id", "status", "created_at", "id"),
        Index("ix_member_district_decided", "district_id", "decided_at", "id"),
        # A search by the whole name's or the phone's last four digits' keyed index, in one district or
        # several, newest first.
        Index("ix_member_name_district", "name_index", "district_id", "created_at", "id"),
        Index("ix_member_last4_district", "phone_last4_index", "district_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id")
    workplace_id: int | None = Field(default=None, foreign_key="workplace.id", index=True)
    name_enc: str
    phone_enc: str
    phone_index: str = Field(max_length=64, unique=True)
    phone_last4_index: str = Field(max_length=64)
    # The keyed index of the normalised full name (app/services/names.py); None until `members reindex`
    # has reached a member that predates it.
    name_index: str | None = Field(default=None, max_length=64)
    platform: Platform = Field(sa_column=enum_column(Platform, "platform"))
    status: MemberStatus = Field(default=MemberStatus.pending, sa_column=enum_column(MemberStatus, "member_status"))
    consent_version: str = Field(max_length=32)
    consent_at: datetime
    source_kind: PlaceKind = Field(sa_column=enum_column(PlaceKind, "place_kind"))
    source_qr_version: int
    created_at: datetime = Field(default_factory=utcnow, index=True)
    verified_at: datetime
    decided_at: datetime | None = Field(default=None, index=True)
    decided_by_id: int | None = Field(default=None, foreign_key="user.id")
    reject_reason: str | None = Field(default=None, max_length=500)
    member_number: str | None = Field(default=None, max_length=40, unique=True)
    source: MemberSource = Field(
        default=MemberSource.join,
        sa_column=Column(
            Enum(
                MemberSource,
                name="member_source",
                native_enum=False,
                create_constraint=True,
                length=32,
                values_callable=lambda source: [m.value for m in source],  # "import" is a keyword
            ),
            nullable=False,
            server_default=MemberSource.join.value,
        ),
    )


class JoinAttempt(CodeState, table=True):
    """A submitted form waiting for its SMS code (the draft); deleted by retention."""

    __tablename__ = "join_attempt"

    form_key: str = Field(max_length=64, unique=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    workplace_id: int | None = Field(default=None, foreign_key="workplace.id")
    source_kind: PlaceKind = Field(sa_column=enum_column(PlaceKind, "place_kind"))
    source_qr_version: int
    name_enc: str
    platform: Platform = Field(sa_column=enum_column(Platform, "platform"))
    consent_version: str = Field(max_length=32)
    consent_at: datetime
    member_id: int | None = Field(default=None, foreign_key="member.id", ondelete="SET NULL")
    outcome: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    role: Role = Field(sa_column=enum_column(Role, "role"))
    active: bool = Field(default=True)
    # Bumped on sign-out, password change or deactivation: every older session stops working.
    session_version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None
    # Consecutive failed sign-ins; at the hard limit the account locks until an admin resets it.
    failed_logins: int = Field(default=0)
    locked_at: datetime | None = None
    # TOTP second factor (docs/security.md D3): the secret as field-encrypted ciphertext, never in clear.
    # None means not enrolled: the account must enrol at its next sign-in before reaching any page.
    totp_secret_enc: str | None = None
    totp_enrolled_at: datetime | None = None
    # The newest time step accepted: a code of this step or an older one is refused (replay).
    totp_last_step: int | None = None
    # A secret shown during enrolment but not yet confirmed with a code (also encrypted).
    totp_pending_enc: str | None = None
    # SHA-256 of the nonce in the one live set-up link (app/services/staff_setup.py); None once used.
    setup_hash: str | None = Field(default=None, max_length=64)


class RecoveryCode(SQLModel, table=True):
    """A one-time recovery code for the second factor: only its SHA-256 is stored."""

    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None


class UserDistrict(SQLModel, table=True):
    """The districts a non-admin user may act in."""

    __tablename__ = "user_district"
    __table_args__ = (UniqueConstraint("user_id", "district_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    district_id: int = Field(foreign_key="district.id", index=True, ondelete="CASCADE")


class AuditEvent(SQLModel, table=True):
    """Who did what to which record. Ids and codes only: never a name or a phone."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: int | None = Field(default=None, foreign_key="user.id")
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    details: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token for /api/v1; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    # "read" (GET only) or "write" (everything the user's role allows); after expires_at it stops working.
    scope: str = Field(default="write", max_length=16, sa_column_kwargs={"server_default": "write"})
    expires_at: datetime | None = None


class PlaceStat(SQLModel, table=True):
    """The funnel of one poster (place and token version) on one day. No personal data."""

    __tablename__ = "place_stat"
    __table_args__ = (UniqueConstraint("place_kind", "place_id", "qr_version", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    place_kind: PlaceKind = Field(sa_column=enum_column(PlaceKind, "place_kind"))
    place_id: int = Field(index=True)
    qr_version: int
    day: date
    scans: int = Field(default=0)
    forms: int = Field(default=0)
    verified: int = Field(default=0)
    joins: int = Field(default=0)


class SmsOptOut(SQLModel, table=True):
    """A phone (by blind index) that told the provider to stop (Twilio 21610, STOP, 退订)."""

    __tablename__ = "sms_opt_out"

    phone_index: str = Field(primary_key=True, max_length=64)
    at: datetime = Field(default_factory=utcnow)


class StatusCheck(CodeState, table=True):
    """A worker proving their phone by SMS code to see their application's status (server-side tries)."""

    __tablename__ = "status_check"

    created_at: datetime = Field(default_factory=utcnow, index=True)
