"""Domain events: the one channel for side effects after a commit.

Architecture
------------
A service that changes something others must hear about records an event in the same
transaction: `events.record(session, MemberDecided(...))`. The event waits on `session.info`.

* When the transaction commits, a SQLAlchemy `after_commit` listener takes the session's events
  and hands them to the app's `Bus` (`app.extensions["events"]`), which calls every handler
  registered for the event's type, in order, in the committing thread.
* When the outermost transaction ends any other way (rollback, close), the events are dropped:
  a change that never happened texts no one.
* A handler that fails is logged (by type, never with personal data) and the others still run;
  the commit and the response are not affected.
* A side effect that must survive a crash also has a writer, registered with
  `bus.subscribe_in_transaction`: it runs as the transaction commits (SQLAlchemy `before_commit`)
  and adds the side effect's outbox row to the same transaction (app/services/tasks.py), so a
  process killed after the commit, before its handler ran, leaves the row for a sweep.
* Handlers are registered by type in `create_app` (`bus.subscribe(CodeRequested, ...)`); views
  and services never call a side effect themselves. A handler's return value is kept for the
  committing caller (`events.outcomes(session, MemberDecided)`), e.g. the roster's count of
  decision texts that could not be sent.

Today's handlers: `CodeRequested` (app/services/phone_proof.py): a join or status-check code is
written to the outbox (the `delivery` table, the code encrypted like a name) and a consumer is
woken to send it (app/services/tasks.py). `MemberDecided`: the neutral decision notice,
the same way (retried for hours, a final failure flagged on the member's page and in the audit
log). `ApplicationSubmitted`, `MemberDecided` and `MemberWithdrawn` also write signed webhook
deliveries (app/services/webhooks/) to the outbox, and a new application posts to its district's
group robot (app/services/robots.py), the same way. `TransferDecided`: the same notice when a
transfer is approved (or the worker's own request is rejected), written and woken the same way.
log). `ExportRequested`: the job's row is its own outbox row (the `export_job` table); a consumer
is woken to prepare the file (app/services/export_jobs.py).

A webhook is one more writer and handler pair: a row in the outbox, a wake-up after the commit.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

PENDING = "domain_events"  # session.info: events of the open transaction
DONE = "domain_event_outcomes"  # session.info: (event, outcome) of the last commit


class Event:
    """Base of every domain event."""


@dataclass(frozen=True)
class ApplicationSubmitted(Event):
    """A proven phone's application is stored (pending) or an earlier one was found."""

    member_id: int
    district_id: int
    outcome: str  # "created", "reapplied"; "pending" or "approved": an earlier membership


@dataclass(frozen=True)
class MemberDecided(Event):
    """An official approved or rejected an application (from the roster or the API)."""

    member_id: int
    district_id: int
    approved: bool


@dataclass(frozen=True)
class MemberWithdrawn(Event):
    """A worker withdrew consent: the member's row is deleted (the event keeps its ids only)."""

    member_id: int
    district_id: int


@dataclass(frozen=True)
class TransferDecided(Event):
    """The receiving district approved or rejected a transfer (app/services/transfers.py)."""

    transfer_id: int
    member_id: int
    from_district_id: int
    to_district_id: int
    approved: bool
    started_by: str  # "worker" or "official"


@dataclass(frozen=True, repr=False)
class CodeRequested(Event):
    """A code must go to a phone proving itself: `flow` "join" (a JoinAttempt) or "status" (a
    StatusCheck). `code` is None when the provider makes the code (Twilio Verify)."""

    flow: str
    owner_id: str
    phone: str
    code: str | None
    locale: str
    channel: str = "sms"  # or "voice": the same code read out in a call

    def __repr__(self) -> str:  # never the phone or the code in a log line
        return f"CodeRequested(flow={self.flow!r}, owner_id={self.owner_id[:8]!r}, channel={self.channel!r})"


@dataclass(frozen=True)
class ExportRequested(Event):
    """An official asked for a roster export: its job row is written; a consumer prepares the file."""

    job_id: int


Handler = Callable[[Any], object]
Writer = Callable[[Any, Any], None]  # (session, event); the session is SQLModel's or SQLAlchemy's


class Bus:
    """Handlers by event type; `dispatch` runs them after a commit, `write` before it."""

    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[Handler]] = defaultdict(list)
        self._writers: dict[type[Event], list[Writer]] = defaultdict(list)

    def subscribe(self, kind: type[Event], handler: Handler) -> None:
        self._handlers[kind].append(handler)

    def subscribe_in_transaction(self, kind: type[Event], writer: Writer) -> None:
        """`writer(session, event)` runs as the transaction commits, before its last flush: what it
        adds commits with the change or not at all (the outbox row of a durable side effect). A
        writer that fails fails the commit."""
        self._writers[kind].append(writer)

    def write(self, session: Session, events: list[Event]) -> None:
        for item in events:
            for writer in self._writers.get(type(item), []):
                writer(session, item)

    def dispatch(self, events: list[Event]) -> list[tuple[Event, object]]:
        done: list[tuple[Event, object]] = []
        for item in events:
            for handler in self._handlers.get(type(item), []):
                try:
                    done.append((item, handler(item)))
                except Exception as exc:  # a side effect never undoes or breaks the committed change
                    log.error(
                        "handler %s for %s failed: %s",
                        getattr(handler, "__name__", "?"),
                        type(item).__name__,
                        type(exc).__name__,
                    )
                    done.append((item, None))
        return done


def record(session: Session, item: Event) -> None:
    """Keep `item` until `session`'s transaction commits (then dispatched) or ends otherwise (dropped)."""
    if not session.in_transaction():
        session.begin()  # the event belongs to a transaction (no connection is taken until one is used)
    session.info.setdefault(PENDING, []).append(item)


def outcomes(session: Session, kind: type[Event]) -> list[object]:
    """What the handlers returned for the events of `kind` at the session's last commit."""
    return [outcome for item, outcome in session.info.get(DONE, []) if isinstance(item, kind)]


# Each app's bus, found from the connection pool a session works on (an engine's execution-options
# copies share its pool), so this module never asks Flask which app is running.
_BUSES: weakref.WeakKeyDictionary[Any, Bus] = weakref.WeakKeyDictionary()


def attach(engine: Engine, bus: Bus) -> None:
    """Dispatch the events committed on `engine` (and its option copies) to `bus`."""
    _BUSES[engine.pool] = bus


def _bus(session: Session) -> Bus | None:
    bind = session.get_bind()
    pool = getattr(bind, "pool", None)
    return _BUSES.get(pool) if pool is not None else None


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction may still roll back
    pending = session.info.get(PENDING)
    if pending and (bus := _bus(session)) is not None:
        bus.write(session, pending)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # SQLAlchemy calls this for a released savepoint too: only the real commit counts
    pending = session.info.pop(PENDING, [])
    session.info[DONE] = []
    if not pending:
        return
    bus = _bus(session)
    if bus is None:
        log.warning("%d events committed on an engine with no bus attached: not dispatched", len(pending))
        return
    session.info[DONE] = bus.dispatch(pending)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction: what it did not commit is gone
        session.info.pop(PENDING, None)


def install() -> None:
    """Listen on every ORM session (once per process)."""
    if not sa_event.contains(Session, "after_commit", _after_commit):
        sa_event.listen(Session, "before_commit", _before_commit)
        sa_event.listen(Session, "after_commit", _after_commit)
        sa_event.listen(Session, "after_transaction_end", _after_transaction_end)
