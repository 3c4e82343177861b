"""Webhook deliveries: one more kind of the outbox (app/services/tasks.py), sent by the consumer.

* In the transaction (a writer on the event channel): for `ApplicationSubmitted`, `MemberDecided`
  and `MemberWithdrawn`, each endpoint that asked for the event gets a `WebhookDelivery` (the log
  row and the body, built from the row as it commits: ids, codes, times; no name or phone) and an
  outbox row (`Delivery`, kind `webhook`, owner the delivery's id). No commit, no webhook.
* After the commit (a handler): the consumer is woken for each new row; a process killed in
  between leaves the rows to the outbox's sweep.
* In the consumer: a try signs the stored body with the endpoint's secret (Standard Webhooks:
  `webhook-id` is the delivery's id, the same on every try; `webhook-timestamp` is the try's
  time; `webhook-signature` is `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`), posts it through
  the SSRF guard with a time limit (no database transaction held meanwhile), and records the try
  (status, attempts, last error: an HTTP status or an error's class, never the answer's text).
* A temporary failure (5xx, 408, 425, 429, timeout, no connection) is tried again after
  `WEBHOOK_RETRY_BASE_SECONDS`, then twice as long each time (at most an hour between tries) for
  `WEBHOOK_RETRY_HOURS` after the event; then, or at once for a permanent failure (another 4xx, a
  refused address), the delivery is `failed`. "Send again" (`resend`, the CLI) owes one more try.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from app.models import Delivery, Member, WebhookDelivery, WebhookEndpoint, utcnow
from app.services import events, tasks
from app.services.crypto import PiiCipher
from app.services.webhooks import endpoints, payloads, transport

log = logging.getLogger(__name__)

KIND = "webhook"  # the outbox's kind
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_DELAY = 3600.0


@dataclass(frozen=True)
class Settings:
    allow_private: bool = False  # WEBHOOK_ALLOW_PRIVATE
    timeout: float = 10.0  # WEBHOOK_TIMEOUT_SECONDS, connecting and reading each
    retry_base: float = 60.0  # WEBHOOK_RETRY_BASE_SECONDS: the first retry's delay
    retry_hours: float = 24.0  # WEBHOOK_RETRY_HOURS: no retry later than this after the event


class DeliveryNotFound(LookupError):
    pass


def new_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def signed_headers(secret: str, msg_id: str, body: str, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for one try."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def what(event: events.Event) -> tuple[str, int, int] | None:
    """(event type, member id, district id) of a domain event webhooks tell, or None."""
    if isinstance(event, events.ApplicationSubmitted):
        # "created" or "reapplied"; not a phone that was already on the roster
        new = event.outcome in ("created", "reapplied")
        return ("member.submitted", event.member_id, event.district_id) if new else None
    if isinstance(event, events.MemberDecided):
        kind = "member.approved" if event.approved else "member.rejected"
        return kind, event.member_id, event.district_id
    if isinstance(event, events.MemberWithdrawn):
        return "member.withdrawn", event.member_id, event.district_id
    return None


class Owed:
    """The outbox rows a writer added for an event, handed to that event's wake-up after the commit
    (the bus passes both the same event object), so waking needs no query. An event whose commit
    failed leaves its entry; the oldest go past `CAP` (their rows were never committed anyway)."""

    CAP = 1000

    def __init__(self) -> None:
        self._rows: dict[int, tuple[events.Event, list[Delivery]]] = {}
        self._lock = threading.Lock()

    def add(self, event: events.Event, row: Delivery) -> None:
        with self._lock:
            entry = self._rows.get(id(event))
            if entry is None or entry[0] is not event:
                entry = self._rows[id(event)] = (event, [])
            entry[1].append(row)
            while len(self._rows) > self.CAP:
                del self._rows[next(iter(self._rows))]

    def take(self, event: events.Event) -> list[int]:
        with self._lock:
            entry = self._rows.pop(id(event), None)
        if entry is None or entry[0] is not event:
            return []
        return [row.id for row in entry[1] if row.id is not None]


class Webhooks:
    """The webhook writer, wake-up and sender of one app, on its outbox."""

    TOLD = (events.ApplicationSubmitted, events.MemberDecided, events.MemberWithdrawn)

    def __init__(self, outbox: tasks.Deliveries, pii: PiiCipher, settings: Settings) -> None:
        self.outbox, self.pii, self.settings = outbox, pii, settings
        self.owed = Owed()
        outbox.add_kind(KIND, self.send)

    def subscribe(self, bus: events.Bus) -> None:
        for kind in self.TOLD:
            bus.subscribe_in_transaction(kind, self.write)
            bus.subscribe(kind, self.wake)

    # -- in the transaction ---------------------------------------------------------------------

    def write(self, db: Session, event: events.Event) -> None:
        """Owe the event to every endpoint that asked for it (rows in the committing transaction)."""
        told = what(event)
        if told is None:
            return
        event_type, member_id, district_id = told
        targets = endpoints.matching(db, event_type, district_id)
        if not targets:
            return
        now = utcnow()
        if isinstance(event, events.MemberWithdrawn):
            data = payloads.withdrawn_data(db, member_id, district_id, now)
        elif (member := db.get(Member, member_id)) is not None:
            data = payloads.member_data(db, member)
        else:
            return
        body = payloads.body(event_type, data, now)
        due = now + timedelta(seconds=tasks.GRACE_SECONDS)
        for endpoint in targets:
            row = WebhookDelivery(
                id=new_id(),
                endpoint_id=endpoint.id or 0,
                member_id=member_id,
                event_type=event_type,
                payload=body,
                created_at=now,
            )
            owed = Delivery(kind=KIND, owner_id=row.id, due_at=due)
            db.add_all([row, owed])
            self.owed.add(event, owed)

    # -- after the commit -----------------------------------------------------------------------

    def wake(self, event: events.Event) -> None:
        """Wake the consumer for the rows the commit wrote."""
        for row_id in self.owed.take(event):
            self.outbox.wake_one(row_id)

    # -- in the consumer ------------------------------------------------------------------------

    def send(self, db: Session, row: Delivery) -> str:
        """One try of the outbox row's delivery: "sent", "failed" or "gone"; raises
        tasks.TryLater while another try is due (the outbox keeps the row until then)."""
        delivery = db.get(WebhookDelivery, row.owner_id)
        endpoint = db.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
        if delivery is None or endpoint is None or delivery.status == DELIVERED:
            return "gone"
        url, secret, body, endpoint_id = (
            endpoint.url,
            self.pii.decrypt(endpoint.secret_enc),
            delivery.payload,
            endpoint.id,
        )
        db.commit()  # no transaction (on SQLite: no write lock) while the receiver takes its time
        now = utcnow()
        headers = signed_headers(secret, row.owner_id, body, now)
        result = transport.post(
            url, body.encode(), headers, timeout=self.settings.timeout, allow_private=self.settings.allow_private
        )
        delivery = db.get(WebhookDelivery, row.owner_id, populate_existing=True)
        if delivery is None:
            return "gone"
        delay = self._record(delivery, result, now)
        db.add(delivery)
        if result.outcome is not transport.Outcome.ok:
            log.warning("webhook %s to endpoint %s: %s", row.owner_id, endpoint_id, result.error)
        if delay is not None:
            raise tasks.TryLater(result.outcome.value, delay)
        return "sent" if delivery.status == DELIVERED else "failed"  # the outbox's words (metrics)

    def _record(self, delivery: WebhookDelivery, result: transport.Result, now: datetime) -> float | None:
        """Note the try on the row; returns the delay of the next try, if there is one."""
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_error = result.error
        if result.outcome is transport.Outcome.ok:
            delivery.status, delivery.delivered_at = DELIVERED, now
            return None
        delay = self.next_delay(delivery.attempts, delivery.created_at, now)
        temporary = result.outcome is transport.Outcome.temporary and delay is not None
        delivery.status = PENDING if temporary else FAILED
        return delay if temporary else None

    def next_delay(self, attempts: int, created_at: datetime, now: datetime) -> float | None:
        """Seconds until the next try after `attempts` tries, or None once the retry time is over."""
        delay = min(self.settings.retry_base * 2 ** max(attempts - 1, 0), MAX_DELAY)
        deadline = _aware(created_at) + timedelta(hours=self.settings.retry_hours)
        return delay if _aware(now) + timedelta(seconds=delay) <= deadline else None

    @staticmethod
    def resend(db: Session, delivery_id: str) -> Delivery:
        """ "Send again": the delivery is pending once more and owed to the outbox (raises
        DeliveryNotFound). After the commit the caller wakes the consumer (`outbox.wake_one(row.id)`);
        the try keeps the same `webhook-id`."""
        delivery = db.get(WebhookDelivery, delivery_id)
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        delivery.status = PENDING
        row = Delivery(kind=KIND, owner_id=delivery_id, due_at=utcnow() + timedelta(seconds=tasks.GRACE_SECONDS))
        db.add_all([delivery, row])
        db.flush()
        return row
