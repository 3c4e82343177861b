"""What a roster list asks for: the filter (from query-string arguments), its audit shape, and the
keyset cursor that continues a list. Parsing only: no database here.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TypeVar

from app.models import MemberStatus, Platform
from app.services import numbers
from app.services.phones import PhoneInvalid, normalize
from app.services.roster.errors import BadCursor, BadFilter

DEFAULT_OVERDUE_DAYS = 15
SORTS = ("applied", "decided")


@dataclass
class RosterFilter:
    status: MemberStatus | None = None
    workplace: str | None = None
    platform: Platform | None = None
    q: str | None = None
    since: datetime | None = None
    recent_days: int | None = None
    district: str | None = None
    sort: str = "applied"
    overdue: bool = False
    overdue_days: int = DEFAULT_OVERDUE_DAYS

    def describe(self) -> dict[str, object]:
        """The filter for an audit event: no search text (it may be a name), only its kind."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            if value in (None, False) or key == "overdue_days":
                continue
            if key == "q":
                out["q"] = query_kind(value)
            elif isinstance(value, datetime):
                out[key] = value.isoformat()
            else:
                out[key] = getattr(value, "value", value)
        return out


def filter_from_args(args: Mapping[str, str], *, overdue_days: int = DEFAULT_OVERDUE_DAYS) -> RosterFilter:
    """Parse query-string style arguments (shared by the roster pages and the API)."""
    flt = RosterFilter(overdue_days=overdue_days)
    flt.status = _enum_arg(args, "status", MemberStatus)
    flt.platform = _enum_arg(args, "platform", Platform)
    flt.workplace = _text_arg(args, "workplace", 32)
    flt.district = _text_arg(args, "district", 32)
    flt.q = _text_arg(args, "q", 100)
    flt.since = _since_arg(args)
    recent = args.get("recent") or args.get("recent_days") or ""
    if recent:
        if not numbers.digits(recent) or not 0 < int(recent) <= 3660:
            raise BadFilter("recent")
        flt.recent_days = int(recent)
    flt.sort = args.get("sort") or "applied"
    if flt.sort not in SORTS:
        raise BadFilter("sort")
    flt.overdue = (args.get("overdue") or "") in ("1", "true", "on", "yes")
    return flt


E = TypeVar("E", bound=enum.Enum)


def _enum_arg(args: Mapping[str, str], name: str, enum_cls: type[E]) -> E | None:
    raw = args.get(name) or ""
    if not raw or raw == "all":
        return None
    try:
        return enum_cls(raw)
    except ValueError as exc:
        raise BadFilter(name) from exc


def _text_arg(args: Mapping[str, str], name: str, max_len: int) -> str | None:
    raw = (args.get(name) or "").strip()
    if len(raw) > max_len:
        raise BadFilter(name)
    return raw or None


def _since_arg(args: Mapping[str, str]) -> datetime | None:
    raw = (args.get("since") or "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadFilter("since") from exc
    if value.tzinfo is None:
        raise BadFilter("since")
    return value


def query_kind(q: str) -> str:
    text = q.strip()
    if len(text) == 4 and numbers.digits(text):
        return "last4"
    if as_phone(text):
        return "phone"
    return "name"


def as_phone(text: str) -> str | None:
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) < 11 or not numbers.digits(digits.lstrip("+")):
        return None
    try:
        return normalize(digits, ["CN", "HK", "MO"])
    except PhoneInvalid:
        return None


def encode_cursor(sort: str, key: list[object]) -> str:
    parts = [sort, *[v.isoformat() if isinstance(v, datetime) else v for v in key]]
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> list[object]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor() from exc
    if not isinstance(parts, list) or not parts or parts[0] != sort:
        raise BadCursor()
    try:
        return _parse_key(sort, parts[1:])
    except (TypeError, ValueError) as exc:
        raise BadCursor() from exc


def _parse_key(sort: str, parts: list[object]) -> list[object]:
    if sort == "decided":
        is_null, at, member_id = parts
        if not isinstance(is_null, bool):
            raise ValueError("flag")
        return [is_null, None if is_null else _aware(at), _int(member_id)]
    at, member_id = parts
    return [_aware(at), _int(member_id)]


def _aware(value: object) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("naive")
    return parsed


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("id")
    return value
