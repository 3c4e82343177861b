"""Webhook deliveries: after a commit, one row per (event, endpoint), sent by the task consumer.

* The after-commit handlers (`on_submitted`, `on_decided`, `on_withdrawn`) write a
  `WebhookDelivery` per endpoint that asked for the event (its body built now, from the committed
  row) and queue a `send_webhook` task for each on the app's task queue (app/services/tasks.py).
* A send signs the stored body with the endpoint's secret (Standard Webhooks: `webhook-id` is the
  delivery's id, the same on every try; `webhook-timestamp` is the try's time; `webhook-signature`
  is `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`), posts it through the SSRF guard with a
  time limit, and records the try (status, attempts, last error: an HTTP status or an error's
  class, never the answer's text).
* A temporary failure (5xx, 408, 429, timeout, no connection) is tried again after
  `WEBHOOK_RETRY_BASE_SECONDS`, then twice as long each time (at most an hour between tries) for
  `WEBHOOK_RETRY_HOURS` after the event; then, or at once for a permanent failure (another 4xx, a
  refused address), the delivery is `failed`. "Send again" (`mark_for_resend`, the CLI) queues one more try.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from huey import Huey
from sqlmodel import Session
from standardwebhooks.webhooks import Webhook

from app.models import Member, WebhookDelivery, WebhookEndpoint, utcnow
from app.services import events
from app.services.crypto import PiiCipher
from app.services.webhooks import endpoints, payloads, transport

log = logging.getLogger(__name__)

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


class Webhooks:
    """The webhook handlers and task of one app on its task queue."""

    def __init__(self, huey: Huey, pii: PiiCipher, new_session: Callable[[], Session], settings: Settings) -> None:
        self.pii, self.new_session, self.settings = pii, new_session, settings
        self.task = huey.task(name="send_webhook")(self.send)

    # -- after the commit ---------------------------------------------------------------------

    def on_submitted(self, submitted: events.ApplicationSubmitted) -> None:
        if submitted.outcome in ("created", "reapplied"):  # not a phone that was already on the roster
            self.fan_out("member.submitted", submitted.member_id, submitted.district_id)

    def on_decided(self, decided: events.MemberDecided) -> None:
        kind = "member.approved" if decided.approved else "member.rejected"
        self.fan_out(kind, decided.member_id, decided.district_id)

    def on_withdrawn(self, withdrawn: events.MemberWithdrawn) -> None:
        self.fan_out("member.withdrawn", withdrawn.member_id, withdrawn.district_id, withdrawn=True)

    def fan_out(self, event_type: str, member_id: int, district_id: int, *, withdrawn: bool = False) -> list[str]:
        """Write a delivery per interested endpoint and queue its first try; returns their ids."""
        with self.new_session() as db:
            targets = endpoints.matching(db, event_type, district_id)
            if not targets:
                return []
            now = utcnow()
            if withdrawn:
                data = payloads.withdrawn_data(db, member_id, district_id, now)
            elif (member := db.get(Member, member_id)) is not None:
                data = payloads.member_data(db, member)
            else:
                return []  # withdrawn meanwhile: that event tells the receiver
            body = payloads.body(event_type, data, now)
            rows = [
                WebhookDelivery(id=new_id(), endpoint_id=e.id or 0, event_type=event_type, payload=body, created_at=now)
                for e in targets
            ]
            db.add_all(rows)
            db.commit()
        for row in rows:
            self.task(row.id)
        return [row.id for row in rows]

    # -- in the consumer ----------------------------------------------------------------------

    def send(self, delivery_id: str) -> str:
        """One try: "ok", "temporary" (another is scheduled or the time is up) or "permanent";
        "gone" when the delivery or its endpoint was removed or it was delivered already."""
        with self.new_session() as db:
            delivery = db.get(WebhookDelivery, delivery_id)
            endpoint = db.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
            if delivery is None or endpoint is None or delivery.status == DELIVERED:
                return "gone"
            now = utcnow()
            headers = signed_headers(self.pii.decrypt(endpoint.secret_enc), delivery.id, delivery.payload, now)
            result = transport.post(
                endpoint.url,
                delivery.payload.encode(),
                headers,
                timeout=self.settings.timeout,
                allow_private=self.settings.allow_private,
            )
            delay = self._record(delivery, result, now)
            db.add(delivery)
            db.commit()
        if delay is not None:
            self.task.schedule(args=(delivery_id,), delay=delay)
        if result.outcome is not transport.Outcome.ok:
            log.warning("webhook %s to endpoint %s: %s", delivery_id, endpoint.id, result.error)
        return result.outcome.value

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
    def mark_for_resend(db: Session, delivery_id: str) -> WebhookDelivery:
        """ "Send again": the delivery is pending once more (raises DeliveryNotFound). After the
        commit the caller queues the try (`task(delivery_id)`), with the same `webhook-id`."""
        delivery = db.get(WebhookDelivery, delivery_id)
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        delivery.status = PENDING
        db.add(delivery)
        db.flush()
        return delivery
