"""Membership e-cards: a card URL signed with Ed25519, checkable offline with the public key.

A card token is base32 (upper case, so the whole card URL stays in QR alphanumeric mode) of

    key id (1 byte) | issued (3 bytes) | valid until (2 bytes) | member number (ASCII) | signature (64 bytes)

The key id is the first byte of SHA-256 of the raw public key (a verifier tries each key with
that id, so two keys sharing one are harmless); issued counts minutes and valid-until counts
days since 2025-01-01 (Beijing dates), which lasts until 2056. The signature covers a purpose
string and every byte before it. No name, phone or database id is in the token: the member
number (district code, dash, sequence) is what the card shows and what the server looks up.

Revocation is read from the member's current row, so no table keeps it: a card is revoked once
its number belongs to no approved member (withdrawal deletes the row; a rejection after appeal
changes the status), once the member's district no longer matches the number's (a transfer;
the new district issues a new card), or once the member was decided again after the card was
issued.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import qrcode
import qrcode.image.svg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlmodel import Session, col

from app.models import District, Member, MemberStatus
from app.services.crypto import PiiCipher
from app.services.deadlines import local_date
from config import card_private_key, card_public_key, new_card_key

generate_private_key = new_card_key

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
EPOCH_DAY = date(2025, 1, 1)
PURPOSE = b"scanjoin/member-card/v1\x00"
SIGNATURE_BYTES = 64
HEADER_BYTES = 6
MAX_NUMBER_BYTES = 40
PATH = "/C/"
TOKEN_PATTERN = "[A-Za-z2-7]{100,200}"  # noqa: S105 - a URL pattern, not a secret
QR_ECC = "M"  # read from a phone screen at arm's length: M is ample and keeps the code small


class CardInvalid(Exception):
    """Malformed, tampered or signed with an unknown key."""


class CardExpired(Exception):
    """Validly signed but past its valid-until date (the card is on `card`)."""

    def __init__(self, card: Card) -> None:
        super().__init__("expired")
        self.card = card


class CardState(enum.StrEnum):
    valid = "valid"
    expired = "expired"
    revoked = "revoked"


@dataclass(frozen=True)
class Card:
    """What a verified token says."""

    member_number: str
    issued_at: datetime
    valid_until: date
    key_id: int

    @property
    def district_code(self) -> str:
        return self.member_number.rsplit("-", 1)[0]


# --- keys ----------------------------------------------------------------------------------------


def load_private_key(text: str) -> Ed25519PrivateKey:
    return card_private_key(text)


def load_public_key(text: str) -> Ed25519PublicKey:
    return card_public_key(text)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(key: Ed25519PublicKey) -> int:
    return hashlib.sha256(raw_public(key)).digest()[0]


# --- tokens --------------------------------------------------------------------------------------


class CardVerifier:
    """Checks card tokens with public keys only (the current one and older ones)."""

    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        if not public_keys:
            raise ValueError("a card verifier needs at least one public key")
        self.public_keys = public_keys

    def loads(self, token: str, today: date) -> Card:
        """The card a token or card URL names, or raise CardInvalid / CardExpired."""
        raw = _decode(token_from(token))
        payload, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
        if not any(self._signed_by(key, payload, signature) for key in self.public_keys if key_id(key) == raw[0]):
            raise CardInvalid("bad signature")
        card = _parse(payload)
        if local_date(card.issued_at) > today + timedelta(days=1):
            raise CardInvalid("issued in the future")
        if today > card.valid_until:
            raise CardExpired(card)
        return card

    @staticmethod
    def _signed_by(key: Ed25519PublicKey, payload: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, PURPOSE + payload)
        except InvalidSignature:
            return False
        return True


class CardSigner(CardVerifier):
    """Signs with the current private key; verifies with it and the older public keys."""

    def __init__(self, private_key: Ed25519PrivateKey, older_public_keys: list[Ed25519PublicKey]) -> None:
        super().__init__([private_key.public_key(), *older_public_keys])
        self._private = private_key

    @classmethod
    def from_settings(cls, private_key: str, older_public_keys: list[str]) -> CardSigner:
        return cls(load_private_key(private_key), [load_public_key(k) for k in older_public_keys])

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.public_keys[0]

    def dumps(self, member_number: str, issued_at: datetime, valid_until: date) -> str:
        number = member_number.encode("ascii")
        minutes = int((issued_at - EPOCH).total_seconds() // 60)
        day = (valid_until - EPOCH_DAY).days
        if not 0 < len(number) <= MAX_NUMBER_BYTES or not 0 <= minutes < 1 << 24 or not 0 <= day < 1 << 16:
            raise ValueError("member number, issue time or valid-until out of the token's range")
        payload = bytes([key_id(self.public_key)]) + minutes.to_bytes(3, "big") + day.to_bytes(2, "big") + number
        raw = payload + self._private.sign(PURPOSE + payload)
        return base64.b32encode(raw).decode().rstrip("=")


def token_from(text: str) -> str:
    """The token of a card URL in either case (or the bare token)."""
    text = text.strip()
    cut = text.upper().rfind(PATH)
    return text[cut + len(PATH) :] if cut >= 0 else text


def _decode(token: str) -> bytes:
    token = token.upper()
    try:
        raw = base64.b32decode(token + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError) as exc:
        raise CardInvalid("not base32") from exc
    if len(raw) <= HEADER_BYTES + SIGNATURE_BYTES or base64.b32encode(raw).decode().rstrip("=") != token:
        raise CardInvalid("wrong length or not canonical")
    return raw


def _parse(payload: bytes) -> Card:
    try:
        number = payload[HEADER_BYTES:].decode("ascii")
    except UnicodeDecodeError as exc:
        raise CardInvalid("bad member number") from exc
    return Card(
        member_number=number,
        issued_at=EPOCH + timedelta(minutes=int.from_bytes(payload[1:4], "big")),
        valid_until=EPOCH_DAY + timedelta(days=int.from_bytes(payload[4:6], "big")),
        key_id=payload[0],
    )


# --- cards of members ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CardView:
    """What the status page and the card page show. Never the full name or the phone."""

    state: CardState
    masked_name: str
    member_number: str
    district_name: str
    union_name: str
    valid_until: date
    url: str


def mask_name(name: str) -> str:
    """陈小明 → 陈*明, 陈明 → 陈*: the first and last characters only, one star whatever the length."""
    name = "".join(name.split()) if not name.isascii() else " ".join(name.split())
    if len(name) <= 1:
        return name
    return name[0] + "*" + (name[-1] if len(name) > 2 else "")


def current_card(member: Member, *, now: datetime, valid_days: int) -> tuple[datetime, date]:
    """The issue time and valid-until of the member's card now: one card per period since approval."""
    decided = _minute(member.decided_at or now)
    period = timedelta(days=valid_days)
    issued = decided + period * max(0, (_aware(now) - decided) // period)
    return issued, local_date(issued + period)


def url_of(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{PATH}{token}".upper()


def card_for(
    session: Session,
    member: Member,
    *,
    signer: CardSigner,
    name: str,
    base_url: str,
    union_name: str,
    now: datetime,
    valid_days: int,
) -> CardView | None:
    """The card of an approved member (None otherwise), with its URL for the QR."""
    if member.status is not MemberStatus.approved or not member.member_number:
        return None
    issued, valid_until = current_card(member, now=now, valid_days=valid_days)
    token = signer.dumps(member.member_number, issued, valid_until)
    district = session.get(District, member.district_id)
    return CardView(
        state=CardState.valid,
        masked_name=mask_name(name),
        member_number=member.member_number,
        district_name=district.name if district else "",
        union_name=union_name,
        valid_until=valid_until,
        url=url_of(base_url, token),
    )


def check(session: Session, card: Card, *, now: datetime) -> tuple[CardState, Member | None, District | None]:
    """A verified card against the member's current state: valid or revoked (with who, if anyone)."""
    row = session.execute(
        select(Member, District)
        .join(District, col(District.id) == col(Member.district_id))
        .where(col(Member.member_number) == card.member_number)
    ).one_or_none()
    if row is None:
        return CardState.revoked, None, None
    member, district = row
    revoked = (
        member.status is not MemberStatus.approved
        or district.code != card.district_code
        or (member.decided_at is not None and _minute(member.decided_at) > card.issued_at)
    )
    return (CardState.revoked if revoked else CardState.valid), member, district


@dataclass(frozen=True)
class CardPage:
    """What `/C/<token>` shows: the state, the card, the masked name and the card's district."""

    state: CardState
    card: Card
    masked_name: str
    district_name: str


def page(session: Session, token: str, *, verifier: CardVerifier, pii: PiiCipher, now: datetime) -> CardPage:
    """The card page of a token, or raise CardInvalid (forged, tampered, unreadable)."""
    try:
        card = verifier.loads(token, local_date(now))
        state, member, _ = check(session, card, now=now)
    except CardExpired as exc:
        card, state = exc.card, CardState.expired
        member = session.execute(
            select(Member).where(col(Member.member_number) == card.member_number)
        ).scalar_one_or_none()
    district = session.execute(select(District).where(col(District.code) == card.district_code)).scalar_one_or_none()
    return CardPage(
        state=state,
        card=card,
        masked_name=mask_name(pii.decrypt(member.name_enc)) if member is not None else "",
        district_name=district.name if district is not None else card.district_code,
    )


def qr_svg(url: str) -> str:
    """The card URL as an inline SVG (only <svg> and <path>, no text from the URL)."""
    image = qrcode.make(
        url,
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=10,
        border=4,
    )
    return image.to_string(encoding="unicode")


def qr_png(url: str, box_size: int = 8) -> bytes:
    """The card URL as a PNG (for a "save the card" download)."""
    image = qrcode.make(url, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=4)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


def qr_version(url: str) -> int:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(url)
    code.make(fit=True)
    return int(code.version)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _minute(moment: datetime) -> datetime:
    """A moment as the token keeps it: aware UTC, to the minute."""
    return _aware(moment).astimezone(UTC).replace(second=0, microsecond=0)
