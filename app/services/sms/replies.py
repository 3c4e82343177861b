"""Delivery reports and replies pushed by the mainland providers, as provider-neutral receipts.

Aliyun (SMS report / SMS up messages, pushed as a JSON list) and Tencent Cloud (status and reply
callbacks, a JSON list or one object) name the phone without +86 and the text of a reply. A reply
that is an opt-out word (TD, 退订, T, N, STOP) becomes an opted-out receipt, recorded as Twilio's
21610 is (receipts.handle_receipt); a report is a receipt with the provider's status.
"""

from __future__ import annotations

import re
from typing import Any

from app.services.sms.receipts import DeliveryReceipt

OPT_OUT_WORDS = frozenset({"TD", "退订", "T", "N", "STOP"})
MAINLAND_MOBILE = re.compile(r"^(?:\+?86)?(1[0-9]{10})$")
PROVIDERS = ("aliyun", "tencent")


def e164(phone: object) -> str | None:
    match = MAINLAND_MOBILE.match(str(phone or "").strip())
    return f"+86{match.group(1)}" if match else None


def is_opt_out(text: object) -> bool:
    return str(text or "").strip().strip("。.!！").upper() in OPT_OUT_WORDS


def _items(payload: Any) -> list[dict[str, Any]]:
    items = payload if isinstance(payload, list) else [payload]
    return [item for item in items if isinstance(item, dict)]


def _one(provider: str, item: dict[str, Any]) -> DeliveryReceipt | None:
    to = e164(item.get("phone_number") if provider == "aliyun" else item.get("mobile"))
    if to is None:
        return None
    reply = item.get("content") if provider == "aliyun" else item.get("text")
    if reply is not None:
        return DeliveryReceipt(to=to, status="reply", opted_out=is_opt_out(reply))
    if provider == "aliyun":
        ok = item.get("success") in (True, "true")
    else:
        ok = str(item.get("report_status", "")).upper() == "SUCCESS"
    return DeliveryReceipt(to=to, status="delivered" if ok else "failed")


def parse(provider: str, payload: Any) -> list[DeliveryReceipt]:
    """The receipts in a provider's push (unknown shapes and phones are skipped, never an error)."""
    if provider not in PROVIDERS:
        return []
    return [receipt for item in _items(payload) if (receipt := _one(provider, item)) is not None]
