"""Writing a checked register: member numbers, batches under the district lock, the report and audit."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from app.models import District, Member, MemberSource, MemberStatus, PlaceKind
from app.services import audit, names
from app.services.crypto import PiiCipher
from app.services.member_import.rows import (
    DUPLICATE_EXISTING,
    IMPORTED,
    REJECTED,
    Plan,
    Row,
    member_number,
)
from app.services.phones import last4

BATCH_SIZE = 2000  # a commit costs ~25 ms on SQLite: 50 of them for 100,000 rows
MEMBER = Member.__table__  # type: ignore[attr-defined]  # Core inserts: one executemany a batch
CONSENT_VERSION = "import"  # consent given on paper, before this service


@dataclass
class _Counter:
    """One district's numbering during an import."""

    next: int  # the lowest number that may be free
    high: int  # the highest number used (the district's counter after the batch)
    written: int  # the counter as this import last wrote it
    skip: set[int]  # the file's kept numbers and those others took meanwhile: never handed out


class Numbers:
    """The next free numbers of each district, skipping the file's kept numbers.

    A kept number far above the counter does not move the next free number, so rows without a
    number fill the numbers below it: the only gap left is the one the file itself has.
    """

    def __init__(self, counters: dict[int, int], kept: dict[int, set[int]]) -> None:
        self.districts = {d: _Counter(seq + 1, seq, seq, set(kept.get(d, ()))) for d, seq in counters.items()}

    def locked(self, district_id: int, seq: int) -> None:
        """The counter read under the district's lock: numbers above our last write were taken by approvals."""
        counter = self.districts[district_id]
        counter.skip.update(range(counter.written + 1, seq + 1))
        counter.high = max(counter.high, seq)

    def keep(self, district_id: int, seq: int) -> None:
        counter = self.districts[district_id]
        counter.skip.add(seq)
        counter.high = max(counter.high, seq)

    def take(self, district_id: int) -> int:
        counter = self.districts[district_id]
        seq = counter.next
        while seq in counter.skip:
            seq += 1
        counter.next = seq + 1
        counter.high = max(counter.high, seq)
        return seq

    def state(self, district_id: int) -> tuple[int, int, set[int]]:
        counter = self.districts[district_id]
        return counter.next, counter.high, set(counter.skip)

    def restore(self, district_id: int, state: tuple[int, int, set[int]]) -> None:
        counter = self.districts[district_id]
        counter.next, counter.high, counter.skip = state[0], state[1], set(state[2])


def preview_numbers(result: Plan) -> None:
    """Fill in the numbers a dry run would give (the counters as they were when planned)."""
    numbers = Numbers(result.counters, result.kept)
    for row in result.pending():
        _number_row(row, numbers, result.districts)


def _number_row(row: Row, numbers: Numbers, codes: dict[int, str]) -> None:
    if row.wanted_number is not None:
        numbers.keep(row.district_id, row.wanted_number)
        row.member_number = member_number(codes[row.district_id], row.wanted_number)
    else:
        row.member_number = member_number(codes[row.district_id], numbers.take(row.district_id))


def batches(result: Plan, size: int = BATCH_SIZE) -> Iterator[list[Row]]:
    pending = result.pending()
    for start in range(0, len(pending), size):
        yield pending[start : start + size]


@dataclass
class Writer:
    """Writes a plan's rows batch by batch; the caller commits after each `write`."""

    result: Plan
    pii: PiiCipher
    zone: ZoneInfo
    actor_id: int | None = None

    def __post_init__(self) -> None:
        self.numbers = Numbers(self.result.counters, self.result.kept)

    def write(self, session: Session, batch: list[Row]) -> None:
        """Insert one batch in one executemany; when a row loses a race, the batch goes row by row."""
        districts = sorted({row.district_id for row in batch})
        # Encrypt before the first statement: on SQLite that statement takes the write lock, which
        # joins wait for, so the lock is held for the database work only.
        values = [self._values(row) for row in batch]
        self._lock_counters(session, districts)
        self._drop_taken_numbers(session, batch)
        before = {d: self.numbers.state(d) for d in districts}
        for row, value in zip(batch, values, strict=True):
            _number_row(row, self.numbers, self.result.districts)
            value["member_number"] = row.member_number
        try:
            with session.begin_nested():
                session.execute(insert(MEMBER), values)
        except IntegrityError:
            for district_id, state in before.items():
                self.numbers.restore(district_id, state)
            self._write_one_by_one(session, batch)
        else:
            for row in batch:
                row.outcome = IMPORTED
        self._raise_counters(session, districts)

    def _lock_counters(self, session: Session, districts: list[int]) -> None:
        # The same row lock approval takes to number a member (in id order: no deadlock).
        for district_id in districts:
            seq = session.execute(
                update(District)
                .where(col(District.id) == district_id)
                .values(member_seq=District.member_seq)
                .returning(col(District.member_seq))
            ).scalar_one()
            self.numbers.locked(district_id, seq)

    def _drop_taken_numbers(self, session: Session, batch: list[Row]) -> None:
        """A kept number that an approval took since the plan is re-assigned."""
        codes = self.result.districts
        wanted = {member_number(codes[r.district_id], r.wanted_number): r for r in batch if r.wanted_number}
        if not wanted:
            return
        taken = session.execute(
            select(col(Member.member_number)).where(col(Member.member_number).in_(wanted))
        ).scalars()
        for number in taken:
            row = wanted[number or ""]
            self.numbers.keep(row.district_id, row.wanted_number or 0)
            row.wanted_number, row.reason = None, "number_taken"

    def _raise_counters(self, session: Session, districts: list[int]) -> None:
        for district_id in districts:
            counter = self.numbers.districts[district_id]
            session.execute(update(District).where(col(District.id) == district_id).values(member_seq=counter.high))
            counter.written = counter.high

    def _write_one_by_one(self, session: Session, batch: list[Row]) -> None:
        for row in batch:
            if self._insert_alone(session, row):
                continue
            if session.execute(select(col(Member.id)).where(col(Member.phone_index) == row.phone_index)).first():
                # A join or another import wrote this phone since the plan.
                row.outcome, row.reason, row.member_number = DUPLICATE_EXISTING, "phone_already_member", ""
                continue
            # Else the number (a defence: numbers are checked and taken under the district's lock).
            self.numbers.keep(row.district_id, int(row.member_number.rsplit("-", 1)[1]))
            row.wanted_number, row.reason = None, "number_taken"
            if not self._insert_alone(session, row):
                row.outcome, row.reason, row.member_number = REJECTED, "conflict", ""

    def _insert_alone(self, session: Session, row: Row) -> bool:
        """Number and insert one row in its own savepoint; on a clash the number goes back."""
        state = self.numbers.state(row.district_id)
        _number_row(row, self.numbers, self.result.districts)
        try:
            with session.begin_nested():
                session.execute(insert(MEMBER), [self._values(row)])
        except IntegrityError:
            self.numbers.restore(row.district_id, state)  # row.member_number still names the clash
            return False
        row.outcome = IMPORTED
        return True

    def _values(self, row: Row) -> dict[str, object]:
        assert row.joined is not None
        joined = datetime.combine(row.joined, time(9), tzinfo=self.zone)
        return {
            "district_id": row.district_id,
            "workplace_id": row.workplace_id,
            "name_enc": self.pii.encrypt(row.name),
            "phone_enc": self.pii.encrypt(row.phone),
            "phone_index": row.phone_index,
            "phone_last4_index": self.pii.index(last4(row.phone), purpose="last4"),
            "name_index": names.index(self.pii, row.name),
            "platform": row.platform,
            "status": MemberStatus.approved,
            "consent_version": CONSENT_VERSION,
            "consent_at": joined,
            "source_kind": PlaceKind.workplace if row.workplace_id else PlaceKind.district,
            "source_qr_version": 0,
            "created_at": joined,
            "verified_at": joined,
            "decided_at": joined,
            "decided_by_id": self.actor_id,
            "member_number": row.member_number,
            "source": MemberSource.import_,
        }


def forget_personal_data(result: Plan) -> None:
    """Drop names and phones from the plan once written: only the report stays in memory."""
    for row in result.rows:
        row.name = row.phone = ""


def record(session: Session, result: Plan, *, actor_id: int | None, dry_run: bool, via: str) -> None:
    """The audit event of an import: counts and districts, no personal data."""
    audit.record(
        session,
        "member.import_dry_run" if dry_run else "member.import",
        target_type="member",
        actor_id=actor_id,
        via=via,
        rows=len(result.rows),
        districts=sorted(result.districts.values()),
        **result.counts(),
    )


REPORT_FIELDS = ("row", "outcome", "reason", "phone", "member_number")


def report_csv(result: Plan) -> str:
    """The per-row report: row number, outcome, reason, masked phone and member number."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_FIELDS)
    for row in result.rows:
        writer.writerow([row.number, row.outcome, row.reason, row.masked_phone, row.member_number])
    return out.getvalue()
