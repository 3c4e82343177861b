"""The body of a webhook: Standard Webhooks' shape, ids and codes only (never a name or phone).

{"type": "member.approved", "timestamp": "2026-12-01T03:30:00Z",
 "data": {"member_id": 7, "member_number": "PD-000007", "district": "PD", "workplace": "PD-ZJ01",
          "platform": "meituan", "status": "approved", "source": "join",
          "applied_at": "…Z", "decided_at": "…Z"}}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.models import District, Member, Workplace


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def member_data(session: Session, member: Member) -> dict[str, Any]:
    """What a receiver may know of a member: ids, codes, status and times."""
    district = session.get(District, member.district_id)
    workplace = session.get(Workplace, member.workplace_id) if member.workplace_id else None
    return {
        "member_id": member.id,
        "member_number": member.member_number,
        "district": district.code if district else None,
        "workplace": workplace.code if workplace else None,
        "platform": member.platform.value,
        "status": member.status.value,
        "source": member.source.value,
        "applied_at": iso(member.created_at),
        "decided_at": iso(member.decided_at),
    }


def withdrawn_data(session: Session, member_id: int, district_id: int, now: datetime) -> dict[str, Any]:
    """A withdrawn member's row is gone: the ids the event kept, and when."""
    district = session.get(District, district_id)
    return {
        "member_id": member_id,
        "district": district.code if district else None,
        "status": "withdrawn",
        "withdrawn_at": iso(now),
    }


def body(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The JSON text sent (and signed) on every attempt of one delivery."""
    envelope = {"type": event_type, "timestamp": iso(now), "data": data}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
