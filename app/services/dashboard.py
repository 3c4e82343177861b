"""Dashboard figures: joins per day by district, station and platform; poster funnels; decisions.

Every figure is aggregated by the database (GROUP BY the local day) and scoped to the caller's
districts (None = every district, for admins). Days are dates in the configured time zone:
PostgreSQL converts with the zone's rules; SQLite adds the zone's current UTC offset (exact for
Asia/Shanghai, which has no daylight saving time).

Small counts (1 to 4) of a station, a platform or a poster could point at one worker, so
`suppress` shows them as "<5", and hides a second cell wherever a published total would let a
reader work the hidden one out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.models import District, Member, MemberStatus, PlaceKind, PlaceStat, Workplace
from app.services import deadlines, transfers

PERIODS = (30, 90)
SUPPRESS_BELOW = 5
HIDDEN = "<5"
DIMENSIONS = ("district", "workplace", "platform")
FUNNEL_STEPS = ("scans", "forms", "sent", "verified", "approved")
K = TypeVar("K", bound=Hashable)


class BadPeriod(ValueError):
    """A period other than the ones offered (30 or 90 days)."""


@dataclass(frozen=True)
class Window:
    """The last `days` local days up to today, and the UTC instant the first one starts."""

    days: int
    first: date
    last: date
    start: datetime
    zone: ZoneInfo
    now: datetime

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]


def window(now: datetime, days: int, zone: str = "Asia/Shanghai") -> Window:
    """The window of the last `days` days in `zone` (30 or 90), ending today."""
    if days not in PERIODS:
        raise BadPeriod(str(days))
    tz = ZoneInfo(zone)
    last = now.astimezone(tz).date()
    first = last - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=tz).astimezone(UTC)
    return Window(days, first, last, start, tz, now)


def suppress(cells: dict[K, int], lines: Iterable[Sequence[K]]) -> dict[K, int | str]:
    """Counts from 1 to 4 as "<5"; then, in every line whose total is published, a line with one
    hidden cell hides its smallest other cell too (repeated until nothing changes)."""
    hidden = {key for key, value in cells.items() if 0 < value < SUPPRESS_BELOW}
    lines = [list(line) for line in lines]
    changed = True
    while changed:
        changed = False
        for line in lines:
            inside = [key for key in line if key in cells]
            if sum(key in hidden for key in inside) != 1:
                continue
            shown = sorted((key for key in inside if key not in hidden), key=lambda k: (cells[k] == 0, cells[k]))
            if shown:
                hidden.add(shown[0])
                changed = True
    return {key: HIDDEN if key in hidden else value for key, value in cells.items()}


def _scope(column: Any, scope: list[int] | None) -> list[ColumnElement[bool]]:
    return [] if scope is None else [column.in_(scope)]


def local_day(session: Session, column: Any, win: Window) -> ColumnElement[str]:
    """The column's date in the window's zone as YYYY-MM-DD text, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(win.zone.key, column), "YYYY-MM-DD")
    offset = win.now.astimezone(win.zone).utcoffset() or timedelta(0)
    return func.strftime("%Y-%m-%d", column, f"{int(offset.total_seconds()):+d} seconds")


# --- joins -------------------------------------------------------------------------------------

# A station's key is (district id, station id or None): members without a station count per district.
KEY_COLUMNS = {
    "district": (col(Member.district_id),),
    "workplace": (col(Member.district_id), col(Member.workplace_id)),
    "platform": (col(Member.platform),),
}


@dataclass
class Joins:
    """Applications (members created) per local day and key of one dimension."""

    dimension: str
    daily: dict[tuple[date, Any], int] = field(default_factory=dict)
    keys: list[Any] = field(default_factory=list)

    def totals(self) -> dict[Any, int]:
        found: dict[Any, int] = defaultdict(int)
        for (_day, key), count in self.daily.items():
            found[key] += count
        return {key: found[key] for key in self.keys}

    def per_day(self, win: Window) -> dict[date, int]:
        found = dict.fromkeys(win.dates(), 0)
        for (day, _key), count in self.daily.items():
            found[day] = found.get(day, 0) + count
        return found


def joins(session: Session, scope: list[int] | None, win: Window, dimension: str) -> Joins:
    """Members who applied in the window, counted per local day and district, station or platform."""
    keys = KEY_COLUMNS[dimension]
    day = local_day(session, Member.created_at, win)
    # SQLAlchemy's own select: SQLModel's is typed for a fixed number of columns only.
    query = (
        sa_select(day, *keys, func.count())
        .where(*_scope(Member.district_id, scope), col(Member.created_at) >= win.start)
        .group_by(day, *keys)
    )
    result = Joins(dimension)
    for text, *values, count in session.execute(query):
        values = [v.value if hasattr(v, "value") else v for v in values]
        result.daily[date.fromisoformat(text), values[0] if len(values) == 1 else tuple(values)] = int(count)
    result.keys = sorted({k for _d, k in result.daily}, key=lambda k: str(k))
    return result


def station_districts(session: Session, ids: Iterable[int]) -> dict[int, Workplace]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {w.id or 0: w for w in session.exec(select(Workplace).where(Workplace.id.in_(wanted)))}  # type: ignore[union-attr]


def districts(session: Session, scope: list[int] | None) -> list[District]:
    query = select(District).where(*_scope(District.id, scope)).order_by(District.code)
    return list(session.exec(query))


def suppressed_joins(result: Joins, win: Window, group_of: dict[Any, Any]) -> dict[tuple[date | None, Any], int | str]:
    """Daily cells and period totals (day None) of a station or platform breakdown, suppressed.

    Published totals: each key's period total, each day's total per group (a station's
    district; one group for platforms) and the group's period total.
    """
    cells: dict[tuple[date | None, Any], int] = {}
    for day in win.dates():
        for key in result.keys:
            cells[day, key] = result.daily.get((day, key), 0)
    for key, total in result.totals().items():
        cells[None, key] = total
    groups: dict[Any, list[Any]] = defaultdict(list)
    for key in result.keys:
        groups[group_of.get(key)].append(key)
    lines: list[list[tuple[date | None, Any]]] = [[(d, key) for d in win.dates()] for key in result.keys]
    for members in groups.values():
        lines += [[(d, key) for key in members] for d in [*win.dates(), None]]
    return suppress(cells, lines)


# --- funnels -----------------------------------------------------------------------------------


@dataclass
class PosterFunnel:
    """One poster (a place at one code version) over the window."""

    kind: PlaceKind
    place_id: int
    qr_version: int
    counts: dict[str, int | None]


def funnels(session: Session, scope: list[int] | None, win: Window) -> list[PosterFunnel]:
    """Scanned → form → code sent → verified → approved for each poster of the scope.

    The funnel counters have no "code sent" step yet (the join flow counts scans, forms,
    verified codes and joins), so `sent` is None. Counter days are UTC dates.
    """
    place_ids = _place_ids(session, scope)
    counts: dict[tuple[PlaceKind, int, int], dict[str, int | None]] = {}
    sums = [func.sum(getattr(PlaceStat, step)) for step in ("scans", "forms", "verified")]
    stat_query = (
        select(col(PlaceStat.place_kind), col(PlaceStat.place_id), col(PlaceStat.qr_version), *sums)
        .where(col(PlaceStat.day) >= win.start.date())
        .group_by(col(PlaceStat.place_kind), col(PlaceStat.place_id), col(PlaceStat.qr_version))
    )
    for kind, place_id, version, scans, forms, verified in session.execute(stat_query):
        if place_id in place_ids[PlaceKind(kind)]:
            counts[PlaceKind(kind), place_id, version] = _funnel(scans, forms, verified)
    for kind, place_id, version, approved in _approved(session, scope, win):
        row = counts.setdefault((kind, place_id, version), _funnel(0, 0, 0))
        row["approved"] = approved
    ordered = sorted(counts.items(), key=lambda item: (item[0][0].value, item[0][1:]))
    return [PosterFunnel(kind, place_id, version, c) for (kind, place_id, version), c in ordered]


def _funnel(scans: Any, forms: Any, verified: Any) -> dict[str, int | None]:
    found: dict[str, int | None] = {"scans": int(scans or 0), "forms": int(forms or 0), "sent": None}
    return {**found, "verified": int(verified or 0), "approved": 0}


def _place_ids(session: Session, scope: list[int] | None) -> dict[PlaceKind, set[int | None]]:
    district_ids = set(session.exec(select(District.id).where(*_scope(District.id, scope))))
    station_query = select(Workplace.id).where(*_scope(Workplace.district_id, scope))
    return {PlaceKind.district: district_ids, PlaceKind.workplace: set(session.exec(station_query))}


def _approved(session: Session, scope: list[int] | None, win: Window) -> list[tuple[PlaceKind, int, int, int]]:
    """Approved members per poster among those who applied in the window."""
    out: list[tuple[PlaceKind, int, int, int]] = []
    for kind, column in ((PlaceKind.district, Member.district_id), (PlaceKind.workplace, Member.workplace_id)):
        # Grouped by an expression, not the bare column: SQLite would otherwise walk the whole
        # table in that column's index order (to skip a sort) instead of the created_at range.
        place = func.coalesce(column, 0)
        query = (
            select(place, col(Member.source_qr_version), func.count())
            .where(
                *_scope(Member.district_id, scope),
                Member.created_at >= win.start,
                Member.status == MemberStatus.approved,
                Member.source_kind == kind,
            )
            .group_by(place, col(Member.source_qr_version))
        )
        out += [(kind, place_id, version, int(n)) for place_id, version, n in session.execute(query) if place_id]
    return out


def suppressed_funnels(rows: list[PosterFunnel]) -> tuple[list[dict[str, int | str | None]], dict[str, int | str]]:
    """Each poster's counts with 1-4 hidden (and a second cell per step where the total shows it), and the totals."""
    cells: dict[tuple[int, str], int] = {}
    for n, row in enumerate(rows):
        for step, value in row.counts.items():
            if value is not None:
                cells[n, step] = value
    lines = [[(n, step) for n in range(len(rows))] for step in FUNNEL_STEPS]
    shown = suppress(cells, lines)
    out = [{step: shown.get((n, step)) for step in FUNNEL_STEPS} for n in range(len(rows))]
    totals = {step: sum(cells.get((n, step), 0) for n in range(len(rows))) for step in FUNNEL_STEPS}
    return out, suppress(totals, [])


# --- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decisions:
    """Time from application to decision for those decided in the window, and pending overdue."""

    decided: int
    median_hours: float | None
    p90_hours: float | None
    overdue: int


def _hours(session: Session) -> ColumnElement[float | Decimal]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", col(Member.decided_at) - col(Member.created_at)) / 3600.0
    return (func.julianday(Member.decided_at) - func.julianday(Member.created_at)) * 24.0


def decisions(session: Session, district_ids: list[int] | None, win: Window, working_days: int) -> Decisions:
    """The figures of all the given districts together (None: every district)."""
    if district_ids is None:
        district_ids = [d.id or 0 for d in districts(session, None)]
    return decisions_by_district(session, district_ids, win, working_days)[None]


def decisions_by_district(
    session: Session, district_ids: list[int], win: Window, working_days: int
) -> dict[int | None, Decisions]:
    """Per district and for all of them (key None): median and 90th percentile (nearest rank, to
    the minute) of the time from application to decision, and the pending applications overdue.

    The database counts decisions per whole minute (one pass over the window's decisions, with
    the district list for the index); the percentiles are read from those counts.
    """
    minutes = func.round(_hours(session) * 60)
    in_scope = col(Member.district_id).in_(district_ids)
    histogram = (
        select(col(Member.district_id), minutes, func.count())
        .where(in_scope, col(Member.decided_at) >= win.start)
        .group_by(col(Member.district_id), minutes)
    )
    counts: dict[int | None, dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for district_id, minute, n in session.execute(histogram):
        for key in (district_id, None):
            counts[key][float(minute)] += int(n)
    cutoff = deadlines.overdue_cutoff(win.now, working_days)
    overdue_query = (
        select(col(Member.district_id), func.count())
        .where(in_scope, Member.status == MemberStatus.pending, col(Member.created_at) < cutoff)
        .group_by(col(Member.district_id))
    )
    overdue: dict[int | None, int] = defaultdict(int)
    for district_id, n in session.execute(overdue_query):
        overdue[district_id] += int(n)
        overdue[None] += int(n)
    out = {}
    for key in [None, *district_ids]:
        hist = counts.get(key, {})
        decided = sum(hist.values())
        out[key] = Decisions(decided, _rank(hist, decided, 0.5), _rank(hist, decided, 0.9), overdue.get(key, 0))
    return out


def _rank(histogram: dict[float, int], total: int, p: float) -> float | None:
    """The nearest-rank p-th percentile (the ceil(p·n)-th smallest value), in hours."""
    if not total:
        return None
    wanted, seen = max(math.ceil(p * total), 1), 0
    for minute in sorted(histogram):
        seen += histogram[minute]
        if seen >= wanted:
            return minute / 60
    return None  # pragma: no cover - the counts add up to total


# --- the whole report --------------------------------------------------------------------------


@dataclass
class Report:
    """What one dashboard page (or its CSV) shows. Without `members` only the funnels are filled."""

    win: Window
    members: bool
    districts: list[District]
    stations: dict[int, Workplace]
    by_district: Joins | None = None
    by_station: dict[tuple[date | None, Any], int | str] = field(default_factory=dict)
    station_keys: list[Any] = field(default_factory=list)
    by_platform: dict[tuple[date | None, Any], int | str] = field(default_factory=dict)
    platform_keys: list[Any] = field(default_factory=list)
    funnels: list[tuple[PosterFunnel, dict[str, int | str | None]]] = field(default_factory=list)
    funnel_totals: dict[str, int | str] = field(default_factory=dict)
    decisions: dict[int | None, Decisions] = field(default_factory=dict)
    # Approved transfers decided in the window, per district: (out, in).
    transfers: dict[int, tuple[int, int]] = field(default_factory=dict)

    def place_name(self, kind: PlaceKind, place_id: int) -> tuple[str, str]:
        """(code, name) of a poster's place; a place deleted since shows its id."""
        if kind is PlaceKind.workplace and place_id in self.stations:
            return self.stations[place_id].code, self.stations[place_id].name
        for district in self.districts:
            if kind is PlaceKind.district and district.id == place_id:
                return district.code, district.name
        return f"#{place_id}", ""


def report(session: Session, scope: list[int] | None, win: Window, *, members: bool, working_days: int) -> Report:
    """Every figure of the dashboard for `scope`; member figures only when `members` is true."""
    out = Report(win, members, districts(session, scope), {})
    funnel_rows = funnels(session, scope, win)
    out.stations = station_districts(session, [p.place_id for p in funnel_rows if p.kind is PlaceKind.workplace])
    shown, out.funnel_totals = suppressed_funnels(funnel_rows)
    out.funnels = list(zip(funnel_rows, shown, strict=True))
    if not members:
        return out
    out.by_district = joins(session, scope, win, "district")
    stations = joins(session, scope, win, "workplace")
    out.stations.update(station_districts(session, [station for _district, station in stations.keys]))
    group = {key: key[0] for key in stations.keys}
    out.by_station, out.station_keys = suppressed_joins(stations, win, group), stations.keys
    platforms = joins(session, scope, win, "platform")
    out.by_platform, out.platform_keys = suppressed_joins(platforms, win, {}), platforms.keys
    found = decisions_by_district(session, [d.id or 0 for d in out.districts], win, working_days)
    out.decisions = found if len(out.districts) > 1 else {None: found[None]}
    out.transfers = transfers.counts_by_district(session, [d.id or 0 for d in out.districts], win.start)
    return out
