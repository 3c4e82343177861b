"""Signed webhooks (Standard Webhooks) for the systems of a union office.

`endpoints` (register, list, remove), `payloads` (what a receiver is told: ids, codes, times),
`transport` (one POST through the SSRF guard: ok, temporary or permanent) and `delivery` (the
outbox writer, the wake-up after the commit, the send and its retries).
"""

from app.services.webhooks.delivery import DeliveryNotFound, Settings, Webhooks, signed_headers
from app.services.webhooks.endpoints import EVENTS, EndpointNotFound, WebhookError
from app.services.webhooks.transport import Outcome, UrlRefused

__all__ = [
    "EVENTS",
    "DeliveryNotFound",
    "EndpointNotFound",
    "Outcome",
    "Settings",
    "UrlRefused",
    "WebhookError",
    "Webhooks",
    "signed_headers",
]
