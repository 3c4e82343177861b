"""E-card tokens: Ed25519-signed, checkable with the public key alone, tamper-evident, expiring, rotatable."""

from __future__ import annotations

import io
import string
from datetime import UTC, date, datetime, timedelta

import pytest
import qrcode

from app.models import Member, MemberStatus
from app.services import cards
from app.services.cards import CardExpired, CardInvalid, CardSigner, CardVerifier
from config import new_card_key
from tests.conftest import need

ISSUED = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
UNTIL = date(2027, 12, 1)
TODAY = date(2026, 12, 2)
BASE_24 = "https://join.example.org"


def signer(key: str | None = None, *older: str) -> CardSigner:
    return CardSigner.from_settings(key or new_card_key(), list(older))


def test_round_trip_with_only_the_public_key():
    private = signer()
    token = private.dumps("PD-000123", ISSUED, UNTIL)
    public_only = CardVerifier([cards.load_public_key(cards.public_pem(private.public_key))])
    card = public_only.loads(token, TODAY)
    assert (card.member_number, card.district_code, card.issued_at, card.valid_until) == (
        "PD-000123",
        "PD",
        ISSUED,
        UNTIL,
    )


def test_url_in_either_case_or_bare_token():
    private = signer()
    token = private.dumps("PD-000123", ISSUED, UNTIL)
    url = cards.url_of(BASE_24, token)
    assert url == f"HTTPS://JOIN.EXAMPLE.ORG/C/{token}"
    for text in (url, url.lower(), token, token.lower(), f"  {url}\n"):
        assert private.loads(text, TODAY).member_number == "PD-000123"


def test_every_one_character_change_is_rejected():
    private = signer()
    token = private.dumps("PD-000123", ISSUED, UNTIL)
    alphabet = string.ascii_uppercase + "234567"
    for i, original in enumerate(token):
        for replacement in alphabet[:: 1 if i < 12 else 9]:  # every letter in the header, a sample after
            if replacement != original:
                with pytest.raises(CardInvalid):
                    private.loads(token[:i] + replacement + token[i + 1 :], TODAY)


@pytest.mark.parametrize("bad", ["", "A", "A" * 130, "!" * 130, "0" * 130, "HTTPS://X/C/", "A" * 5000])
def test_malformed_tokens_are_invalid(bad):
    with pytest.raises(CardInvalid):
        signer().loads(bad, TODAY)


def test_another_key_is_rejected_and_rotation_keeps_old_cards():
    old, new = new_card_key(), new_card_key()
    old_card = signer(old).dumps("PD-000001", ISSUED, UNTIL)
    old_public = cards.public_pem(signer(old).public_key)
    with pytest.raises(CardInvalid):
        signer(new).loads(old_card, TODAY)
    rotated = signer(new, old_public)
    assert rotated.loads(old_card, TODAY).member_number == "PD-000001"
    assert rotated.loads(rotated.dumps("PD-000002", ISSUED, UNTIL), TODAY).key_id == cards.key_id(rotated.public_key)


def test_expired_after_valid_until_and_future_cards_invalid():
    private = signer()
    token = private.dumps("PD-000001", ISSUED, UNTIL)
    assert private.loads(token, UNTIL).member_number == "PD-000001"
    with pytest.raises(CardExpired) as caught:
        private.loads(token, UNTIL + timedelta(days=1))
    assert caught.value.card.member_number == "PD-000001"
    with pytest.raises(CardInvalid):
        private.loads(token, ISSUED.date() - timedelta(days=3))


def test_no_name_or_phone_in_the_token():
    token = signer().dumps("PD-000001", ISSUED, UNTIL)
    raw = cards._decode(token)
    assert raw[6:-64] == b"PD-000001" and len(raw) == 6 + 9 + 64


def test_mask_name():
    assert cards.mask_name("陈小明") == "陈*明"
    assert cards.mask_name("欧阳小明") == "欧*明"
    assert cards.mask_name("陈明") == "陈*"
    assert cards.mask_name("陈") == "陈"
    assert cards.mask_name("") == ""


def test_one_card_per_period_since_approval():
    member = Member(status=MemberStatus.approved, decided_at=ISSUED.replace(second=42))
    assert cards.current_card(member, now=ISSUED + timedelta(days=10), valid_days=365) == (ISSUED, date(2027, 12, 1))
    renewed = cards.current_card(member, now=ISSUED + timedelta(days=400), valid_days=365)
    assert renewed == (ISSUED + timedelta(days=365), date(2028, 11, 30))


def card_url(number: str = "PD-000123") -> str:
    return cards.url_of(BASE_24, signer().dumps(number, ISSUED, UNTIL))


def test_card_url_qr_version_with_qrcode():
    # A 24-character base URL and a number of a 2-letter district: 154 characters, version 6 at level M
    # (41x41 modules, its last character); district codes of 3 to 17 characters need version 7 (45x45).
    url = card_url()
    assert len(url) == 154 and cards.qr_version(url) == 6
    assert len(card_url("ZZ01-000123")) == 157 and cards.qr_version(card_url("ZZ01-000123")) == 7
    assert cards.qr_version(card_url("ZHENGZHOU-JINSHUI-000123")) == 7


def test_a_real_decoder_reads_the_card_qr():
    try:
        import zxingcpp
    except ImportError:
        need(False, "zxing-cpp is not installed")
    url = card_url()
    image = qrcode.make(url, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4).get_image().convert("L")
    [result] = zxingcpp.read_barcodes(image)
    assert result.text == url
    assert result.extra["ECLevel"] == "M" and int(result.extra["Version"]) == 6


def test_qr_png_reads_back():
    try:
        import zxingcpp
    except ImportError:
        need(False, "zxing-cpp is not installed")
    from PIL import Image

    url = card_url()
    png = cards.qr_png(url)
    assert png.startswith(b"\x89PNG")
    [result] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert result.text == url


def test_qr_svg_is_inline_svg_only():
    svg = cards.qr_svg(card_url())
    assert svg.startswith("<svg") and "<script" not in svg and "href" not in svg
