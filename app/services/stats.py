"""Per-poster funnel counters: scans → forms → verified codes → joins. No personal data.

Counting is off the request's path: `FunnelBuffer` adds in memory and writes the sums in one
short transaction every few seconds (a poster scanned 1,000 times a minute costs a dozen
writes, not 1,000). A process killed with SIGKILL loses at most that many seconds of counts;
a stopping process writes what it holds.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from app.models import PlaceKind, PlaceStat
from app.services import metrics

log = logging.getLogger(__name__)
STEPS = ("scans", "forms", "verified", "joins")


def bump(
    session: Session, *, kind: PlaceKind, place_id: int, qr_version: int, step: str, day: date, by: int = 1
) -> None:
    """Add `by` to a step of the poster's counter for the day (an atomic upsert)."""
    if step not in STEPS:
        raise ValueError(f"unknown funnel step {step}")
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    row = {
        "place_kind": kind,
        "place_id": place_id,
        "qr_version": qr_version,
        "day": day,
        **{name: by if name == step else 0 for name in STEPS},
    }
    statement = insert(PlaceStat).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=["place_kind", "place_id", "qr_version", "day"],
        set_={step: getattr(PlaceStat, step) + by},
    )
    session.execute(statement)


CountKey = tuple[PlaceKind, int, int, str, date]


class FunnelBuffer:
    """Funnel counts held in memory and written together, off the request's path.

    `interval` 0 writes at the end of every request (`flush_if_due`), which the tests use; a
    positive interval writes from a daemon thread of the process that counted (started on
    first use, so each forked gunicorn worker gets its own) and once more at exit. A write
    that fails keeps its counts for the next one.
    """

    def __init__(self, open_session: Callable[[], Session], interval: float) -> None:
        self.open_session, self.interval = open_session, interval
        self.pending: Counter[CountKey] = Counter()
        self.lock = threading.Lock()
        self.flusher_pid: int | None = None

    def add(self, kind: PlaceKind, place_id: int, qr_version: int, step: str, day: date) -> None:
        if step not in STEPS:
            raise ValueError(f"unknown funnel step {step}")
        with self.lock:
            self.pending[(kind, place_id, qr_version, step, day)] += 1
        metrics.funnel_step(step)
        if self.interval > 0 and self.flusher_pid != os.getpid():
            self._start_flusher()

    def flush_if_due(self) -> None:
        """At the end of a request: write now when there is no flusher thread (interval 0)."""
        if self.interval <= 0 and self.pending:
            self.flush()

    def flush(self) -> int:
        """Write every pending count in one transaction; return how many counts were written."""
        with self.lock:
            taken, self.pending = self.pending, Counter()
        if not taken:
            return 0
        try:
            with self.open_session() as session:
                for (kind, place_id, qr_version, step, day), by in sorted(taken.items(), key=_order):
                    bump(session, kind=kind, place_id=place_id, qr_version=qr_version, step=step, day=day, by=by)
                session.commit()
        except Exception as exc:  # a busy or unreachable database: keep the counts, try again later
            log.warning("funnel counts not written yet (%s): will try again", type(exc).__name__)
            with self.lock:
                self.pending.update(taken)
            return 0
        return sum(taken.values())

    def _start_flusher(self) -> None:
        with self.lock:
            if self.flusher_pid == os.getpid():
                return
            self.flusher_pid = os.getpid()
        thread = threading.Thread(target=self._run, name="funnel-flush", daemon=True)
        thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


def _order(item: tuple[CountKey, int]) -> tuple[str, int, int, str, date]:
    # One order for every writer, so two processes' upserts never wait on each other in a cycle.
    (kind, place_id, qr_version, step, day), _by = item
    return (kind.value, place_id, qr_version, step, day)


@dataclass(frozen=True)
class Funnel:
    """One poster's counts (a place at one token version), summed over its days."""

    qr_version: int
    scans: int = 0
    forms: int = 0
    verified: int = 0
    joins: int = 0

    def rate(self) -> float | None:
        """Joins per scan, or None before the first scan."""
        return self.joins / self.scans if self.scans else None


def funnels(session: Session, kind: PlaceKind, place_ids: list[int]) -> dict[int, list[Funnel]]:
    """The funnel of each place per token version, newest version first."""
    if not place_ids:
        return {}
    sums = [func.sum(getattr(PlaceStat, step)) for step in STEPS]
    query = (
        select(PlaceStat.place_id, PlaceStat.qr_version, *sums)
        .where(col(PlaceStat.place_kind) == kind, col(PlaceStat.place_id).in_(place_ids))
        .group_by(col(PlaceStat.place_id), col(PlaceStat.qr_version))
        .order_by(col(PlaceStat.place_id), col(PlaceStat.qr_version).desc())
    )
    found: dict[int, list[Funnel]] = {}
    counts: list[int | None]
    for place_id, version, *counts in session.exec(query):
        found.setdefault(place_id, []).append(Funnel(version, *(int(c or 0) for c in counts)))
    return found
