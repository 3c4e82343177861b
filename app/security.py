"""Web hardening on every request and response, errors included (docs/security.md E1–E5)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from flask import Flask, Response, abort, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from limits.errors import StorageError
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import SecurityError
from werkzeug.routing import UnicodeConverter, ValidationError

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HSTS_SECONDS = 63072000  # two years (E1 asks for at least one)
HSTS = f"max-age={HSTS_SECONDS}; includeSubDomains"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask) -> None:
    # First of all before_request functions: a cross-site POST is refused before CSRF or any
    # limiter runs, so it costs nothing and changes nothing.
    app.before_request_funcs.setdefault(None, []).insert(0, reject_cross_site)
    app.after_request(add_headers)
    app.register_error_handler(StorageError, limiter_down)
    app.register_error_handler(redis.RedisError, limiter_down)
    app.register_error_handler(SecurityError, bad_host)


def bad_host(_exc: SecurityError) -> Response:
    """A Host outside TRUSTED_HOSTS: no URL can be built for it, so a page without links."""
    body = "<!doctype html><meta charset=utf-8><title>400</title><h1>400 Bad Request</h1>"
    return Response(body, status=400, mimetype="text/html")


def limiter_down(_exc: Exception) -> ResponseReturnValue:
    """A limit that cannot be counted is not passed (fail closed): 503, never a 500 or a pass."""
    from app.web.errors import render_error

    return render_error(503)


def reject_cross_site() -> None:
    """Fetch metadata (E4): browsers mark requests another site made; never act on those."""
    if request.method not in SAFE_METHODS and request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403)


def check_csrf() -> None:
    """Flask-WTF's CSRF check (its exemptions applied) on the methods it protects; a GET skips it."""
    config = current_app.config
    if config["WTF_CSRF_ENABLED"] and request.method in config["WTF_CSRF_METHODS"]:
        current_app.extensions["csrf"].protect(apply_exemptions=True)


# Every answer's hardening headers, in order; a view that set one of them keeps its own value.
ALWAYS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    # same-origin keeps the Referer that Flask-WTF's HTTPS check needs (docs/security.md E3).
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


_HARDENING = {
    (https, static): (
        *ALWAYS,
        *((("Strict-Transport-Security", HSTS),) if https else ()),
        *(() if static else (("Cache-Control", "no-store"),)),
    )
    for https in (False, True)
    for static in (False, True)
}


def hardening_headers(https: bool, static: bool) -> tuple[tuple[str, str], ...]:
    """The hardening headers of an answer over HTTPS or not, for a static file or not."""
    return _HARDENING[https, static]


def add_headers(response: Response) -> Response:
    wanted = hardening_headers(_served_over_https(), request.endpoint == "static")
    # One pass over the headers already set, instead of a failed lookup per header (each one
    # raises and catches an exception inside Werkzeug): this runs on every answer.
    present = {name.lower() for name in response.headers.keys()}
    response.headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
    return response


def _served_over_https() -> bool:
    # Behind a TLS proxy without X-Forwarded-Proto the request looks like http: the public
    # address decides, so HSTS is never lost in production.
    return request.is_secure or current_app.config.get("PUBLIC_BASE_URL", "").startswith("https://")


# --- input at the boundary (issue 12, items 2 and 5) ----------------------------------------

# Categories never kept in text from outside: controls, format characters (bidi overrides,
# zero-width marks), unassigned code points, lone surrogates, private use; line and paragraph
# separators too (only "\n" breaks a line, and only in a multi-line field).
DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Cs", "Co", "Zl", "Zp"})
# Fields whose value may span lines. None today (every form field is one line); the set is here
# so a future multi-line field is one word away.
MULTILINE_FIELDS: frozenset[str] = frozenset()


def clean_text(value: str, *, multiline: bool = False) -> str:
    """Text as stored and shown: NFC, with every control, format, unassigned and surrogate
    character removed ("\\n" kept, CR LF and CR made "\\n", when `multiline`)."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if value.isascii() and value.isprintable():
        return value  # the common case: nothing to do
    kept = "".join(ch for ch in value if (multiline and ch == "\n") or not _dropped(ch))
    return unicodedata.normalize("NFC", kept)


def _dropped(ch: str) -> bool:
    return unicodedata.category(ch) in DROPPED_CATEGORIES


def clean_value(key: str, value: Any) -> Any:
    return clean_text(value, multiline=key in MULTILINE_FIELDS) if type(value) is str else value


class CleanMultiDict(ImmutableMultiDict[str, Any]):
    """Form and query values (and names) cleaned once, when Werkzeug parses them, for every view."""

    def __init__(self, mapping: Any = None) -> None:
        if mapping is None:
            super().__init__()
            return
        items = mapping.items(multi=True) if isinstance(mapping, MultiDict) else mapping
        items = items.items() if isinstance(items, dict) else items
        super().__init__([(clean_text(k) if type(k) is str else k, clean_value(k, v)) for k, v in items])


def clean_json(value: Any, key: str = "") -> Any:
    """A parsed JSON body with every string (keys included) cleaned."""
    if type(value) is str:
        return clean_value(key, value)
    if type(value) is dict:
        return {clean_text(k): clean_json(v, k) for k, v in value.items()}
    if type(value) is list:
        return [clean_json(v, key) for v in value]
    return value


def unclean_fields(query_string: bytes, json_text: bytes = b"") -> list[str]:
    """The query parameters and JSON fields whose raw text `clean_text` would change.

    The API refuses such input instead of cleaning it: a program is told exactly what it sent
    wrong, and a length or pattern its schema promises holds for the text as sent.
    """
    pairs = parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True)
    names = ["a parameter name" if _unclean(k) else k for k, v in pairs if _unclean(k) or _unclean(v)]
    if json_text:
        try:
            body = json.loads(json_text)
        except ValueError:
            return names  # not JSON: the view answers that
        names += list(_unclean_json(body, "body"))
    return names


def _unclean(value: str) -> bool:
    return clean_text(value) != value


def _unclean_json(value: Any, where: str) -> Iterator[str]:
    if type(value) is str:
        if _unclean(value):
            yield where
    elif type(value) is dict:
        for key, item in value.items():
            yield from ([f"{where}: a key"] if _unclean(key) else [])
            yield from _unclean_json(item, f"{where}.{key}" if not _unclean(key) else where)
    elif type(value) is list:
        for index, item in enumerate(value):
            yield from _unclean_json(item, f"{where}[{index}]")


class CleanString(UnicodeConverter):
    """A URL segment (a place code…) with a character `clean_text` would drop matches no route: 404."""

    def to_python(self, value: str) -> str:
        if clean_text(value) != value:
            raise ValidationError()
        return value


class CleanJSONProvider(DefaultJSONProvider):
    """The app's JSON provider: bodies read through it (request.get_json) come out cleaned."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return clean_json(super().loads(s, **kwargs))


# --- redirect targets (issue 12, item 1) -------------------------------------------------------

_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
_C0_AND_SPACE = "".join(map(chr, range(33)))


def safe_path(target: object, default: str) -> str:
    """`target` if it is a path on this site as a browser would read it, else `default`.

    Browsers drop tabs and newlines anywhere in a URL, trim leading and trailing controls and
    spaces, read a backslash as a slash and "//" as another host; Werkzeug drops some of these
    when it writes the Location header. So the target is judged after those steps, and refused
    (not repaired) when they would change it, when it is not a plain path, or when its
    percent-decoded form would be read as another host."""
    if not isinstance(target, str) or not target or len(target) > 2048:
        return default
    if not _seen_as_path(target, strict=True) or not _seen_as_path(unquote(target), strict=False):
        return default
    return target


def _seen_as_path(target: str, *, strict: bool) -> bool:
    """A path on this site however a browser reads it; `strict`: and reading changes nothing."""
    seen = target.translate(_TAB_NEWLINE).strip(_C0_AND_SPACE)
    if strict and (seen != target or any(_dropped(ch) or ch.isspace() for ch in target)):
        return False
    if not seen.startswith("/") or seen.startswith("//") or "\\" in seen:
        return False
    parts = urlsplit(seen)
    return not parts.scheme and not parts.netloc


def same_origin_referrer(referrer: str | None, host_url: str, default: str) -> str:
    """The path (and query) of a Referer from this site, judged as `safe_path`; else `default`."""
    if not referrer or not referrer.startswith(host_url):
        return default
    return safe_path("/" + referrer[len(host_url) :], default)


# --- one limit per action, whichever door it comes through (issue 12, item 3) -----------------

# Each action a person can repeat, with its limit per account. The pages and the API share the
# count (one Flask-Limiter scope per action), so a second door never doubles the allowance.
ACTION_LIMITS: dict[str, str] = {
    "export": "20 per hour",  # roster files: /roster/export.* and GET /api/v1/members/export
}


def action_limit(action: str, account_id: Callable[[], int]) -> Callable[[F], F]:
    """The limit of `action` counted per account, shared by every view decorated with it."""
    from app.extensions import limiter

    return limiter.shared_limit(  # type: ignore[return-value]
        ACTION_LIMITS[action], scope=f"action-{action}", key_func=lambda: f"{action}:{account_id()}"
    )
