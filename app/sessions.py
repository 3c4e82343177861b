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
"""

from __future__ import annotations

import zlib

from flask import Flask, Response
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.serializer import Serializer

# Below this many bytes of JSON, zlib's header and checksum outweigh what it saves.
COMPRESS_FROM = 256


class _SessionSerializer(URLSafeTimedSerializer):
    def dump_payload(self, obj: object) -> bytes:
        text = Serializer.dump_payload(self, obj)
        if len(text) >= COMPRESS_FROM:
            packed = zlib.compress(text)
            if len(packed) < len(text) - 1:
                return b"." + base64_encode(packed)
        return base64_encode(text)


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
            serializer = _SessionSerializer(
                list(keys),  # itsdangerous takes a list of keys, the current one last
                salt=self.salt,
                serializer=self.serializer,
                signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
            )
            self._serializers[keys] = serializer  # a race builds two equal ones: harmless
        return serializer

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session or not self.should_set_cookie(app, session):
            super().save_session(app, session, response)  # nothing to send, or a cookie to delete
            return
        # What Flask's save_session does for a session to send, with one Vary update.
        response.set_cookie(
            self.get_cookie_name(app),
            self.get_signing_serializer(app).dumps(dict(session)),  # type: ignore[union-attr]
            expires=self.get_expiration_time(app, session),
            httponly=self.get_cookie_httponly(app),
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            partitioned=self.get_cookie_partitioned(app),
            samesite=self.get_cookie_samesite(app),
        )
        vary = response.headers.get("Vary")
        if vary is None:
            response.headers["Vary"] = "Cookie"
        elif "cookie" not in (value.strip().lower() for value in vary.split(",")):
            response.headers["Vary"] = f"{vary}, Cookie"
