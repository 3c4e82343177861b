"""Roster exports: CSV and Excel of the current filter, streamed in flat memory, always audited.

Rows come from one query, read in batches of plain column tuples (no ORM objects), and are
written as they come; Excel goes through XlsxWriter's constant-memory mode (one row in memory,
formula, URL and number conversion off) into a file: a temporary one that is then streamed in
chunks, or a job's file (app/services/export_jobs.py). `progress`, if given, hears the count of rows
written every PROGRESS_EVERY rows (a job's progress). The stream reads on a session of its own, opened at its first row
and closed when it ends, fails or is closed, so an export never holds the caller's connection
(a streamed response outlives its request's teardown). Every export ends with an audit event
(who, which filter, how many rows, whether it finished), written through the `finish` callback
so the caller decides the transaction.
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any
from zoneinfo import ZoneInfo

import xlsxwriter  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import String, func, type_coerce
from sqlmodel import Session

from app.db import fetched_ahead
from app.models import District, ExportJob, Member, User, Workplace, utcnow
from app.services import audit
from app.services.crypto import PiiCipher
from app.services.roster import BadFilter, RosterFilter
from app.services.roster.filters import SORTS
from app.services.roster.lists import Decider, joined, order, scope_clause, sql_filters

HEADER = [
    "member_number",
    "name",
    "phone",
    "platform",
    "workplace",
    "workplace_name",
    "district",
    "status",
    "applied_at",
    "decided_at",
    "decided_by",
    "reject_reason",
]
DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 64 * 1024
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BATCH = 2000
ISO_SECONDS = {  # the text of _iso(), made by the database (a datetime per cell costs ~3 µs in Python)
    "sqlite": lambda column: func.strftime("%Y-%m-%dT%H:%M:%S+00:00", column),
    "postgresql": lambda column: func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
}
PROGRESS_EVERY = 10_000
XLSX_OPTIONS = {  # a cell is what it holds: no formula, link or number read from text
    "constant_memory": True,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
    "default_date_format": "yyyy-mm-dd hh:mm:ss",
}
Finish = Callable[[int, bool], None]
Progress = Callable[[int], None]
Safe = Callable[[str | None], object]
MAINLAND = "+86"


@dataclass(frozen=True)
class Layout:
    """How cells read: codes and UTC ISO times (the API), or words and local times for people.

    `zone` set: times are written in that zone, as text "YYYY-MM-DD HH:MM:SS" in CSV and as
    date cells in Excel. `national_phones`: mainland numbers without "+86" (13800138000), so
    a spreadsheet needs no apostrophe; other countries keep their "+CC".
    """

    header: list[str] = field(default_factory=lambda: list(HEADER))
    statuses: Mapping[str, str] = field(default_factory=dict)
    platforms: Mapping[str, str] = field(default_factory=dict)
    zone: ZoneInfo | None = None
    national_phones: bool = False


CODES = Layout()


def neutralise(value: object) -> object:
    """Prefix a text cell that a spreadsheet would read as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(DANGEROUS_START):
        return "'" + value
    return value


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def record(session: Session, *, by: User, fmt: str, flt: RosterFilter, rows: int, complete: bool) -> None:
    """The export's audit event: the filter's shape, never its search text."""
    audit.record(
        session,
        "roster.export",
        target_type="roster",
        actor_id=by.id,
        format=fmt,
        filter=flt.describe(),
        rows=rows,
        complete=complete,
    )


def record_job(session: Session, *, by: User, job: ExportJob) -> None:
    """A prepared export's download, audited like a streamed one (the job's filter shape, its rows)."""
    audit.record(
        session,
        "roster.export",
        target_type="roster",
        actor_id=by.id,
        format=job.format,
        filter=job.filter_shape,
        rows=job.rows_done,
        complete=True,
        job=job.id,
    )


def _columns(dialect: str, *, raw_times: bool = False) -> tuple[Any, ...]:
    """The HEADER's columns; platform and status as their stored text, times as ISO text when possible."""
    as_text = None if raw_times else ISO_SECONDS.get(dialect)
    at = (lambda column: as_text(column).label(column.key)) if as_text else (lambda column: column)
    return (
        Member.member_number,
        Member.name_enc,
        Member.phone_enc,
        type_coerce(Member.platform, String),
        Workplace.code,
        Workplace.name,
        District.code,
        type_coerce(Member.status, String),
        at(Member.created_at),
        at(Member.decided_at),
        Decider.email,
        Member.reject_reason,
    )


def _rows(
    session: Session,
    pii: PiiCipher,
    scope: list[int] | None,
    flt: RosterFilter,
    now: datetime | None,
    *,
    layout: Layout,
    safe: Safe,
    repeated: Safe,
) -> Iterator[list[object]]:
    """The export's cells, row by row, from one query streamed in batches on a session of its own.

    `safe` writes a free-text cell (neutralised); `repeated` one whose values recur on many rows.
    """
    if flt.sort not in SORTS:
        raise BadFilter("sort")
    bind = session.get_bind()
    zone = layout.zone
    stmt = (
        joined(*_columns(bind.dialect.name, raw_times=zone is not None))
        .where(*scope_clause(scope), *sql_filters(flt, pii, now or utcnow()))
        .order_by(*order(flt.sort))
        .execution_options(yield_per=BATCH)
    )
    decrypt = pii.decrypt
    when = _local_time(zone) if zone is not None else (_text if bind.dialect.name in ISO_SECONDS else _iso)
    phone = _national if layout.national_phones else _same
    statuses, platforms = layout.statuses, layout.platforms
    with Session(bind) as own, contextlib.ExitStack() as stop_fetching:
        batches: Iterator[Any] = own.execute(stmt).partitions()
        if bind.dialect.name == "postgresql":
            ahead = fetched_ahead(batches)
            stop_fetching.callback(ahead.close)  # its thread ends before the session closes
            batches = ahead
        for (
            number,
            name_enc,
            phone_enc,
            platform,
            workplace,
            workplace_name,
            district,
            status,
            created,
            decided,
            by,
            reason,
        ) in (row for batch in batches for row in batch):
            yield [
                safe(number),
                safe(decrypt(name_enc)),
                safe(phone(decrypt(phone_enc))),
                platforms.get(platform, platform),
                repeated(workplace),
                repeated(workplace_name),
                repeated(district),
                statuses.get(status, status),
                when(created),
                when(decided),
                repeated(by),
                safe(reason),
            ]


def _same(value: str) -> str:
    return value


def _national(phone: str) -> str:
    """A mainland number as dialled at home (13800138000); any other keeps its +CC."""
    return phone[len(MAINLAND) :] if phone.startswith(MAINLAND) else phone


def _local_time(zone: ZoneInfo) -> Callable[[datetime | None], object]:
    def local(value: datetime | None) -> object:
        if value is None:
            return ""
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives UTC without a zone
        return aware.astimezone(zone).replace(tzinfo=None, microsecond=0)

    return local


def _text(value: str | None) -> str:
    return value or ""


def _safe(value: str | None) -> str:
    """A text cell as written: empty for NULL, neutralised when it would start a formula."""
    if not value:
        return ""
    return "'" + value if value.startswith(DANGEROUS_START) else value


def csv_stream(
    session: Session,
    pii: PiiCipher,
    scope: list[int] | None,
    flt: RosterFilter,
    *,
    finish: Finish,
    now: datetime | None = None,
    layout: Layout = CODES,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """UTF-8 CSV (with BOM, so Excel reads Chinese right), one chunk per batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    count, complete, told = 0, False, 0
    # Stations, districts and deciders repeat on many rows: neutralise each distinct value once.
    repeated = lru_cache(maxsize=4096)(_safe)
    try:
        buffer.write("\ufeff")
        writer.writerow(layout.header)
        for row in _rows(session, pii, scope, flt, now, layout=layout, safe=_safe, repeated=repeated):
            writer.writerow(row)
            count += 1
            if buffer.tell() >= CHUNK:
                yield _drain(buffer)
                if progress is not None and count - told >= PROGRESS_EVERY:
                    progress(told := count)
        yield _drain(buffer)
        complete = True
    finally:
        finish(count, complete)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


def write_xlsx(
    target: str | IO[bytes],
    session: Session,
    pii: PiiCipher,
    scope: list[int] | None,
    flt: RosterFilter,
    *,
    now: datetime | None = None,
    layout: Layout = CODES,
    progress: Progress | None = None,
) -> int:
    """An .xlsx of the filter written row by row to `target` (a path or a seekable file); the rows.

    Text cells are text: one that a spreadsheet would read as a formula (or a number, like a
    phone number with its +CC) is marked "quote prefix", which Excel shows as typed, without an
    apostrophe, and keeps as text when edited. Times are date cells.
    """
    book = xlsxwriter.Workbook(target, XLSX_OPTIONS)
    try:
        sheet = book.add_worksheet("members")
        quoted, stamp = book.add_format({"quote_prefix": True}), book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        text, when = sheet.write_string, sheet.write_datetime
        for c, title in enumerate(layout.header):
            text(0, c, title)
        count = 0
        for count, row in enumerate(
            _rows(session, pii, scope, flt, now, layout=layout, safe=_clean, repeated=_clean), start=1
        ):
            for c, value in enumerate(row):
                if value.__class__ is str:
                    if not value:
                        continue
                    if value.startswith(DANGEROUS_START) or value.isdigit():
                        text(count, c, value, quoted)
                    else:
                        text(count, c, value)
                elif isinstance(value, datetime):
                    when(count, c, value, stamp)
                elif value is not None:
                    text(count, c, str(value))
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count)
    finally:
        book.close()
    return count


def _clean(value: str | None) -> str:
    """A text cell for Excel: empty for NULL; a control character stored before input was cleaned
    at the boundary shows as U+FFFD (XLSX cannot hold it)."""
    if not value:
        return ""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)


def xlsx_stream(
    session: Session,
    pii: PiiCipher,
    scope: list[int] | None,
    flt: RosterFilter,
    *,
    finish: Finish,
    now: datetime | None = None,
    layout: Layout = CODES,
) -> Iterator[bytes]:
    """An .xlsx built on disk by `write_xlsx`, then streamed in chunks."""
    count, complete = 0, False
    try:
        with tempfile.TemporaryFile() as spool:
            count = write_xlsx(spool, session, pii, scope, flt, now=now, layout=layout)
            spool.seek(0)
            while chunk := spool.read(CHUNK):
                yield chunk
        complete = True
    finally:
        finish(count, complete)
