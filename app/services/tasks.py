"""Durable delivery: every SMS a commit owes is a row of the outbox, sent by `flask --app wsgi worker`.

Why: a code or a notice waiting in a process's memory, or in a queue a consumer has already popped,
is lost when that process is killed; a bulk decision that texts hundreds of workers inside the
request outlives a proxy's timeout. So the debt is written to the database with the change that
creates it (the transactional outbox), and the queue only carries wake-ups:

* In the transaction: a writer on the event channel (app/services/events.py,
  `subscribe_in_transaction`) adds a `Delivery` row: a join code (encrypted with the app's PII
  cipher) for its attempt, or a decision notice for its member. No commit, no row; a commit, a row.
* After the commit: a handler enqueues a wake-up (`deliver`, with the kind and the owner's id: no
  phone, no code on the queue). The consumer claims the row, sends, and deletes it.
* Claiming is one UPDATE: a consumer takes a row whose lease has run out (or that no one took yet)
  and sets a lease of `LEASE_SECONDS`, longer than a provider call can last. Two wake-ups for one
  row send once; a consumer killed mid-send leaves the row, which the lease hands to another.
* A sweep (at the consumer's start, then every minute) wakes every row due within the next minute,
  at its due time: rows whose server died between the commit and the wake-up, whose consumer died
  holding them, or whose retry is due. At least once: a consumer killed after the provider took the
  text but before the delete sends it again once the lease runs out (a code twice is harmless).
* Storage of the wake-ups is chosen by `TASK_QUEUE`: `sqlite:///path` (one machine, the default),
  `redis://…` (several), or `immediate` (the tests: a wake-up runs in the enqueuing thread).
* Join codes and status-check codes alike: the code page reads why a send failed from the
  owner's `send_error`, written by the consumer.
* A code asked for again by voice call is a row of kind `join_voice` / `status_voice` with the same
  sealed code: claimed, leased, retried and dropped when stale exactly like the SMS of that code.
* A code is sent only while it is current: its attempt is not proven, not expired and still holds
  this code (a resend replaces it). A stale code is dropped, never sent.
* A code the provider could not take now is tried again a few times, briefly (a code is useful for
  minutes); a decision notice is retried with a growing delay for hours, and one that finally
  fails is written to the audit log (`notice_failed`), which the roster shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from app.models import AuditEvent, CodeState, Delivery, JoinAttempt, Member, StatusCheck, utcnow
from app.services import audit, crypto, events, metrics, notify, sms, transfers, verification
from app.services.crypto import PiiCipher

log = logging.getLogger(__name__)

JOIN_CODE, STATUS_CODE, NOTICE = "join_code", "status_code", "notice"
JOIN_VOICE, STATUS_VOICE = "join_voice", "status_voice"  # the same code, read out in a call
CODES: dict[str, type[JoinAttempt] | type[StatusCheck]] = {
    JOIN_CODE: JoinAttempt,
    STATUS_CODE: StatusCheck,
    JOIN_VOICE: JoinAttempt,
    STATUS_VOICE: StatusCheck,
}  # the row each code proves
VOICE = (JOIN_VOICE, STATUS_VOICE)
LEASE_SECONDS = 30  # longer than one provider call may last (their timeouts are 10 s)
GRACE_SECONDS = 10  # a new row is the commit's own wake-up's for this long before a sweep takes it
SWEEP_HORIZON_SECONDS = 60  # a sweep wakes the rows due before its next run
CODE_RETRIES = 3
CODE_RETRY_SECONDS = 10
# Notice retries: 1 min, then each wait twice the last: 8 retries span about 4¼ hours.
NOTICE_RETRIES = 8
NOTICE_FIRST_DELAY = 60
NOTICE_BACKOFF = 2
NOTICE_FAILED = notify.NOTICE_FAILED
TEMPORARY = {"unavailable", "rate_limited"}  # SmsError kinds worth another try
SETTLED = {"sent", "stale", "gone", "opted_out"}  # outcomes that are not a failure


Sender = Callable[[Session, Delivery], str]


class TryLater(Exception):
    """A delivery the provider could not take now: the row waits for `delay` seconds."""

    def __init__(self, kind: str, delay: float) -> None:
        super().__init__(kind)
        self.kind, self.delay = kind, delay


def make_huey(url: str, name: str = "scanjoin") -> Huey:
    """The queue named by TASK_QUEUE."""
    if url == "immediate":
        return MemoryHuey(name, immediate=True)
    if url.startswith("sqlite:///"):
        return SqliteHuey(name, filename=url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url)
    raise ValueError(f"TASK_QUEUE must be immediate, sqlite:///path or redis://…, not {url!r}")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_current(owner: CodeState | None, code: str | None, *, key: str, now: datetime) -> bool:
    """Whether this code is still the owner's to send: not proven, not expired, not replaced by a
    resend (the owner's hash is of another code)."""
    if owner is None or owner.verified_at is not None or owner.code_expires_at is None:
        return False
    if _aware(owner.code_expires_at) <= _aware(now):
        return False
    if code is None:
        return owner.code_hash is None  # the provider makes the code (Twilio Verify)
    expected = verification.code_hash(key, owner.id, code)
    return owner.code_hash is not None and crypto.equal(owner.code_hash, expected)


@dataclass(frozen=True)
class Settings:
    key: str  # the code HMAC's key (SECRET_KEY)
    link: str  # the status page, named in the decision notice


class Deliveries:
    """The outbox of one app: its writers, its wake-ups, the consumer's work and the sweep."""

    def __init__(
        self,
        huey: Huey,
        pii: PiiCipher,
        gateway: Callable[[], sms.SmsGateway],
        new_session: Callable[[], Session],
        settings: Settings,
    ) -> None:
        self.huey, self.pii, self._gateway = huey, pii, gateway
        self.new_session, self.settings = new_session, settings
        self.wake = huey.task(name="deliver")(self.deliver_owner)
        self.wake_one = huey.task(name="deliver_one")(self.deliver)
        self.sweep_task = huey.periodic_task(crontab(minute="*"), name="sweep_outbox")(self.sweep)
        self.senders: dict[str, Sender] = {}  # kinds other modules send (webhooks)

    def add_kind(self, kind: str, send: Sender) -> None:
        """Rows of `kind` are sent by `send(db, row)`: it returns what the row came to, or raises
        TryLater while it wants another try (it keeps its own count); the row is deleted after."""
        self.senders[kind] = send

    def subscribe(self, bus: events.Bus) -> None:
        bus.subscribe_in_transaction(events.CodeRequested, self.write_code)
        bus.subscribe(events.CodeRequested, self.enqueue_code)
        bus.subscribe_in_transaction(events.MemberDecided, self.write_notice)
        bus.subscribe(events.MemberDecided, self.enqueue_notice)
        bus.subscribe_in_transaction(events.TransferDecided, self.write_transfer_notice)
        bus.subscribe(events.TransferDecided, self.enqueue_transfer_notice)

    # -- in the transaction: the outbox rows ----------------------------------------------------

    def _owe(self, db: Session, kind: str, owner_id: str, code_enc: str | None = None) -> None:
        due = utcnow() + timedelta(seconds=GRACE_SECONDS)
        db.add(Delivery(kind=kind, owner_id=owner_id, code_enc=code_enc, due_at=due))

    def write_code(self, db: Session, requested: events.CodeRequested) -> None:
        sealed = None if requested.code is None else self.pii.encrypt(requested.code)
        self._owe(db, _code_kind(requested), requested.owner_id, sealed)

    def write_notice(self, db: Session, decided: events.MemberDecided) -> None:
        self._owe(db, NOTICE, str(decided.member_id))

    def write_transfer_notice(self, db: Session, decided: events.TransferDecided) -> None:
        if transfers.tells_worker(decided):
            self._owe(db, NOTICE, str(decided.member_id))

    # -- after the commit: wake-ups ------------------------------------------------------------

    def enqueue_code(self, requested: events.CodeRequested) -> None:
        """The `CodeRequested` handler: the code's consumer is woken (its row is written). What the
        provider answered reaches the code page through the owner's `send_error`."""
        self.wake(_code_kind(requested), requested.owner_id)

    def enqueue_notice(self, decided: events.MemberDecided) -> bool:
        """The `MemberDecided` handler: True once the notice's consumer is woken."""
        self.wake(NOTICE, str(decided.member_id))
        return True

    def enqueue_transfer_notice(self, decided: events.TransferDecided) -> bool:
        """The `TransferDecided` handler: the same neutral notice (the status page says what moved) is
        woken; False when the decision is not one the worker is told of."""
        if not transfers.tells_worker(decided):
            return False
        self.wake(NOTICE, str(decided.member_id))
        return True

    # -- in the consumer -----------------------------------------------------------------------

    def deliver_owner(self, kind: str, owner_id: str) -> list[str]:
        """Every row owed to this owner (a resend may have added one): what each came to."""
        with self.new_session() as db:
            ids = db.exec(select(Delivery.id).where(Delivery.kind == kind, Delivery.owner_id == owner_id)).all()
        return [self.deliver(row_id) for row_id in ids if row_id is not None]

    def deliver(self, delivery_id: int, now: datetime | None = None) -> str:
        """Claim one row, send it, settle it: "sent", "stale", "gone", "opted_out", "taken" (another
        consumer holds it, or it is done), "later" (tried again at its due time) or a failure kind."""
        now = now or utcnow()
        with self.new_session() as db:
            row = self._claim(db, delivery_id, now)
            if row is None:
                return "taken"
            try:
                outcome = self._send(db, row)
            except TryLater as later:
                limit = CODE_RETRIES if row.kind in CODES else NOTICE_RETRIES if row.kind == NOTICE else None
                if limit is None or row.attempts <= limit:
                    due = now + timedelta(seconds=later.delay)
                    db.execute(update(Delivery).where(col(Delivery.id) == delivery_id).values(due_at=due))
                    db.commit()
                    self._wake_at(delivery_id, due)
                    return "later"
                outcome = self._gave_up(db, row, later.kind)
            if outcome not in SETTLED:
                metrics.task_failed(row.kind)
            db.execute(delete(Delivery).where(col(Delivery.id) == delivery_id))
            db.commit()
            return outcome

    def _claim(self, db: Session, delivery_id: int, now: datetime) -> Delivery | None:
        """The row, leased to this consumer (committed), or None when it is not ours to send."""
        lease = now + timedelta(seconds=LEASE_SECONDS)
        claimed = db.execute(
            update(Delivery)
            .where(col(Delivery.id) == delivery_id)
            .where(or_(col(Delivery.attempts) == 0, col(Delivery.due_at) <= now))
            .values(attempts=Delivery.attempts + 1, due_at=lease)
        )
        db.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return db.get(Delivery, delivery_id, populate_existing=True)

    def _wake_at(self, delivery_id: int, due: datetime) -> None:
        if self.huey.immediate:
            return  # the tests call `deliver` again at the time they choose
        self.wake_one.schedule(args=(delivery_id,), eta=due)

    def _send(self, db: Session, row: Delivery) -> str:
        if row.kind in CODES:
            return self._send_code(db, row)
        if row.kind == NOTICE:
            return self._send_notice(db, row)
        if row.kind in self.senders:
            return self.senders[row.kind](db, row)
        log.error("delivery %s of unknown kind %r dropped", row.id, row.kind)
        return "gone"

    def _gave_up(self, db: Session, row: Delivery, kind: str) -> str:
        if row.kind == NOTICE:
            self.notice_failed(db, int(row.owner_id), kind)
        return kind

    def _send_code(self, db: Session, row: Delivery) -> str:
        """Send one code (a join's or a status check's) if it is still current."""
        try:
            code = None if row.code_enc is None else self.pii.decrypt(row.code_enc)
        except ValueError:  # sealed under a key since removed: the worker asks again
            return "stale"
        owner = db.get(CODES[row.kind], row.owner_id)
        if not is_current(owner, code, key=self.settings.key, now=utcnow()):
            log.info("%s for %s dropped: no longer current", row.kind, row.owner_id[:8])
            return "stale"
        assert owner is not None
        phone = self.pii.decrypt(owner.phone_enc)
        kind = sms.JOIN_CODE if row.kind in (JOIN_CODE, JOIN_VOICE) else sms.STATUS_CODE
        channel = "voice" if row.kind in VOICE else "sms"
        db.commit()  # no transaction (on SQLite: the write lock) held while the provider answers
        try:
            verification.deliver(self._gateway(), to=phone, code=code, locale=owner.locale, kind=kind, channel=channel)
        except sms.SmsError as exc:
            log.warning("%s for %s not sent: %s", row.kind, row.owner_id[:8], exc.kind)
            self._code_failed(db, owner, phone, exc.kind)
            if exc.kind in TEMPORARY:
                db.commit()
                raise TryLater(exc.kind, CODE_RETRY_SECONDS) from exc
            return exc.kind
        return "sent"

    def _code_failed(self, db: Session, owner: CodeState, phone: str, kind: str) -> None:
        owner.send_error = kind  # the code page reads it
        db.add(owner)
        if kind == "opted_out":  # remember it, so no unasked-for text goes to this phone
            sms.record_opt_out(db, self.pii, phone, utcnow())

    def _send_notice(self, db: Session, row: Delivery) -> str:
        """The decision notice: "sent", "opted_out", "gone" or the failure kind; a temporary failure
        waits (with backoff); a last or permanent one is audited."""
        member_id = int(row.owner_id)
        member = db.get(Member, member_id)
        if member is None:
            return "gone"
        prepared = notify.decision_message(db, self.pii, member, link=self.settings.link)
        db.commit()  # no transaction (on SQLite: the write lock) held while the provider answers
        if prepared is None:
            return "opted_out"
        phone, message = prepared
        try:
            self._gateway().send(phone, message)
        except sms.SmsError as exc:
            log.warning("decision text for member %s not sent: %s", member_id, exc.kind)
            if exc.kind == "opted_out":  # remembered, so no unasked-for text goes to this phone
                sms.record_opt_out(db, self.pii, phone, utcnow())
                return "opted_out"
            if exc.kind in TEMPORARY:
                raise TryLater(exc.kind, NOTICE_FIRST_DELAY * NOTICE_BACKOFF ** (row.attempts - 1)) from exc
            self.notice_failed(db, member_id, exc.kind)
            return exc.kind
        return "sent"

    @staticmethod
    def notice_failed(db: Session, member_id: int, kind: str) -> None:
        audit.record(db, NOTICE_FAILED, target_type="member", target_id=member_id, reason=kind)

    # -- the sweep -----------------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> int:
        """Wake every row due before the next sweep, at its due time; how many were woken."""
        now = now or utcnow()
        horizon = now + timedelta(seconds=SWEEP_HORIZON_SECONDS)
        with self.new_session() as db:
            due = db.exec(select(Delivery.id, Delivery.due_at).where(Delivery.due_at <= horizon)).all()
        for row_id, at in due:
            assert row_id is not None
            if self.huey.immediate:
                if _aware(at) <= now:
                    self.deliver(row_id, now)
            else:
                self.wake_one.schedule(args=(row_id,), eta=max(_aware(at), now))
        return len(due)


def depth(db: Session) -> int:
    """How many texts the outbox still owes (the queue depth of /metrics)."""
    return int(db.exec(select(func.count()).select_from(Delivery)).one())


def _code_kind(requested: events.CodeRequested) -> str:
    if requested.channel == "voice":
        return JOIN_VOICE if requested.flow == "join" else STATUS_VOICE
    return JOIN_CODE if requested.flow == "join" else STATUS_CODE


def notice_failure(db: Session, member_id: int, decided_at: datetime | None) -> str | None:
    """Why the notice of the member's latest decision (at `decided_at`) finally failed, or None."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.action == NOTICE_FAILED, AuditEvent.target_type == "member")
        .where(AuditEvent.target_id == str(member_id))
        .order_by(AuditEvent.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    failed = db.exec(query).first()
    if failed is None or decided_at is None or _aware(failed.at) < _aware(decided_at):
        return None  # never, or about an earlier decision
    return str(failed.details.get("reason", "unavailable"))
