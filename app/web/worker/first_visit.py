"""A poster page's first visit, answered before Flask's request cycle when its page is cached.

A crowd scanning a poster is almost all first visits: a GET of the poster's URL, no cookie, no
query. Such a request can only ever get the cached join page with a new session (holding
Flask-WTF's CSRF secret), its signed CSRF token and a new form key. Flask's request cycle (the
request and app contexts, routing, a dozen hooks, the session interface, the response object)
costs several times what that answer needs, so this WSGI layer answers it directly from the same
page cache, with the same parts the cycle would use:

* the page and its key: `poster.page_key`, `page_cache.PageCache` (filled only by the Flask
  view: a miss here goes to Flask, which renders and caches the page);
* the language: `app.locale_for_header`, what `select_locale` picks for a visitor with no session;
* the bad-token block (`Limits.bad_tokens_blocked`, failing open as the view does) and the scan
  counter (`FunnelBuffer.add`);
* the session cookie: `CookieSessions`' serializer and cookie settings; the CSRF token:
  `app.sessions.csrf_token_for`, which Flask-WTF accepts on the POST;
* the response headers: `app.security.hardening_headers`, the request id of `app/logs.py`,
  `Vary: Cookie`, and the request's timing in the metrics under `join.scan`.

Anything else goes to Flask unchanged: another method or path, a query string, a cookie (a
returning visitor, a language chosen, a message to show), a Host that Flask's own check of
TRUSTED_HOSTS refuses (Flask answers the 400), an address blocked for bad tokens (Flask renders
the 429), a page not in the cache, SERVER_NAME set, the cache turned off, or an error here
(logged; Flask then answers the request as if this layer were not there). tests/web/test_first_visit.py checks
that both paths give the same answer, and fails when a hook is added to the app that this layer
does not know about.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from werkzeug.exceptions import SecurityError
from werkzeug.http import dump_cookie
from werkzeug.wsgi import get_host

from app import LOCALE_NAMES, locale_for_header, logs
from app.models import utcnow
from app.security import hardening_headers
from app.services import limits, metrics
from app.services.tokens import TOKEN_PATTERN
from app.sessions import QuickSigner, csrf_serializer, new_csrf_secret
from app.web.worker.poster import new_form_key, page_key

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)
ENDPOINT = "join.scan"
_POSTER_PATH = re.compile(f"/{TOKEN_PATTERN}")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Signers(NamedTuple):
    keys: tuple[object, ...]
    session: QuickSigner
    csrf: QuickSigner
    field_json: bytes  # WTF_CSRF_FIELD_NAME as a JSON string


class FirstVisits:
    """WSGI middleware in front of `app`'s own `wsgi_app` (inside ProxyFix, so REMOTE_ADDR and
    the scheme are the client's)."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self._known: _Signers | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or "HTTP_COOKIE" in environ
            or environ.get("QUERY_STRING")
            or not _POSTER_PATH.fullmatch(environ.get("PATH_INFO", ""))
        ):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        request_id = logs.new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        context = logs.REQUEST_ID.set(request_id)  # a line logged meanwhile names this request
        try:
            answer = self._answer(environ, request_id)
        except Exception:  # a defect here must not cost the visitor the page: Flask answers it
            log.exception("first visit not answered before Flask; Flask answers it")
            answer = None
        finally:
            logs.REQUEST_ID.reset(context)
        if answer is None:
            return self.wsgi_app(environ, start_response)
        headers, body = answer
        start_response("200 OK", headers)
        metrics.request_done(ENDPOINT, "GET", 200, time.perf_counter() - started)
        self.app.extensions["funnel"].flush_if_due()  # what the app context's teardown does
        return [body]

    def _answer(self, environ: dict[str, Any], request_id: str) -> tuple[list[tuple[str, str]], bytes] | None:
        """The first visit's headers and body, or None: Flask answers."""
        app = self.app
        config = app.config
        cache = app.extensions["scan_pages"]
        if not cache.enabled or config.get("SERVER_NAME") or not _host_trusted(environ, config.get("TRUSTED_HOSTS")):
            return None
        locale = locale_for_header(environ.get("HTTP_ACCEPT_LANGUAGE", ""))
        today = utcnow().date()
        page = cache.get(page_key(environ["PATH_INFO"] + "?", LOCALE_NAMES.get(locale) or str(locale), today))
        if page is None or self._blocked(environ):
            return None
        quick = self._signers()
        raw = new_csrf_secret()
        token = quick.csrf.sign(b'"%s"' % raw.encode())  # JSON of the secret, as Flask-WTF signs it
        body = cache.fill(page, csrf_token=token, form_key=new_form_key()).encode()
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("X-Request-ID", request_id),
            ("Set-Cookie", self._session_cookie(quick, raw)),
            ("Vary", "Cookie"),
        ]
        https = environ.get("wsgi.url_scheme") == "https"
        headers += hardening_headers(https or config.get("PUBLIC_BASE_URL", "").startswith("https://"), static=False)
        app.extensions["funnel"].add(*page.extra, "scans", today)  # last: counted only when served
        return headers, body

    def _blocked(self, environ: dict[str, Any]) -> bool:
        guard = self.app.extensions["phone_proof"].limits
        try:
            return bool(guard.bad_tokens_blocked(limits.ip_key(environ.get("REMOTE_ADDR"))))
        except limits.LimiterUnavailable:
            return False  # reading a poster costs nothing: the page still opens (as the view does)

    def _signers(self) -> _Signers:
        """The two signers for the app's current keys (made again when a key changes)."""
        app = self.app
        config = app.config
        field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        keys = (
            app.secret_key,
            tuple(config.get("SECRET_KEY_FALLBACKS") or ()),
            config.get("WTF_CSRF_SECRET_KEY"),
            field,
        )
        known = self._known
        if known is not None and known.keys == keys:
            return known
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        field_json = json.dumps(field).encode()
        self._known = known = _Signers(keys, QuickSigner(serializer), QuickSigner(csrf_serializer(app)), field_json)
        return known

    def _session_cookie(self, quick: _Signers, csrf_secret: str) -> str:
        """The new session {field: secret} signed as CookieSessions signs it (Flask's tagged JSON
        of a one-key dict of text is the plain JSON object), in the cookie Flask would set."""
        app = self.app
        interface = app.session_interface
        value = quick.session.sign(b'{%s:"%s"}' % (quick.field_json, csrf_secret.encode()))
        return dump_cookie(
            interface.get_cookie_name(app),
            value,
            max_size=app.config.get("MAX_COOKIE_SIZE", 4093),
            **interface.cookie_attributes(app),  # type: ignore[attr-defined]  # CookieSessions'
        )


def _host_trusted(environ: dict[str, Any], trusted: list[str] | None) -> bool:
    """Flask's own check of the Host against TRUSTED_HOSTS (Werkzeug's `get_host`)."""
    if trusted is None:
        return True
    try:
        get_host(environ, trusted)
    except SecurityError:
        return False
    return True
