"""Registered webhook endpoints: add (the secret is returned once), list, remove, find by event."""

from __future__ import annotations

import base64
import secrets

from sqlalchemy import delete
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from app.models import Delivery, District, WebhookDelivery, WebhookEndpoint
from app.services import audit
from app.services.crypto import PiiCipher
from app.services.webhooks.transport import check_url

EVENTS = ("member.submitted", "member.approved", "member.rejected", "member.withdrawn")
SECRET_PREFIX = "whsec_"  # noqa: S105  (Standard Webhooks: the base64 key follows this prefix)


class WebhookError(ValueError):
    """Bad input for an endpoint (its message says what to change)."""


class EndpointNotFound(LookupError):
    pass


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_events(text: str) -> list[str]:
    """`member.approved,member.rejected` → a checked list; raises WebhookError."""
    chosen = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in EVENTS]
    if unknown or not chosen:
        raise WebhookError(f"events must be among {', '.join(EVENTS)} (got {', '.join(unknown) or 'none'})")
    return chosen


def add(
    session: Session,
    pii: PiiCipher,
    url: str,
    events: list[str],
    *,
    district_code: str | None,
    allow_private: bool,
) -> tuple[WebhookEndpoint, str]:
    """Store an endpoint; returns it and its secret (shown once). Raises WebhookError or UrlRefused."""
    url = url.strip()
    if len(url) > 2000:
        raise WebhookError("the URL is longer than 2000 characters")
    check_url(url, allow_private=allow_private)
    district_id = None
    if district_code:
        district = session.exec(select(District).where(District.code == district_code.strip().upper())).first()
        if district is None:
            raise WebhookError(f"no district with code {district_code.strip().upper()}")
        district_id = district.id
    secret = new_secret()
    endpoint = WebhookEndpoint(url=url, events=events, district_id=district_id, secret_enc=pii.encrypt(secret))
    session.add(endpoint)
    session.flush()
    audit.record(
        session,
        "webhook.add",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        events=events,
        district=district_code,
    )
    return endpoint, secret


def get(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint


def listed(session: Session) -> list[tuple[WebhookEndpoint, str | None]]:
    """Every endpoint with its district's code (None: all districts), oldest first."""
    query = (
        select(WebhookEndpoint, District.code)
        .join(District, col(District.id) == col(WebhookEndpoint.district_id), isouter=True)
        .order_by(col(WebhookEndpoint.id))
    )
    return [(endpoint, code) for endpoint, code in session.exec(query)]


def remove(session: Session, endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log (queued sends find nothing and stop)."""
    endpoint = get(session, endpoint_id)
    logged = select(WebhookDelivery.id).where(col(WebhookDelivery.endpoint_id) == endpoint_id)
    session.execute(delete(Delivery).where(col(Delivery.kind) == "webhook", col(Delivery.owner_id).in_(logged)))
    session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint_id))
    session.delete(endpoint)
    session.flush()
    audit.record(session, "webhook.remove", target_type="webhook_endpoint", target_id=endpoint_id)


def matching(session: Session | OrmSession, event_type: str, district_id: int) -> list[WebhookEndpoint]:
    """The endpoints that asked for `event_type` in this district (or in every district)."""
    query = select(WebhookEndpoint).where(
        (col(WebhookEndpoint.district_id).is_(None)) | (col(WebhookEndpoint.district_id) == district_id)
    )
    # execute, not exec: the outbox's writer may hand a plain SQLAlchemy session
    return [endpoint for endpoint in session.execute(query).scalars() if event_type in endpoint.events]


def deliveries(session: Session, endpoint_id: int | None, limit: int) -> list[WebhookDelivery]:
    """The delivery log, newest first (one endpoint's, or every one's)."""
    query = select(WebhookDelivery).order_by(col(WebhookDelivery.created_at).desc()).limit(limit)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(session.exec(query))
