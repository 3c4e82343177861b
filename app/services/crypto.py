"""Field encryption for names and phones, and keyed hashes (blind indexes) to find them.

Ciphertexts are AES-256-GCM in a self-describing text token:

    g1.<base64(key id (4 bytes) | nonce (12 bytes) | ciphertext and tag)>

`g1` is the format version and the key id names the configured key that sealed it, so a
token decrypts in one AES call even with several keys configured (rotation: the first key
encrypts, every key decrypts). Plain base64 (binascii: C, unlike base64.urlsafe_*), since a
token never travels in a URL. The keys are the configured Fernet keys (`PII_ENCRYPTION_KEY`,
unchanged format); the AES key and the key id are derived from each one with HMAC-SHA256 under
their own labels. Tokens written before (Fernet: url-safe base64, never a ".") still decrypt,
so nothing already stored is lost. Fernet cost ~28 µs a call, mostly Python around two
primitives (HMAC then AES-CBC); one AES-GCM call is a few µs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "g1"
PREFIX = VERSION + "."
KEY_ID_BYTES = 4
NONCE_BYTES = 12
_HEADER = KEY_ID_BYTES + NONCE_BYTES


def _derive(fernet_key: str, label: bytes) -> bytes:
    raw = base64.urlsafe_b64decode(fernet_key.encode())
    return hmac.new(raw, b"scanjoin pii " + label, hashlib.sha256).digest()


class PiiCipher:
    """Encrypts with the first key, decrypts with any (rotation); indexes with its own key."""

    def __init__(self, encryption_keys: list[str], index_key: str) -> None:
        if not encryption_keys or not index_key:
            raise ValueError("PII keys are required")
        fernets = [Fernet(key) for key in encryption_keys]  # validates every key's format
        self._legacy = MultiFernet(fernets)
        self._keys: dict[bytes, AESGCM] = {}
        for key in encryption_keys:
            self._keys.setdefault(_derive(key, b"key id")[:KEY_ID_BYTES], AESGCM(_derive(key, b"aes-256-gcm v1")))
        self._key_id = _derive(encryption_keys[0], b"key id")[:KEY_ID_BYTES]
        self._aead = self._keys[self._key_id]
        self._index_mac = hmac.new(index_key.encode(), digestmod=hashlib.sha256)

    def encrypt(self, text: str) -> str:
        # A random 96-bit nonce per value: NIST SP 800-38D allows 2**32 of them per key, far above
        # the names and phones one key will seal (rotate PII_ENCRYPTION_KEY long before).
        nonce = os.urandom(NONCE_BYTES)
        header = self._key_id + nonce
        sealed = self._aead.encrypt(nonce, text.encode(), header)
        return PREFIX + binascii.b2a_base64(header + sealed, newline=False).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith(PREFIX):
            return self._decrypt_fernet(token)
        try:
            raw = binascii.a2b_base64(token[len(PREFIX) :], strict_mode=True)
            aead = self._keys[raw[:KEY_ID_BYTES]]
            return aead.decrypt(raw[KEY_ID_BYTES:_HEADER], raw[_HEADER:], raw[:_HEADER]).decode()
        except (KeyError, InvalidTag, binascii.Error, ValueError) as exc:
            raise ValueError("ciphertext does not decrypt with any configured key") from exc

    def is_current(self, token: str) -> bool:
        """True when `token` is sealed by the first (current) key in the current format."""
        if not token.startswith(PREFIX):
            return False
        try:
            return binascii.a2b_base64(token[len(PREFIX) :], strict_mode=True)[:KEY_ID_BYTES] == self._key_id
        except (binascii.Error, ValueError):
            return False

    def reencrypt(self, token: str) -> str:
        """`token` sealed again by the current key (unchanged when it already is)."""
        return token if self.is_current(token) else self.encrypt(self.decrypt(token))

    def _decrypt_fernet(self, token: str) -> str:
        try:
            return self._legacy.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("ciphertext does not decrypt with any configured key") from exc

    def index(self, value: str, purpose: str = "phone") -> str:
        """HMAC-SHA256 of a value under the index key, separated by purpose."""
        mac = self._index_mac.copy()
        mac.update(f"{purpose}\x00{value}".encode())
        return mac.hexdigest()


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two secrets, codes or MACs, whatever characters they hold.

    `hmac.compare_digest` raises TypeError for a str with a character beyond ASCII (a full-width
    digit typed by a Chinese input method, a pasted key): every comparison in the app goes through
    here, so such input is simply unequal (tests/security/test_constant_time.py)."""
    return hmac.compare_digest(a.encode() if isinstance(a, str) else a, b.encode() if isinstance(b, str) else b)
