"""Signed QR tokens: compact, tamper-evident, expiring, rotatable; and small enough for QR version 3-Q."""

from __future__ import annotations

import string
from datetime import date, timedelta

import pytest
import qrcode

from app.models import PlaceKind
from app.services.tokens import MAX_ID, TOKEN_LENGTH, QrSigner, TokenExpired, TokenInvalid
from tests.conftest import need

TODAY = date(2026, 11, 29)
BASE_24 = "https://join.example.org"


def signer(*keys: str, days: int = 365) -> QrSigner:
    return QrSigner(list(keys) or ["k1"], days)


def test_round_trip_keeps_kind_id_version_and_day():
    token = signer().dumps(PlaceKind.workplace, 4321, 7, TODAY)
    ref = signer().loads(token, TODAY)
    assert (ref.kind, ref.place_id, ref.version_mod, ref.issued_on) == (PlaceKind.workplace, 4321, 7, TODAY)
    district = signer().loads(signer().dumps(PlaceKind.district, MAX_ID, 70, TODAY), TODAY)
    assert (district.kind, district.place_id, district.version_mod) == (PlaceKind.district, MAX_ID, 70 % 64)


def test_token_is_21_characters_of_qr_alphanumerics():
    token = signer().dumps(PlaceKind.workplace, 1, 1, TODAY)
    assert len(token) == TOKEN_LENGTH
    assert set(token) <= set(string.ascii_uppercase + string.digits)


def test_lower_case_token_verifies():
    token = signer().dumps(PlaceKind.district, 12, 1, TODAY)
    assert signer().loads(token.lower(), TODAY).place_id == 12


def test_every_one_character_change_is_rejected():
    token = signer().dumps(PlaceKind.workplace, 99, 3, TODAY)
    alphabet = string.ascii_uppercase + "234567"
    for i, original in enumerate(token):
        for replacement in alphabet:
            if replacement == original:
                continue
            tampered = token[:i] + replacement + token[i + 1 :]
            with pytest.raises(TokenInvalid):
                signer().loads(tampered, TODAY)


def test_other_key_is_rejected():
    token = signer("k1").dumps(PlaceKind.workplace, 5, 1, TODAY)
    with pytest.raises(TokenInvalid):
        signer("k2").loads(token, TODAY)


def test_rotation_old_key_verifies_until_removed():
    old_token = signer("old").dumps(PlaceKind.workplace, 5, 1, TODAY)
    rotated = signer("new", "old")
    assert rotated.loads(old_token, TODAY).place_id == 5
    assert signer("new").loads(rotated.dumps(PlaceKind.workplace, 5, 1, TODAY), TODAY).place_id == 5
    with pytest.raises(TokenInvalid):
        signer("new").loads(old_token, TODAY)


def test_expiry_after_max_age():
    token = signer(days=365).dumps(PlaceKind.workplace, 5, 1, TODAY)
    assert signer(days=365).loads(token, TODAY + timedelta(days=365)).place_id == 5
    with pytest.raises(TokenExpired):
        signer(days=365).loads(token, TODAY + timedelta(days=366))


def test_future_dated_token_is_invalid():
    token = signer().dumps(PlaceKind.workplace, 5, 1, TODAY + timedelta(days=5))
    with pytest.raises(TokenInvalid):
        signer().loads(token, TODAY)


@pytest.mark.parametrize("bad", ["", "A" * 20, "A" * 22, "0" * 21, "!" * 21])
def test_malformed_tokens_are_invalid(bad):
    with pytest.raises(TokenInvalid):
        signer().loads(bad, TODAY)


def test_ids_outside_the_token_range_are_refused():
    with pytest.raises(ValueError):
        signer().dumps(PlaceKind.workplace, MAX_ID + 1, 1, TODAY)


def test_join_url_fits_qr_version_3_at_level_q():
    token = signer().dumps(PlaceKind.workplace, MAX_ID, 63, TODAY)
    url = f"{BASE_24}/{token}".upper()
    assert len(BASE_24) == 24
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q)
    code.add_data(url)
    code.make(fit=True)
    assert code.version == 3


def test_a_real_decoder_reads_back_the_url_and_reports_version_3():
    try:
        import zxingcpp
    except ImportError:
        need(False, "zxing-cpp is not installed")
    token = signer().dumps(PlaceKind.workplace, 4321, 2, TODAY)
    url = f"{BASE_24}/{token}".upper()
    image = qrcode.make(url, error_correction=qrcode.constants.ERROR_CORRECT_Q, box_size=8).get_image().convert("L")
    [result] = zxingcpp.read_barcodes(image)
    assert result.text == url
    assert result.extra["ECLevel"] == "Q"
    assert int(result.extra["Version"]) == 3
