"""Roster lists: filtered, scoped, keyset-paged members, a page at a time or row after row.

Scoping lives in every query (`district_id IN scope`), so a member of another district is
simply not found. Rows are plain column tuples, not ORM objects. The orders match the indexes
of migration 0003: one district's list (optionally one status) walks
`(district_id, status, created_at, id)` or `(district_id, created_at, id)` and stops after a
page; a scope of several districts asks each district for a page and merges them (one
`UNION ALL`), since no single index is ordered across a set of districts. Every filter runs in
SQL: a name is found by its keyed index (`member.name_index`, app/services/names.py), a phone
by `phone_index`, its last four digits by `phone_last4_index`; only the rows shown are
decrypted. The tabs' counts come from the counters the database keeps (`district_count`) when
nothing but districts narrows them (`tabs`). Read-only: nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, union_all
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.models import AuditEvent, District, Member, MemberStatus, User, Workplace, utcnow
from app.services import deadlines, names, numbers
from app.services.crypto import PiiCipher
from app.services.roster.errors import BadFilter, MemberNotFound
from app.services.roster.filters import (
    DEFAULT_OVERDUE_DAYS,
    SORTS,
    RosterFilter,
    as_phone,
    decode_cursor,
    encode_cursor,
    query_kind,
)

MAX_LIMIT = 500
SCAN_BATCH = 500
# Up to this many districts in scope, a list merges one ordered page per district.
MERGE_MAX_DISTRICTS = 32

Decider = aliased(User)

# What a MemberView shows, in its field order (age and overdue are computed).
VIEW_COLUMNS: tuple[Any, ...] = (
    Member.id,
    Member.name_enc,
    Member.phone_enc,
    Member.platform,
    col(Workplace.code).label("workplace"),
    col(Workplace.name).label("workplace_name"),
    col(District.code).label("district"),
    Member.status,
    Member.member_number,
    Member.created_at,
    Member.decided_at,
    col(Decider.email).label("decided_by"),
    Member.reject_reason,
)
_ID, _CREATED, _DECIDED = 0, 9, 10


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


# --- the statements ----------------------------------------------------------------------------


def joined(*columns: Any) -> Select[Any]:
    """`columns` of members with their district, workplace and decider."""
    return (
        select(*columns)
        .select_from(Member)
        .join(District, col(District.id) == col(Member.district_id))
        .outerjoin(Workplace, col(Workplace.id) == col(Member.workplace_id))
        .outerjoin(Decider, col(Decider.id) == col(Member.decided_by_id))
    )


def scope_clause(scope: list[int] | None) -> list[ColumnElement[bool]]:
    return [] if scope is None else [col(Member.district_id).in_(scope)]


def sql_filters(
    flt: RosterFilter, pii: PiiCipher | None, now: datetime, *, with_status: bool = True
) -> list[ColumnElement[bool]]:
    clauses: list[Any] = []
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
        clauses.append(Member.created_at < deadlines.overdue_cutoff(now, flt.overdue_days))  # working days
    clauses.extend(_query_clause(flt.q, pii))
    return clauses


def _query_clause(q: str | None, pii: PiiCipher | None) -> list[Any]:
    if not q or pii is None:
        return []
    kind = query_kind(q)
    if kind == "last4":
        return [Member.phone_last4_index == pii.index(q.strip(), purpose="last4")]
    if kind == "phone":
        return [Member.phone_index == pii.index(as_phone(q.strip()) or "")]
    key = names.index(pii, q)
    return [col(Member.name_index) == key] if key else [false()]


def order(sort: str, c: Any = Member) -> list[Any]:
    """The ORDER BY of a sort (or of one phase of it) on `c`: the Member table, or a subquery with
    its column names. "decided" is decided rows newest first, then undecided ones newest first."""
    if sort == "decided":
        return [c.decided_at.is_(None), c.decided_at.desc(), c.id.desc()]
    if sort == "decided_at":
        return [c.decided_at.desc(), c.id.desc()]
    if sort == "id":
        return [c.id.desc()]
    return [c.created_at.desc(), c.id.desc()]


def _next(sort: str, key: list[Any] | None) -> tuple[list[ColumnElement[bool]], str]:
    """The rows after `key` in sort order, as (WHERE terms, the phase's order).

    A list by decision time reads in two phases, each in an index's order: decided rows by
    decided_at (then id), then undecided rows by id; `[True, None, None]` starts the second."""
    if sort != "decided":
        return ([] if key is None else [_after(key[0], key[1], Member.created_at)]), sort
    if key is None or not key[0]:
        terms: list[ColumnElement[bool]] = [col(Member.decided_at).is_not(None)]
        return (terms if key is None else [*terms, _after(key[1], key[2], Member.decided_at)]), "decided_at"
    return [col(Member.decided_at).is_(None), *([] if key[2] is None else [col(Member.id) < key[2]])], "id"


def _after(at: Any, member_id: int, column: Any) -> ColumnElement[bool]:
    """Rows strictly after (at, member_id) in (column, id) descending order.

    The first term repeats what the OR implies: it is the range an index scan can start from
    (PostgreSQL otherwise walks the index from the newest row and filters)."""
    return and_(column <= at, or_(column < at, and_(column == at, col(Member.id) < member_id)))


def _key(sort: str, row: Any) -> list[Any]:
    if sort == "decided":
        return [row[_DECIDED] is None, row[_DECIDED], row[_ID]]
    return [row[_CREATED], row[_ID]]


def ordered(
    scope: list[int] | None,
    clauses: list[Any],
    sort: str,
    limit: int,
    columns: tuple[Any, ...] = VIEW_COLUMNS,
    *,
    merge: bool = True,
) -> Select[Any]:
    """The first `limit` rows in sort order; several districts: a page from each, merged.

    `merge=False` (a search by name or phone, which an index narrows to a few rows) asks once."""
    if not merge or scope is None or not 1 < len(scope) <= MERGE_MAX_DISTRICTS:
        return joined(*columns).where(*scope_clause(scope), *clauses).order_by(*order(sort)).limit(limit)
    arms = [
        select(
            joined(*columns)
            .where(col(Member.district_id) == district_id, *clauses)
            .order_by(*order(sort))
            .limit(limit)
            .subquery()
        )
        for district_id in sorted(set(scope))
    ]
    merged = union_all(*arms).subquery()
    return select(merged).order_by(*order(sort, merged.c)).limit(limit)


# --- reading -----------------------------------------------------------------------------------


def _view(row: Any, name: str, pii: PiiCipher, now: datetime, overdue_days: int) -> MemberView:
    (
        member_id,
        _name_enc,
        phone_enc,
        platform,
        workplace,
        workplace_name,
        district,
        status,
        number,
        created_at,
        decided_at,
        decided_by,
        reason,
    ) = row
    age = max(0, (now - created_at).days)
    return MemberView(
        id=member_id,
        name=name,
        phone=pii.decrypt(phone_enc),
        platform=platform.value,
        workplace=workplace,
        workplace_name=workplace_name,
        district=district,
        status=status.value,
        member_number=number,
        created_at=created_at,
        decided_at=decided_at,
        decided_by=decided_by,
        reject_reason=reason,
        age_days=age,
        overdue=status is MemberStatus.pending and deadlines.is_overdue(created_at, now, overdue_days),
    )


def iter_members(
    session: Session,
    pii: PiiCipher,
    scope: list[int] | None,
    flt: RosterFilter,
    *,
    cursor: str | None = None,
    now: datetime | None = None,
    batch: int | None = None,
) -> Iterator[tuple[MemberView, list[object]]]:
    """Every matching member in sort order with its keyset key, read in batches (flat memory)."""
    now, batch = now or utcnow(), batch or SCAN_BATCH
    if flt.sort not in SORTS:
        raise BadFilter("sort")
    key = decode_cursor(flt.sort, cursor) if cursor else None
    clauses = sql_filters(flt, pii, now)
    merge = not flt.q  # a search's index (name, phone, last four digits) narrows it to a few rows
    while True:
        after, phase = _next(flt.sort, key)
        rows = session.execute(ordered(scope, [*clauses, *after], phase, batch, merge=merge)).all()
        for row in rows:
            key = _key(flt.sort, row)
            yield _view(row, pii.decrypt(row[1]), pii, now, flt.overdue_days), key
        if len(rows) == batch:
            continue
        if phase != "decided_at":
            return
        key = [True, None, None]  # the decided rows are done: the undecided ones follow


def list_members(
    session: Session,
    pii: PiiCipher,
    scope: list[int] | None,
    flt: RosterFilter,
    *,
    cursor: str | None,
    limit: int,
    now: datetime | None = None,
) -> Page:
    """One page of the roster; `next_cursor` continues after its last row (None at the end)."""
    limit = max(1, min(limit, MAX_LIMIT))
    page = Page()
    batch = limit + 1
    last_key: list[object] | None = None
    for view, key in iter_members(session, pii, scope, flt, cursor=cursor, now=now, batch=batch):
        if len(page.items) == limit:
            page.next_cursor = encode_cursor(flt.sort, last_key or [])
            break
        page.items.append(view)
        last_key = key
    return page


def get_member(
    session: Session,
    pii: PiiCipher,
    scope: list[int] | None,
    member_id: int,
    *,
    now: datetime | None = None,
    overdue_days: int = DEFAULT_OVERDUE_DAYS,
) -> MemberView:
    row = session.execute(joined(*VIEW_COLUMNS).where(*scope_clause(scope), col(Member.id) == member_id)).first()
    if row is None:
        raise MemberNotFound()
    return _view(row, pii.decrypt(row[1]), pii, now or utcnow(), overdue_days)


# --- live updates ------------------------------------------------------------------------------


def current_marker(session: Session) -> str:
    """The newest audit event id: every change to a member writes one."""
    return str(session.execute(select(func.coalesce(func.max(AuditEvent.id), 0))).scalar_one())


def changes_since(session: Session, scope: list[int] | None, since_marker: str | None) -> Changes:
    """Members changed (applied, decided, withdrawn) in scope after the marker."""
    if not since_marker or not numbers.digits(since_marker):
        return Changes(marker=current_marker(session), changed=True)
    stmt = (
        select(col(AuditEvent.id), col(AuditEvent.target_id), col(AuditEvent.details))
        .where(col(AuditEvent.id) > int(since_marker), col(AuditEvent.target_type) == "member")
        .order_by(col(AuditEvent.id))
        .limit(1000)
    )
    marker, ids = int(since_marker), []
    for event_id, target_id, details in session.execute(stmt):
        marker = event_id
        district_id = (details or {}).get("district_id")
        if (scope is None or district_id in scope) and target_id and numbers.digits(str(target_id)):
            ids.append(int(target_id))
    return Changes(marker=str(marker), changed=bool(ids), member_ids=ids)
