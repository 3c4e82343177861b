"""What the tables share: the clock, the enumerations stored as strings, and the state mixins."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Enum
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


def _enum(enum_cls: type[enum.Enum], name: str) -> Column[Any]:
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
