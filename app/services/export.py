"""Roster exports: CSV and Excel of the current filter, streamed in flat memory, always audited.

Rows are read in keyset batches and written as they come; Excel goes through openpyxl's
write-only mode into a temporary file that is then streamed in chunks. Every export ends with
an audit event (who, which filter, how many rows, whether it finished), written through the
`record` callback so the caller decides the transaction.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime

from openpyxl import Workbook
from sqlmodel import Session

from app.models import User
from app.services import audit
from app.services.crypto import PiiCipher
from app.services.roster import MemberView, RosterFilter, iter_members

HEADER = ["member_number", "name", "phone", "platform", "workplace", "workplace_name", "district", "status",
          "applied_at", "decided_at", "decided_by", "reject_reason"]
DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 64 * 1024
Finish = Callable[[int, bool], None]


def neutralise(value: object) -> object:
    """Prefix a text cell that a spreadsheet would read as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(DANGEROUS_START):
        return "'" + value
    return value


def row_of(view: MemberView) -> list[object]:
    cells = [view.member_number, view.name, view.phone, view.platform, view.workplace, view.workplace_name,
             view.district, view.status, _iso(view.created_at), _iso(view.decided_at), view.decided_by,
             view.reject_reason]
    return [neutralise("" if cell is None else cell) for cell in cells]


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def record(session: Session, *, by: User, fmt: str, flt: RosterFilter, rows: int, complete: bool) -> None:
    """The export's audit event: the filter's shape, never its search text."""
    audit.record(session, "roster.export", target_type="roster", actor_id=by.id, format=fmt,
                 filter=flt.describe(), rows=rows, complete=complete)


def _rows(session: Session, pii: PiiCipher, scope: list[int] | None, flt: RosterFilter,
          now: datetime | None) -> Iterator[list[object]]:
    for view, _key in iter_members(session, pii, scope, flt, now=now):
        yield row_of(view)


def csv_stream(session: Session, pii: PiiCipher, scope: list[int] | None, flt: RosterFilter, *,
               finish: Finish, now: datetime | None = None) -> Iterator[bytes]:
    """UTF-8 CSV (with BOM, so Excel reads Chinese right), one chunk per batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    count, complete = 0, False
    try:
        buffer.write("\ufeff")
        writer.writerow(HEADER)
        for row in _rows(session, pii, scope, flt, now):
            writer.writerow(row)
            count += 1
            if buffer.tell() >= CHUNK:
                yield _drain(buffer)
        yield _drain(buffer)
        complete = True
    finally:
        finish(count, complete)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


def xlsx_stream(session: Session, pii: PiiCipher, scope: list[int] | None, flt: RosterFilter, *,
                finish: Finish, now: datetime | None = None) -> Iterator[bytes]:
    """An .xlsx built row by row in write-only mode on disk, then streamed in chunks."""
    count, complete = 0, False
    try:
        with tempfile.TemporaryFile() as spool:
            book = Workbook(write_only=True)
            sheet = book.create_sheet("members")
            sheet.append(HEADER)
            for row in _rows(session, pii, scope, flt, now):
                sheet.append(row)
                count += 1
            book.save(spool)
            spool.seek(0)
            while chunk := spool.read(CHUNK):
                yield chunk
        complete = True
    finally:
        finish(count, complete)
