"""Flask's signed-cookie session, made cheaper for the first visit of a crowd.

Every worker who scans a poster is a first visit: the join form needs a CSRF secret in a new
session, so the answer carries a signed cookie. Flask builds its itsdangerous serializer anew
twice a request (once to open the session, once to save it) and tries to zlib-compress every
payload, though a session of a few dozen bytes never comes out smaller; and it writes the
`Vary: Cookie` header twice, Werkzeug parsing and rebuilding the header each time. This
interface builds the serializer once per key set, compresses only a payload large enough to
gain from it, and writes `Vary` once when it sets the cookie (every other case is Flask's own).

The cookie's format is unchanged (itsdangerous' URL-safe timed serializer with Flask's tagged
JSON, the same salt, key derivation and digest, the "." prefix for a compressed payload), so a
cookie signed by either interface opens with the other: a rolling deploy signs no one out.

The same first visit also needs Flask-WTF's CSRF token: `csrf_token()` makes it as Flask-WTF's
`generate_csrf()` does (same raw secret in the session, same salt and signature, so Flask-WTF
checks it on the POST unchanged), through a serializer built once. Both serializers sign through
`CachedSigner`, itsdangerous' own timestamp signer with three costs taken out (each measured
on a poster page): the signing key is derived once per key rather than on every signature, the
signer is built once per salt rather than on every `dumps`, and the HMAC is OpenSSL's one-shot
`hmac.digest` (itsdangerous hands `hmac` a Python wrapper around SHA-1, which sends it down
the module's pure-Python path). Same key derivation, digest and bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import zlib
from base64 import urlsafe_b64encode
from typing import Any

from flask import Flask, Response, current_app, g, session
from flask import json as flask_json
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes
from itsdangerous.serializer import Serializer
from itsdangerous.signer import HMACAlgorithm
from itsdangerous.signer import Signer as _Signer

# Below this many bytes of JSON, zlib's header and checksum outweigh what it saves.
COMPRESS_FROM = 256


class OneShotHMAC(HMACAlgorithm):
    """itsdangerous' HMAC with OpenSSL's one-shot `hmac.digest` (the same bytes)."""

    def __init__(self, digest_method: Any) -> None:
        super().__init__(digest_method)
        self.name = digest_method().name  # "sha1" for Flask's and Flask-WTF's signers

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.digest(key, value, self.name)


class CachedSigner(TimestampSigner):
    """itsdangerous' timestamp signer with each key derived once (a key set is fixed per signer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.algorithm = OneShotHMAC(self.digest_method)
        self._derived: dict[bytes | None, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        cache_key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        key = self._derived.get(cache_key)
        if key is None:
            key = self._derived[cache_key] = super().derive_key(secret_key)
        return key


class _CachedSignerSerializer(URLSafeTimedSerializer):
    """A URL-safe timed serializer that keeps its signer per salt (itsdangerous builds one a call)."""

    default_signer = CachedSigner

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signers: dict[bytes | None, _Signer] = {}

    def make_signer(self, salt: str | bytes | None = None) -> _Signer:
        cache_key = salt.encode() if isinstance(salt, str) else salt
        signer = self._signers.get(cache_key)
        if signer is None:
            signer = self._signers[cache_key] = super().make_signer(salt)
        return signer


class _SmallUncompressed(_CachedSignerSerializer):
    """No zlib attempt under COMPRESS_FROM bytes (it never comes out smaller); else itsdangerous' rule."""

    def dump_payload(self, obj: object) -> bytes:
        text = Serializer.dump_payload(self, obj)
        if len(text) >= COMPRESS_FROM:
            packed = zlib.compress(text)
            if len(packed) < len(text) - 1:
                return b"." + base64_encode(packed)
        return base64_encode(text)


class QuickSigner:
    """What `serializer.dumps` gives for a small JSON payload, in one function.

    For the poster page's first visit (app/web/worker/first_visit.py), which signs two payloads of
    a few dozen bytes. The key is the one the serializer's own signer derives, and the steps are
    itsdangerous' for an uncompressed payload: URL-safe base64 of the JSON, ".", the timestamp's
    bytes in URL-safe base64, ".", the HMAC of all that; tests/test_sessions.py checks the bytes
    against the serializer's. A payload of COMPRESS_FROM bytes or more is refused (it might be
    compressed).
    """

    def __init__(self, serializer: URLSafeTimedSerializer) -> None:
        signer = serializer.make_signer(serializer.salt)
        if not isinstance(signer, TimestampSigner) or not isinstance(signer.algorithm, HMACAlgorithm):
            raise TypeError("QuickSigner follows itsdangerous' timed HMAC signer only")
        self.key, self.timestamp = signer.derive_key(), signer.get_timestamp
        self.digest = signer.algorithm.digest_method().name
        self.sep = want_bytes(signer.sep)

    def sign(self, payload: bytes) -> str:
        if len(payload) >= COMPRESS_FROM:
            raise ValueError("QuickSigner signs small payloads only")
        value = _b64(payload) + self.sep + _b64(int_to_bytes(self.timestamp()))
        return (value + self.sep + _b64(hmac.digest(self.key, value, self.digest))).decode("ascii")


def _b64(data: bytes) -> bytes:
    return urlsafe_b64encode(data).rstrip(b"=")


class _SessionJSON:
    """Flask's tagged JSON for the session, with a shortcut for the usual flat session.

    A session whose keys are all `str` and whose values are all plain `str`, `int`, `bool` or
    `None` needs no tags (unless its only key is itself a tag, which Flask then wraps), so its JSON
    is the app's JSON provider's `dumps` of the dict as it is: the same bytes, without walking the
    tagger's eight checks per value. Everything else, and all reading, is Flask's.
    """

    PLAIN = (str, int, bool, type(None))

    def __init__(self, tagged: Any) -> None:
        self.tagged = tagged

    def dumps(self, value: Any) -> str:
        if (
            type(value) is dict
            and not (len(value) == 1 and next(iter(value)) in self.tagged.tags)
            and all(type(k) is str and type(v) in self.PLAIN for k, v in value.items())
        ):
            return flask_json.dumps(value, separators=(",", ":"))  # what Flask's tagger ends with
        return str(self.tagged.dumps(value))

    def loads(self, value: str | bytes) -> Any:
        return self.tagged.loads(value)


class CookieSessions(SecureCookieSessionInterface):
    """`SecureCookieSessionInterface` with one serializer per secret key and fallback keys."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[str | bytes, ...], URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)  # current key last
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = _SmallUncompressed(
                list(keys),  # itsdangerous takes a list of keys, the current one last
                salt=self.salt,
                serializer=_SessionJSON(self.serializer),
                signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
            )
            self._serializers[keys] = serializer  # a race builds two equal ones: harmless
        return serializer

    def cookie_attributes(self, app: Flask) -> dict[str, Any]:
        """The session cookie's attributes as the app's settings give them (Flask's getters), for
        every cookie this app sets: here and the first-visit answer (app/web/worker/first_visit.py)."""
        return {
            "httponly": self.get_cookie_httponly(app),
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "partitioned": self.get_cookie_partitioned(app),
            "samesite": self.get_cookie_samesite(app),
        }

    def open_session(self, app: Flask, request: Any) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()  # no cookie at all (a first visit): nothing to parse or verify
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session or not self.should_set_cookie(app, session):
            super().save_session(app, session, response)  # nothing to send, or a cookie to delete
            return
        # What Flask's save_session does for a session to send, with one Vary update.
        response.set_cookie(
            self.get_cookie_name(app),
            self.get_signing_serializer(app).dumps(dict(session)),  # type: ignore[union-attr]
            expires=self.get_expiration_time(app, session),
            **self.cookie_attributes(app),
        )
        vary = response.headers.get("Vary")
        if vary is None:
            response.headers["Vary"] = "Cookie"
        elif "cookie" not in (value.strip().lower() for value in vary.split(",")):
            response.headers["Vary"] = f"{vary}, Cookie"


# --- Flask-WTF's CSRF token, made as generate_csrf() makes it -----------------------------------

CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's
_csrf_serializers: dict[str | bytes, URLSafeTimedSerializer] = {}


def csrf_token() -> str:
    """The request's CSRF token, exactly as `flask_wtf.csrf.generate_csrf()` would give it.

    The raw secret lives in the session under WTF_CSRF_FIELD_NAME (made on first use from 64
    random bytes, as Flask-WTF makes it), the signed token is kept in `g` for the rest of the
    request, and it is signed with WTF_CSRF_SECRET_KEY or SECRET_KEY and Flask-WTF's salt, so
    Flask-WTF's `validate_csrf` (run by CSRFProtect on every POST) accepts it. Only the serializer
    is different: built once per secret instead of once per call.
    """
    config = current_app.config
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    token = g.get(field)
    if token is not None:
        return str(token)
    if not field:
        raise RuntimeError("A field name is required to use CSRF.")  # as Flask-WTF
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if field not in session:
        session[field] = new_csrf_secret()
    try:
        token = csrf_token_for(app, session[field])
    except TypeError:  # something unserializable under the field's name: start again, as Flask-WTF does
        session[field] = new_csrf_secret()
        token = csrf_token_for(app, session[field])
    setattr(g, field, token)
    return token


def csrf_token_for(app: Flask, secret: object) -> str:
    """The signed CSRF token of a session's raw CSRF secret, as Flask-WTF signs it."""
    return str(csrf_serializer(app).dumps(secret))


def csrf_serializer(app: Flask) -> URLSafeTimedSerializer:
    """The serializer that signs CSRF tokens for `app` (WTF_CSRF_SECRET_KEY or SECRET_KEY)."""
    key = app.config.get("WTF_CSRF_SECRET_KEY", app.secret_key)
    if not key:
        raise RuntimeError("A secret key is required to use CSRF.")  # as Flask-WTF
    serializer = _csrf_serializers.get(key)
    if serializer is None:
        serializer = _csrf_serializers[key] = _SmallUncompressed(key, salt=CSRF_SALT)
    return serializer


def new_csrf_secret() -> str:
    """A session's raw CSRF secret, made as Flask-WTF makes it (40 hex digits from 64 random bytes)."""
    return hashlib.sha1(os.urandom(64), usedforsecurity=False).hexdigest()  # Flask-WTF's format: random, not a digest
