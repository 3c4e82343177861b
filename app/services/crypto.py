"""Field encryption for names and phones, and keyed hashes (blind indexes) to find them."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class PiiCipher:
    """Encrypts with the first key, decrypts with any (rotation); indexes with its own key."""

    def __init__(self, encryption_keys: list[str], index_key: str) -> None:
        if not encryption_keys or not index_key:
            raise ValueError("PII keys are required")
        self._fernet = MultiFernet([Fernet(key) for key in encryption_keys])
        self._index_key = index_key.encode()

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("ciphertext does not decrypt with any configured key") from exc

    def index(self, value: str, purpose: str = "phone") -> str:
        """HMAC-SHA256 of a value under the index key, separated by purpose."""
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()
