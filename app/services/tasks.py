"""Durable delivery: every SMS a commit asks for is a Huey task, run by `flask --app wsgi worker`.

Why a queue: a code or a notice waiting in a process's memory is lost when that process is
killed, and a bulk decision that texts hundreds of workers inside the request outlives a proxy's
timeout. A handler of the after-commit event channel (app/services/events.py) enqueues; the
consumer, a separate process, sends.

* Storage is chosen by `TASK_QUEUE`: `sqlite:///path` (one machine, the default), `redis://…`
  (several), or `immediate` (the tests: a task runs in the enqueuing thread).
* Nothing personal sits in the queue in clear: a join code's task holds the attempt's id and the
  code encrypted with the app's PII cipher; the phone is read from the row when the task runs.
* A code is sent only while it is current: its attempt is not proven, not expired and still holds
  this code (a resend replaces it). A stale code is dropped, never sent.
* A code the provider could not take now is retried a few times, briefly (a code is useful for
  minutes); a decision notice is retried with a growing delay for hours, and one that finally
  fails is written to the audit log (`notice_failed`), which the roster shows.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from sqlmodel import Session, select

from app.models import AuditEvent, CodeState, JoinAttempt, Member, StatusCheck, utcnow
from app.services import audit, events, notify, sms, transfers, verification
from app.services.crypto import PiiCipher

log = logging.getLogger(__name__)

CODE_RETRIES = 3
CODE_RETRY_SECONDS = 10
# Notice retries: 1 min, then each wait twice the last: 8 retries span about 4¼ hours.
NOTICE_RETRIES = 8
NOTICE_FIRST_DELAY = 60
NOTICE_BACKOFF = 2
NOTICE_FAILED = "notice_failed"
TEMPORARY = {"unavailable", "rate_limited"}  # SmsError kinds worth another try


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
    return owner.code_hash is not None and hmac.compare_digest(owner.code_hash, expected)


@dataclass(frozen=True)
class Settings:
    key: str  # the code HMAC's key (SECRET_KEY)
    link: str  # the status page, named in the decision notice


class Deliveries:
    """The tasks of one app on one queue, and the handlers that enqueue them."""

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
        self.code_task = huey.task(retries=CODE_RETRIES, retry_delay=CODE_RETRY_SECONDS, name="send_code")(
            self.send_code
        )
        self.notice_task = huey.task(
            retries=NOTICE_RETRIES,
            retry_delay=NOTICE_FIRST_DELAY,
            retry_backoff=NOTICE_BACKOFF,
            context=True,
            name="send_notice",
        )(self.send_notice)

    # -- enqueue (after the commit) -----------------------------------------------------------

    def enqueue_code(self, requested: events.CodeRequested) -> str | None:
        """The `CodeRequested` handler. A join code, sealed, and its attempt's id go on the queue.
        A status-check code is sent now: its page must say at once why it failed (the outcome)."""
        if requested.flow == "status":
            return self._send_status_code(requested)
        sealed = None if requested.code is None else self.pii.encrypt(requested.code)
        self.code_task(requested.flow, requested.owner_id, sealed)
        return None

    def _send_status_code(self, requested: events.CodeRequested) -> str | None:
        try:
            verification.deliver(
                self._gateway(), to=requested.phone, code=requested.code, locale=requested.locale, kind=sms.STATUS_CODE
            )
        except sms.SmsError as exc:
            log.warning("status code for check %s not sent: %s", requested.owner_id[:8], exc.kind)
            return exc.kind
        return None

    def enqueue_notice(self, decided: events.MemberDecided) -> bool:
        """The `MemberDecided` handler: True once the notice is queued."""
        self.notice_task(decided.member_id)
        return True

    def enqueue_transfer_notice(self, decided: events.TransferDecided) -> bool:
        """The `TransferDecided` handler: the same neutral notice (the status page says what moved);
        True once queued, False when the decision is not one the worker is told of."""
        if not transfers.tells_worker(decided):
            return False
        self.notice_task(decided.member_id)
        return True

    # -- run (in the consumer) ----------------------------------------------------------------

    def send_code(self, flow: str, owner_id: str, sealed: str | None) -> str:
        """Send one code if it is still current; returns "sent", "stale" or a failure kind."""
        code = None if sealed is None else self.pii.decrypt(sealed)
        model = JoinAttempt if flow == "join" else StatusCheck
        with self.new_session() as db:
            owner = db.get(model, owner_id)
            if not is_current(owner, code, key=self.settings.key, now=utcnow()):
                log.info("%s code for %s dropped: no longer current", flow, owner_id[:8])
                return "stale"
            assert owner is not None
            phone, locale = self.pii.decrypt(owner.phone_enc), owner.locale
            kind = sms.JOIN_CODE if flow == "join" else sms.STATUS_CODE
            try:
                verification.deliver(self._gateway(), to=phone, code=code, locale=locale, kind=kind)
            except sms.SmsError as exc:
                log.warning("%s code for %s not sent: %s", flow, owner_id[:8], exc.kind)
                self._code_failed(db, owner, phone, exc.kind)
                db.commit()
                if exc.kind in TEMPORARY:
                    raise  # Huey tries again (CODE_RETRIES), still checking the code is current
                return exc.kind
        return "sent"

    def _code_failed(self, db: Session, owner: CodeState, phone: str, kind: str) -> None:
        if isinstance(owner, JoinAttempt):
            owner.send_error = kind  # the code page reads it
            db.add(owner)
        if kind == "opted_out":  # remember it, so no unasked-for text goes to this phone
            sms.record_opt_out(db, self.pii, phone, utcnow())

    def send_notice(self, member_id: int, task: Any = None) -> str:
        """The decision notice: "sent", "opted_out", "gone" or the failure kind. A temporary failure
        is raised for Huey to retry (with backoff); a last or permanent one is audited."""
        with self.new_session() as db:
            member = db.get(Member, member_id)
            if member is None:
                return "gone"
            try:
                sent = notify.send_decision(
                    db, self._gateway(), self.pii, member, link=self.settings.link, now=utcnow(), strict=True
                )
            except sms.SmsError as exc:
                retries: int = getattr(task, "retries", 0)
                if exc.kind in TEMPORARY and retries:
                    raise  # Huey tries again later
                self.notice_failed(db, member_id, exc.kind)
                db.commit()
                return exc.kind
            db.commit()  # an opt-out learnt while sending
            return "sent" if sent else "opted_out"

    @staticmethod
    def notice_failed(db: Session, member_id: int, kind: str) -> None:
        audit.record(db, NOTICE_FAILED, target_type="member", target_id=member_id, reason=kind)


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
