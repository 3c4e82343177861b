"""The district roster: filtered, scoped, keyset-paged member lists and exactly-once decisions.

Scoping lives in every query (`district_id IN scope`), so a member of another district is
simply not found. Names are encrypted, so a name search decrypts rows batch by batch in
keyset order; every other filter runs in SQL. Services flush, never commit.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from app.models import AuditEvent, District, Member, MemberStatus, Platform, User, Workplace, utcnow
from app.services import audit
from app.services.crypto import PiiCipher
from app.services.phones import PhoneInvalid, normalize

DEFAULT_OVERDUE_DAYS = 15
MAX_LIMIT = 500
SCAN_BATCH = 500
SORTS = ("applied", "decided")
MAX_REASON = 500


class RosterError(Exception):
    """Base of the roster's domain errors."""


class BadCursor(RosterError):
    """The cursor is not one this service made (or was made for another sort)."""


class BadFilter(RosterError):
    def __init__(self, field_name: str) -> None:
        super().__init__(f"bad value for {field_name}")
        self.field = field_name


class MemberNotFound(RosterError):
    """No such member in the caller's scope."""


class ReasonRequired(RosterError):
    """A rejection needs a reason of 1 to 500 characters."""


class AlreadyDecided(RosterError):
    """Someone decided first; says who and when."""

    def __init__(self, by_email: str | None, at: datetime | None, status: str | None = None) -> None:
        super().__init__(f"already decided by {by_email} at {at}")
        self.by_email = by_email
        self.at = at
        self.status = status


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
                out["q"] = _query_kind(value)
            elif isinstance(value, datetime):
                out[key] = value.isoformat()
            else:
                out[key] = getattr(value, "value", value)
        return out


@dataclass
class MemberView:
    id: int
    name: str
    phone: str
    platform: str
    workplace: str | None
    workplace_name: str | None
    district: str
    status: str
    member_number: str | None
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reject_reason: str | None
    age_days: int
    overdue: bool


@dataclass
class Page:
    items: list[MemberView] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass
class Changes:
    marker: str
    changed: bool
    member_ids: list[int] = field(default_factory=list)


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
        if not recent.isdigit() or not 0 < int(recent) <= 3660:
            raise BadFilter("recent")
        flt.recent_days = int(recent)
    flt.sort = args.get("sort") or "applied"
    if flt.sort not in SORTS:
        raise BadFilter("sort")
    flt.overdue = (args.get("overdue") or "") in ("1", "true", "on", "yes")
    return flt


def _enum_arg(args: Mapping[str, str], name: str, enum_cls):  # type: ignore[no-untyped-def]
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


def _query_kind(q: str) -> str:
    text = q.strip()
    if len(text) == 4 and text.isdigit():
        return "last4"
    if _as_phone(text):
        return "phone"
    return "name"


def _as_phone(text: str) -> str | None:
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) < 11 or not digits.lstrip("+").isdigit():
        return None
    try:
        return normalize(digits, ["CN", "HK", "MO"])
    except PhoneInvalid:
        return None


# --- queries ---------------------------------------------------------------------------------

Decider = aliased(User)


def _base_query(scope: list[int] | None):  # type: ignore[no-untyped-def]
    stmt = (
        select(Member, District.code, Workplace.code, Workplace.name, Decider.email)
        .join(District, District.id == Member.district_id)
        .outerjoin(Workplace, Workplace.id == Member.workplace_id)
        .outerjoin(Decider, Decider.id == Member.decided_by_id)
    )
    return stmt.where(*_scope_clause(scope))


def _scope_clause(scope: list[int] | None) -> list[ColumnElement[bool]]:
    return [] if scope is None else [Member.district_id.in_(scope)]  # type: ignore[attr-defined]


def _sql_filters(flt: RosterFilter, pii: PiiCipher, now: datetime, *, with_status: bool = True) -> list:  # type: ignore[type-arg]
    clauses: list = []  # type: ignore[type-arg]
    if with_status and flt.status is not None:
        clauses.append(Member.status == flt.status)
    if flt.platform is not None:
        clauses.append(Member.platform == flt.platform)
    if flt.workplace:
        clauses.append(Workplace.code == flt.workplace)
    if flt.district:
        clauses.append(District.code == flt.district)
    if flt.since is not None:
        clauses.append(Member.created_at >= flt.since)
    if flt.recent_days:
        clauses.append(Member.created_at >= now - timedelta(days=flt.recent_days))
    if flt.overdue:
        clauses.append(Member.status == MemberStatus.pending)
        clauses.append(Member.created_at <= now - timedelta(days=flt.overdue_days))
    clauses.extend(_query_clause(flt.q, pii))
    return clauses


def _query_clause(q: str | None, pii: PiiCipher) -> list:  # type: ignore[type-arg]
    if not q:
        return []
    kind = _query_kind(q)
    if kind == "last4":
        return [Member.phone_last4_index == pii.index(q.strip(), purpose="last4")]
    if kind == "phone":
        return [Member.phone_index == pii.index(_as_phone(q.strip()) or "")]
    return []  # a name: matched after decryption


def _name_needle(q: str | None) -> str | None:
    return q.strip().casefold() if q and _query_kind(q) == "name" else None


def _order(sort: str) -> list:  # type: ignore[type-arg]
    if sort == "decided":
        return [Member.decided_at.is_(None), Member.decided_at.desc(), Member.id.desc()]  # type: ignore[union-attr, attr-defined]
    return [Member.created_at.desc(), Member.id.desc()]  # type: ignore[attr-defined]


def _after(sort: str, key: list[object]) -> ColumnElement[bool]:
    """Rows strictly after the cursor's key in the sort order."""
    if sort == "decided":
        is_null, at, member_id = key
        if is_null:
            return and_(Member.decided_at.is_(None), Member.id < member_id)  # type: ignore[union-attr, operator]
        return or_(
            Member.decided_at.is_(None),  # type: ignore[union-attr]
            Member.decided_at < at,  # type: ignore[operator]
            and_(Member.decided_at == at, Member.id < member_id),  # type: ignore[operator]
        )
    at, member_id = key
    return or_(Member.created_at < at, and_(Member.created_at == at, Member.id < member_id))  # type: ignore[operator]


def _key(sort: str, member: Member) -> list[object]:
    if sort == "decided":
        return [member.decided_at is None, member.decided_at, member.id]
    return [member.created_at, member.id]


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


def _view(row, pii: PiiCipher, now: datetime, overdue_days: int) -> MemberView:  # type: ignore[no-untyped-def]
    member, district_code, workplace_code, workplace_name, decided_by = row
    age = max(0, (now - member.created_at).days)
    pending = member.status is MemberStatus.pending
    return MemberView(
        id=member.id, name=pii.decrypt(member.name_enc), phone=pii.decrypt(member.phone_enc),
        platform=member.platform.value, workplace=workplace_code, workplace_name=workplace_name,
        district=district_code, status=member.status.value, member_number=member.member_number,
        created_at=member.created_at, decided_at=member.decided_at, decided_by=decided_by,
        reject_reason=member.reject_reason, age_days=age, overdue=pending and age >= overdue_days,
    )


def iter_members(
    session: Session, pii: PiiCipher, scope: list[int] | None, flt: RosterFilter, *,
    cursor: str | None = None, now: datetime | None = None, batch: int | None = None,
) -> Iterator[tuple[MemberView, list[object]]]:
    """Every matching member in sort order with its keyset key, read in batches (flat memory)."""
    now, batch = now or utcnow(), batch or SCAN_BATCH
    if flt.sort not in SORTS:
        raise BadFilter("sort")
    key = decode_cursor(flt.sort, cursor) if cursor else None
    needle = _name_needle(flt.q)
    base = _base_query(scope).where(*_sql_filters(flt, pii, now)).order_by(*_order(flt.sort))
    while True:
        stmt = base if key is None else base.where(_after(flt.sort, key))
        rows = session.execute(stmt.limit(batch)).all()
        for row in rows:
            key = _key(flt.sort, row[0])
            view = _view(row, pii, now, flt.overdue_days)
            if needle is None or needle in view.name.casefold():
                yield view, key
        if len(rows) < batch:
            return


def list_members(
    session: Session, pii: PiiCipher, scope: list[int] | None, flt: RosterFilter, *,
    cursor: str | None, limit: int, now: datetime | None = None,
) -> Page:
    """One page of the roster; `next_cursor` continues after its last row (None at the end)."""
    limit = max(1, min(limit, MAX_LIMIT))
    page = Page()
    batch = limit + 1 if _name_needle(flt.q) is None else SCAN_BATCH
    last_key: list[object] | None = None
    for view, key in iter_members(session, pii, scope, flt, cursor=cursor, now=now, batch=batch):
        if len(page.items) == limit:
            page.next_cursor = encode_cursor(flt.sort, last_key or [])
            break
        page.items.append(view)
        last_key = key
    return page


def get_member(session: Session, pii: PiiCipher, scope: list[int] | None, member_id: int, *,
               now: datetime | None = None, overdue_days: int = DEFAULT_OVERDUE_DAYS) -> MemberView:
    row = session.execute(_base_query(scope).where(Member.id == member_id)).first()
    if row is None:
        raise MemberNotFound()
    return _view(row, pii, now or utcnow(), overdue_days)


def counts(session: Session, scope: list[int] | None, flt: RosterFilter, *, pii: PiiCipher | None = None,
           now: datetime | None = None) -> dict[str, int]:
    """Members per status under the filter (its status ignored): the numbers on the tabs."""
    now = now or utcnow()
    result = {status.value: 0 for status in MemberStatus}
    needle = _name_needle(flt.q)
    if flt.q and pii is None:
        raise BadFilter("q")  # a search needs the cipher (index or decryption)
    clauses = _sql_filters(flt, pii, now, with_status=False)  # type: ignore[arg-type]
    joined = (select(Member.status, Member.name_enc if needle else func.count())
              .join(District, District.id == Member.district_id)
              .outerjoin(Workplace, Workplace.id == Member.workplace_id)
              .where(*_scope_clause(scope), *clauses))
    if needle is None:
        for status, number in session.execute(joined.group_by(Member.status)):
            result[status.value] = number
        return result
    for status, name_enc in session.execute(joined.execution_options(yield_per=SCAN_BATCH)):
        if needle in pii.decrypt(name_enc).casefold():  # type: ignore[union-attr]
            result[status.value] += 1
    return result


def overdue_count(session: Session, scope: list[int] | None, *, now: datetime, overdue_days: int) -> int:
    stmt = select(func.count()).select_from(Member).where(
        *_scope_clause(scope), Member.status == MemberStatus.pending,
        Member.created_at <= now - timedelta(days=overdue_days),
    )
    return int(session.execute(stmt).scalar_one())


# --- live updates ----------------------------------------------------------------------------

def current_marker(session: Session) -> str:
    """The newest audit event id: every change to a member writes one."""
    return str(session.execute(select(func.coalesce(func.max(AuditEvent.id), 0))).scalar_one())


def changes_since(session: Session, scope: list[int] | None, since_marker: str | None) -> Changes:
    """Members changed (applied, decided, withdrawn) in scope after the marker."""
    if not since_marker or not since_marker.isdigit():
        return Changes(marker=current_marker(session), changed=True)
    stmt = (select(AuditEvent.id, AuditEvent.target_id, AuditEvent.details)
            .where(AuditEvent.id > int(since_marker), AuditEvent.target_type == "member")
            .order_by(AuditEvent.id).limit(1000))
    marker, ids = int(since_marker), []
    for event_id, target_id, details in session.execute(stmt):
        marker = event_id
        district_id = (details or {}).get("district_id")
        if (scope is None or district_id in scope) and target_id and str(target_id).isdigit():
            ids.append(int(target_id))
    return Changes(marker=str(marker), changed=bool(ids), member_ids=ids)


# --- decisions -------------------------------------------------------------------------------

def _decide(session: Session, scope: list[int] | None, member_id: int, values: dict[str, object]) -> Member:
    stmt = (update(Member)
            .where(Member.id == member_id, Member.status == MemberStatus.pending, *_scope_clause(scope))
            .values(**values)
            .execution_options(synchronize_session=False))
    if session.execute(stmt).rowcount == 1:  # type: ignore[attr-defined]
        return _fresh(session, member_id)
    member = session.execute(select(Member).where(Member.id == member_id, *_scope_clause(scope))
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if member is None:
        raise MemberNotFound()
    decider = session.get(User, member.decided_by_id) if member.decided_by_id else None
    raise AlreadyDecided(decider.email if decider else None, member.decided_at, member.status.value)


def _fresh(session: Session, member_id: int) -> Member:
    return session.execute(select(Member).where(Member.id == member_id)
                           .execution_options(populate_existing=True)).scalar_one()


def approve(session: Session, scope: list[int] | None, member_id: int, *, by: User, now: datetime) -> Member:
    """Approve a pending member exactly once and give them the district's next member number."""
    member = _decide(session, scope, member_id, {
        "status": MemberStatus.approved, "decided_at": now, "decided_by_id": by.id, "reject_reason": None,
    })
    seq = session.execute(
        update(District).where(District.id == member.district_id)
        .values(member_seq=District.member_seq + 1).returning(District.member_seq, District.code)
    ).one()
    number = member_number(seq[1], seq[0])
    session.execute(update(Member).where(Member.id == member_id).values(member_number=number)
                    .execution_options(synchronize_session=False))
    audit.record(session, "member.approve", target_type="member", target_id=member_id, actor_id=by.id,
                 district_id=member.district_id)
    return _fresh(session, member_id)


def member_number(district_code: str, seq: int) -> str:
    return f"{district_code}-{seq:06d}"


def reject(session: Session, scope: list[int] | None, member_id: int, *, by: User, reason: str,
           now: datetime) -> Member:
    """Reject a pending member exactly once, with the reason the worker will read."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise ReasonRequired()
    member = _decide(session, scope, member_id, {
        "status": MemberStatus.rejected, "decided_at": now, "decided_by_id": by.id, "reject_reason": reason,
    })
    audit.record(session, "member.reject", target_type="member", target_id=member_id, actor_id=by.id,
                 district_id=member.district_id)
    return member


@dataclass
class RowResult:
    member_id: int
    outcome: str  # "approved", "rejected", "already_decided", "not_found", "error"
    member: Member | None = None
    by_email: str | None = None
    at: datetime | None = None


def decide_many(session: Session, scope: list[int] | None, member_ids: list[int], *, by: User, approve_all: bool,
                reason: str = "", now: datetime) -> list[RowResult]:
    """Bulk decision with one result per row; rows decided by someone else are reported, not touched."""
    reason = (reason or "").strip()
    if not approve_all and not 0 < len(reason) <= MAX_REASON:
        raise ReasonRequired()
    results: list[RowResult] = []
    for member_id in dict.fromkeys(member_ids):
        try:
            with session.begin_nested():
                if approve_all:
                    member = approve(session, scope, member_id, by=by, now=now)
                else:
                    member = reject(session, scope, member_id, by=by, reason=reason, now=now)
            results.append(RowResult(member_id, member.status.value, member))
        except AlreadyDecided as exc:
            results.append(RowResult(member_id, "already_decided", by_email=exc.by_email, at=exc.at))
        except MemberNotFound:
            results.append(RowResult(member_id, "not_found"))
    return results


def decision_text(locale: str, link: str) -> str:
    """The decision SMS: neutral (no union, no outcome on a lock screen), with the status link."""
    if locale.startswith("en"):
        return f"There is an update on your application. See it here: {link}"
    return f"您提交的申请有了新进展，请点击查看：{link}"


# --- the audit log ---------------------------------------------------------------------------

@dataclass
class AuditFilter:
    action: str | None = None
    actor: str | None = None  # email
    target_type: str | None = None
    target_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class AuditRow:
    id: int
    at: datetime
    actor: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, object]


def list_audit(
    session: Session, flt: AuditFilter, *, before: int | None, limit: int
) -> tuple[list[AuditRow], int | None]:
    """Newest first, keyset-paged by id; returns the rows and the id to continue before."""
    actor = aliased(User)
    stmt = (select(AuditEvent, actor.email).outerjoin(actor, actor.id == AuditEvent.actor_id)
            .order_by(AuditEvent.id.desc()).limit(limit + 1))  # type: ignore[union-attr]
    conditions = [
        (flt.action, lambda v: AuditEvent.action.startswith(v)),  # type: ignore[attr-defined]
        (flt.actor, lambda v: actor.email == v.strip().lower()),
        (flt.target_type, lambda v: AuditEvent.target_type == v),
        (flt.target_id, lambda v: AuditEvent.target_id == v),
        (flt.start, lambda v: AuditEvent.at >= v),
        (flt.end, lambda v: AuditEvent.at < v),
        (before, lambda v: AuditEvent.id < v),
    ]
    for value, clause in conditions:
        if value:
            stmt = stmt.where(clause(value))
    rows = [AuditRow(e.id, e.at, email, e.action, e.target_type, e.target_id, e.details)
            for e, email in session.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
