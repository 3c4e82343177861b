"""Field encryption and blind indexes."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from app.services.crypto import PiiCipher


def test_encrypt_round_trip_and_ciphertext_hides_the_text():
    cipher = PiiCipher([Fernet.generate_key().decode()], "index-key")
    token = cipher.encrypt("王小明")
    assert "王小明" not in token and cipher.decrypt(token) == "王小明"
    assert cipher.encrypt("王小明") != token, "random IV: equal texts give different ciphertexts"


def test_rotation_decrypts_with_an_older_key():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = PiiCipher([old], "k").encrypt("x")
    assert PiiCipher([new, old], "k").decrypt(token) == "x"
    with pytest.raises(ValueError):
        PiiCipher([new], "k").decrypt(token)


def test_index_is_keyed_stable_and_purpose_separated():
    key = Fernet.generate_key().decode()
    a, b = PiiCipher([key], "k1"), PiiCipher([key], "k2")
    assert a.index("+8617000000001") == a.index("+8617000000001")
    assert a.index("+8617000000001") != b.index("+8617000000001")
    assert a.index("0001", purpose="last4") != a.index("0001")
    assert len(a.index("x")) == 64


def test_tokens_are_versioned_aes_gcm_naming_their_key():
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = PiiCipher([first, second], "k").encrypt("王小明")
    assert token.startswith("g1.")
    again = PiiCipher([first], "k").encrypt("王小明")
    assert token[3:8] == again[3:8], "the key id (first 4 bytes) names the first key"
    assert PiiCipher([second, first], "k").encrypt("x")[3:8] != token[3:8]


def test_tokens_written_with_fernet_still_decrypt():
    key = Fernet.generate_key().decode()
    old_token = Fernet(key).encrypt("王小明".encode()).decode()
    assert PiiCipher([key], "k").decrypt(old_token) == "王小明"
    assert PiiCipher([Fernet.generate_key().decode(), key], "k").decrypt(old_token) == "王小明"


def _flip(token: str, position: int) -> str:
    """The token with one bit of its decoded bytes flipped (changing a base64 character may only
    touch padding bits)."""
    raw = bytearray(base64.b64decode(token[3:]))
    raw[position] ^= 1
    return "g1." + base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: _flip(t, -1),  # the tag
        lambda t: _flip(t, 20),  # the ciphertext
        lambda t: _flip(t, 8),  # the nonce: bound as associated data
        lambda t: _flip(t, 0),  # the key id: names no configured key
        lambda t: t[:-8],  # truncated
        lambda t: "g1.!!",  # not base64
        lambda t: "g1.",  # empty
    ],
)
def test_a_damaged_token_is_refused(damage):
    cipher = PiiCipher([Fernet.generate_key().decode()], "k")
    token = cipher.encrypt("王小明")
    for _ in range(20):  # random nonces: different tokens
        with pytest.raises(ValueError):
            cipher.decrypt(damage(token))
        token = cipher.encrypt("王小明")


def test_a_bad_key_is_refused_at_construction():
    with pytest.raises(ValueError):
        PiiCipher(["not-a-key"], "k")
