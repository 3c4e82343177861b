"""Compact signed QR tokens for places.

A token is 13 bytes in base32 (21 characters, digits and upper-case letters, so the whole
join URL stays in QR alphanumeric mode): a 40-bit payload and a 64-bit truncated
HMAC-SHA256 of it. The payload holds the place kind (1 bit), its id (20 bits), its token
version modulo 64 (6 bits) and the issue day (13 bits, days since 2025-01-01). The version
alone could wrap after 64 rotations, so a token must match both the current version and the
day the current version was issued. With a 24-character base URL the join URL is 46
characters: QR version 3 at error-correction level Q (47 alphanumeric characters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, timedelta

from app.models import PlaceKind
from app.services import crypto

EPOCH = date(2025, 1, 1)
PURPOSE = b"scanjoin/qr-place/v1\x00"
MAC_BYTES = 8
PAYLOAD_BYTES = 5
TOKEN_LENGTH = 21
TOKEN_PATTERN = "[A-Za-z2-7]{21}"  # noqa: S105 - a URL pattern, not a secret
MAX_ID = (1 << 20) - 1
MAX_DAY = (1 << 13) - 1


class TokenInvalid(Exception):
    """Malformed, tampered or signed with an unknown key."""


class TokenExpired(Exception):
    """Validly signed but older than the configured maximum age."""


@dataclass(frozen=True)
class PlaceToken:
    kind: PlaceKind
    place_id: int
    version_mod: int
    issued_on: date


class QrSigner:
    """Signs with the first key; verifies with each key in turn (rotation)."""

    def __init__(self, keys: list[str], max_age_days: int) -> None:
        if not keys:
            raise ValueError("QR_SECRET is required")
        self._keys = [key.encode() for key in keys]
        self._max_age = timedelta(days=max_age_days)

    def dumps(self, kind: PlaceKind, place_id: int, version: int, issued_on: date) -> str:
        day = (issued_on - EPOCH).days
        if not 0 < place_id <= MAX_ID or not 0 <= day <= MAX_DAY:
            raise ValueError("place id or issue day out of the token's range")
        bits = (kind is PlaceKind.workplace) << 39 | place_id << 19 | (version % 64) << 13 | day
        payload = bits.to_bytes(PAYLOAD_BYTES, "big")
        raw = payload + self._mac(self._keys[0], payload)
        return base64.b32encode(raw).decode().rstrip("=")

    def loads(self, token: str, today: date) -> PlaceToken:
        """Return the token's place reference, or raise TokenInvalid / TokenExpired."""
        raw = self._decode(token)
        payload, mac = raw[:PAYLOAD_BYTES], raw[PAYLOAD_BYTES:]
        if not any(crypto.equal(mac, self._mac(key, payload)) for key in self._keys):
            raise TokenInvalid("bad signature")
        bits = int.from_bytes(payload, "big")
        place = PlaceToken(
            kind=PlaceKind.workplace if bits >> 39 else PlaceKind.district,
            place_id=(bits >> 19) & MAX_ID,
            version_mod=(bits >> 13) & 63,
            issued_on=EPOCH + timedelta(days=bits & MAX_DAY),
        )
        if place.issued_on > today + timedelta(days=1):
            raise TokenInvalid("issued in the future")
        if today - place.issued_on > self._max_age:
            raise TokenExpired("expired")
        return place

    def expires_on(self, issued_on: date) -> date:
        return issued_on + self._max_age

    @staticmethod
    def _mac(key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, PURPOSE + payload, hashlib.sha256).digest()[:MAC_BYTES]

    @staticmethod
    def _decode(token: str) -> bytes:
        if len(token) != TOKEN_LENGTH:
            raise TokenInvalid("wrong length")
        try:
            raw = base64.b32decode(token.upper() + "===")
        except (binascii.Error, ValueError) as exc:
            raise TokenInvalid("not base32") from exc
        if len(raw) != PAYLOAD_BYTES + MAC_BYTES:
            raise TokenInvalid("wrong length")
        # The last character carries one unused bit that b32decode ignores: insist on the
        # canonical spelling, so no two strings name the same token.
        if base64.b32encode(raw).decode().rstrip("=") != token.upper():
            raise TokenInvalid("not canonical")
        return raw
