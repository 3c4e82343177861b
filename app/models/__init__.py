"""Tables and input models.

Times are timezone-aware UTC (`utcnow()`); SQLModel's UTCDateTime keeps them so on SQLite too. Names and phones are
never stored in clear: `*_enc` columns hold AES-256-GCM ciphertext (app/services/crypto.py) and `phone_index` an HMAC
(blind index) used for lookups and uniqueness.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, Column, Enum, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.base import (
    CodeState,
    MemberSource,
    MemberStatus,
    PlaceKind,
    Platform,
    QrState,
    Role,
    WorkplaceKind,
    _enum,
    utcnow,
)
from app.models.counts import DistrictCount as DistrictCount


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
    kind: WorkplaceKind = Field(default=WorkplaceKind.other, sa_column=_enum(WorkplaceKind, "workplace_kind"))
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
    platform: Platform = Field(sa_column=_enum(Platform, "platform"))
    status: MemberStatus = Field(default=MemberStatus.pending, sa_column=_enum(MemberStatus, "member_status"))
    consent_version: str = Field(max_length=32)
    consent_at: datetime
    source_kind: PlaceKind = Field(sa_column=_enum(PlaceKind, "place_kind"))
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
    source_kind: PlaceKind = Field(sa_column=_enum(PlaceKind, "place_kind"))
    source_qr_version: int
    name_enc: str
    platform: Platform = Field(sa_column=_enum(Platform, "platform"))
    consent_version: str = Field(max_length=32)
    consent_at: datetime
    member_id: int | None = Field(default=None, foreign_key="member.id", ondelete="SET NULL")
    outcome: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    role: Role = Field(sa_column=_enum(Role, "role"))
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
    place_kind: PlaceKind = Field(sa_column=_enum(PlaceKind, "place_kind"))
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


class Delivery(SQLModel, table=True):
    """A side effect the database owes someone (the transactional outbox): written in the same
    transaction as the change that asks for it, deleted once done (app/services/tasks.py).

    `due_at` is when a sweep may hand it to a consumer: a little after the commit for a new row
    (the commit's own wake-up normally comes first), the end of the lease while a consumer holds
    it, the next try after a temporary failure."""

    __tablename__ = "delivery"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # "join_code", "notice"
    owner_id: str = Field(max_length=64)  # the join attempt's or the member's id
    code_enc: str | None = None  # a join code, encrypted like names; None when the provider makes it
    attempts: int = Field(default=0)
    due_at: datetime = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)

    __table_args__ = (Index("ix_delivery_kind_owner", "kind", "owner_id"),)


class WebhookEndpoint(SQLModel, table=True):
    """A receiver of signed event POSTs (Standard Webhooks). Its secret is stored encrypted."""

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # None: every district's events; else only this district's.
    district_id: int | None = Field(default=None, foreign_key="district.id", index=True, ondelete="CASCADE")
    secret_enc: str
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: the body sent (ids, codes, times: no name or phone) and how it went.
    `id` is the `webhook-id` header, the same on every retry, so a receiver can drop repeats."""

    __tablename__ = "webhook_delivery"

    id: str = Field(primary_key=True, max_length=40)
    endpoint_id: int = Field(foreign_key="webhook_endpoint.id", index=True, ondelete="CASCADE")
    member_id: int = Field(index=True)  # whom it tells of; no foreign key: a withdrawn member's row goes, its log stays
    event_type: str = Field(max_length=40)
    payload: str
    status: str = Field(default="pending", max_length=16)  # pending, delivered, failed
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


class ChatRobot(SQLModel, table=True):
    """A district's WeCom (企业微信) or DingTalk group robot; its URL (which holds the robot's key)
    and DingTalk's signing secret are stored encrypted."""

    __tablename__ = "chat_robot"

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=16)  # wecom, dingtalk
    url_enc: str
    secret_enc: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class TransferStatus(enum.StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class Transfer(SQLModel, table=True):
    """An approved member's move to another district (会员关系转接), asked by the worker or an official.

    Decided once by the receiving district. The member row keeps its id and join date; on approval
    its district, station and member number change, and this row keeps both numbers (the history).
    """

    __table_args__ = (Index("ix_transfer_to_status_created", "to_district_id", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True, ondelete="CASCADE")
    from_district_id: int = Field(foreign_key="district.id", index=True)
    to_district_id: int = Field(foreign_key="district.id")
    to_workplace_id: int | None = Field(default=None, foreign_key="workplace.id")
    status: TransferStatus = Field(default=TransferStatus.pending, sa_column=_enum(TransferStatus, "transfer_status"))
    # The member's id while pending, NULL once decided: unique, so a member has at most one pending
    # transfer on both databases (NULLs never collide) without a partial index.
    open_member_id: int | None = Field(default=None, unique=True)
    started_by: str = Field(max_length=16)  # "worker" (a poster of the new district) or "official"
    requested_by_id: int | None = Field(default=None, foreign_key="user.id")
    reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    decided_by_id: int | None = Field(default=None, foreign_key="user.id")
    reject_reason: str | None = Field(default=None, max_length=500)
    from_member_number: str | None = Field(default=None, max_length=40)
    to_member_number: str | None = Field(default=None, max_length=40)
