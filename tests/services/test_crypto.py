"""Field encryption and blind indexes."""

from __future__ import annotations

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
