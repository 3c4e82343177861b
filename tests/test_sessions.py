"""The session cookie: Flask's format, with the serializer built once and no zlib for small payloads."""

from __future__ import annotations

import pytest
from flask import Flask, session
from flask.sessions import SecureCookieSessionInterface

from app.sessions import COMPRESS_FROM, CookieSessions


def _stock(app: Flask) -> SecureCookieSessionInterface:
    return SecureCookieSessionInterface()


def test_the_app_uses_it(app: Flask) -> None:
    assert isinstance(app.session_interface, CookieSessions)


def test_one_serializer_per_key_set(app: Flask) -> None:
    sessions = CookieSessions()
    first = sessions.get_signing_serializer(app)
    assert first is not None and sessions.get_signing_serializer(app) is first
    app.config["SECRET_KEY_FALLBACKS"] = ["an-older-key-" + "o" * 40]
    rotated = sessions.get_signing_serializer(app)
    assert rotated is not first, "a new key set gets a serializer of its own"


def test_cookies_open_both_ways_with_flasks_own_interface(app: Flask) -> None:
    ours, stock = CookieSessions().get_signing_serializer(app), _stock(app).get_signing_serializer(app)
    assert ours is not None and stock is not None
    small = {"csrf_token": "a" * 40, "lang": "en"}
    large = {"csrf_token": "a" * 40, "_flashes": [("message", "你好 " * 200)]}
    for payload in (small, large):
        assert stock.loads(ours.dumps(payload)) == payload
        assert ours.loads(stock.dumps(payload)) == payload


def test_small_sessions_are_not_compressed_large_ones_are(app: Flask) -> None:
    serializer = CookieSessions().get_signing_serializer(app)
    assert serializer is not None
    small = serializer.dumps({"csrf_token": "a" * 40})
    assert not small.startswith("."), "a few dozen bytes never shrink: no zlib attempt"
    large = serializer.dumps({"_flashes": [("message", "x" * (COMPRESS_FROM * 4))]})
    assert large.startswith("."), "a large, repetitive session is compressed as Flask would"


def test_a_cookie_signed_with_a_fallback_key_still_opens(app: Flask) -> None:
    old = "an-older-key-" + "o" * 40

    @app.get("/__whoami")
    def whoami() -> str:
        return str(session.get("who"))

    signed_with_old = Flask("old")
    signed_with_old.secret_key = old
    cookie = _stock(signed_with_old).get_signing_serializer(signed_with_old).dumps({"who": "w1"})  # type: ignore[union-attr]
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    assert client.get("/__whoami").text == "None", "an unknown key opens nothing"
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    assert client.get("/__whoami").text == "w1"


def test_a_tampered_cookie_gives_an_empty_session(app: Flask) -> None:
    @app.get("/__whoami")
    def whoami() -> str:
        return str(session.get("who"))

    cookie = CookieSessions().get_signing_serializer(app).dumps({"who": "w1"})  # type: ignore[union-attr]
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    assert client.get("/__whoami").text == "None"


def _answer(
    app: Flask, interface: SecureCookieSessionInterface, data: dict[str, object], vary: str | None
) -> dict[str, list[str]]:
    from flask.sessions import SecureCookieSession

    session = SecureCookieSession(data)
    session["touched"] = True  # modified, as a view would leave it
    response = app.response_class("x")
    if vary is not None:
        response.headers["Vary"] = vary
    interface.save_session(app, session, response)
    cookie = response.headers.get("Set-Cookie", "")
    name, _, rest = cookie.partition("=")
    # The attributes after the value; Expires is now + the lifetime, which may tick between calls.
    attributes = [part.strip() for part in rest.split(";")[1:] if not part.strip().startswith("Expires=")]
    return {"cookie": [name, *attributes], "vary": response.headers.getlist("Vary"), "expires": ["Expires=" in cookie]}


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_NAME": "__Host-session", "SESSION_COOKIE_SAMESITE": "Strict"},
        {
            "SESSION_COOKIE_DOMAIN": "join.example.org",
            "SESSION_COOKIE_PARTITIONED": True,
            "SESSION_COOKIE_SECURE": True,
        },
        {"SESSION_PERMANENT": True, "SESSION_REFRESH_EACH_REQUEST": True},
    ],
)
@pytest.mark.parametrize("vary", [None, "Accept-Language", "Accept-Language, cookie"])
def test_the_cookie_and_vary_are_flasks_own(app: Flask, settings: dict[str, object], vary: str | None) -> None:
    app.config.update(settings)
    with app.test_request_context("/"):
        for data in ({"csrf_token": "a" * 40}, {}, {"_permanent": True, "lang": "en"}):
            ours = _answer(app, CookieSessions(), data, vary)
            stock = _answer(app, _stock(app), data, vary)
            assert ours == stock, (settings, vary, data)
            assert "HttpOnly" in ours["cookie"], "a cookie with its attributes was set"


# --- the same bytes as Flask and Flask-WTF, made cheaper ---------------------------------------

FROZEN = 1_800_000_000


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every itsdangerous timestamp signer (ours inherits it) signs at one fixed second."""
    from itsdangerous import TimestampSigner

    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: FROZEN)


SESSIONS: list[dict[str, object]] = [
    {},
    {"csrf_token": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"},  # a real one: 40 random hex digits
    {"csrf_token": "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", "lang": "en", "_fresh": False, "n": 3, "nothing": None},
    {"name": '张三 é "quoted" \\ </script>'},  # non-ASCII, escapes: the provider's ensure_ascii
    {"z": "last", "a": "first"},  # key order: the provider sorts
    {" t": "a tag's key alone"},  # Flask wraps a one-key dict whose key is a tag
    {" t": "a tag's key", "other": "x"},
]


def _tagged_cases() -> list[dict[str, object]]:
    import uuid
    from datetime import UTC, datetime

    from markupsafe import Markup

    class Text(str):
        pass

    return [
        {"m": Markup("<b>markup</b>")},
        {"when": datetime(2026, 12, 1, 8, 0, tzinfo=UTC)},
        {"id": uuid.UUID(int=7)},
        {"raw": b"\x00bytes"},
        {"pair": ("a", 1)},
        {"flashes": [("message", "saved")]},
        {"nested": {"a": 1}},
        {"sub": Text("a str subclass")},
        {"f": 1.5},
    ]


@pytest.mark.parametrize("data", SESSIONS + _tagged_cases())
def test_session_json_is_flasks_tagged_json(app: Flask, data: dict[str, object]) -> None:
    from app.sessions import _SessionJSON

    stock = SecureCookieSessionInterface.serializer
    with app.app_context():
        assert _SessionJSON(stock).dumps(data) == stock.dumps(data)
        assert _SessionJSON(stock).loads(stock.dumps(data)) == data


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("data", SESSIONS + _tagged_cases())
def test_the_cookie_value_is_byte_for_byte_flasks(app: Flask, data: dict[str, object]) -> None:
    app.config["SECRET_KEY_FALLBACKS"] = ["an-older-key-" + "o" * 40]
    with app.app_context():
        ours = CookieSessions().get_signing_serializer(app)
        stock = _stock(app).get_signing_serializer(app)
        assert ours is not None and stock is not None
        if not stock.dumps(data).startswith("."):  # Flask did not compress it: neither do we
            assert ours.dumps(data) == stock.dumps(data)
        assert ours.loads(stock.dumps(data)) == stock.loads(ours.dumps(data)) == data


def test_a_first_visit_opens_an_empty_session_without_reading_cookies(app: Flask) -> None:
    sessions = CookieSessions()
    with app.test_request_context("/"):
        from flask import request

        opened = sessions.open_session(app, request)
        assert opened is not None and dict(opened) == {} and not opened.modified
    cookie = sessions.get_signing_serializer(app).dumps({"who": "w2"})  # type: ignore[union-attr]
    header = f"{app.config['SESSION_COOKIE_NAME']}={cookie}"
    with app.test_request_context("/", headers={"Cookie": header}):
        from flask import request

        assert dict(sessions.open_session(app, request) or {}) == {"who": "w2"}, "a cookie is still read"
    app.secret_key = None
    with app.test_request_context("/"):
        from flask import request

        assert sessions.open_session(app, request) is None, "no key, no session: Flask's own answer"


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("secret", [None, "a-csrf-only-secret-" + "c" * 30])
def test_csrf_token_is_flask_wtfs_token(app: Flask, secret: str | None) -> None:
    from flask import g
    from flask_wtf.csrf import generate_csrf, validate_csrf

    from app.sessions import csrf_token

    if secret is None:
        app.config.pop("WTF_CSRF_SECRET_KEY", None)  # SECRET_KEY signs it
    else:
        app.config["WTF_CSRF_SECRET_KEY"] = secret
    with app.test_request_context("/"):
        ours = csrf_token()
        assert csrf_token() == ours, "one token a request, as Flask-WTF keeps it in g"
        raw = session["csrf_token"]
        assert len(raw) == 40 and int(raw, 16) >= 0, "Flask-WTF's raw secret: 40 hex digits"
        delattr(g, "csrf_token")
        assert generate_csrf() == ours, "the same raw secret and second give Flask-WTF's bytes"
        validate_csrf(ours)  # raises when it does not accept it
    with app.test_request_context("/"):
        session["csrf_token"] = raw
        assert csrf_token() == ours, "a session that has a secret keeps it"
        session["csrf_token"] = {1, 2}  # not JSON: Flask-WTF starts again
        delattr(g, "csrf_token")
        fresh = csrf_token()
        assert session["csrf_token"] != raw and isinstance(session["csrf_token"], str)
        validate_csrf(fresh)


def test_a_csrf_token_from_another_key_is_refused(app: Flask) -> None:
    from flask_wtf.csrf import validate_csrf
    from wtforms import ValidationError

    from app.sessions import csrf_token

    with app.test_request_context("/"):
        token = csrf_token()
        app.secret_key = "another-key-" + "k" * 40
        with pytest.raises(ValidationError):
            validate_csrf(token)


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("fallbacks", [None, ["an-older-key-" + "o" * 40]])
def test_the_quick_signer_signs_as_the_serializer_does(app: Flask, fallbacks: list[str] | None) -> None:
    import json

    from app.sessions import QuickSigner, csrf_serializer, new_csrf_secret

    app.config["SECRET_KEY_FALLBACKS"] = fallbacks
    with app.app_context():
        sessions = CookieSessions().get_signing_serializer(app)
        assert sessions is not None
        for _ in range(20):
            secret = new_csrf_secret()
            payload = {"csrf_token": secret}
            assert QuickSigner(sessions).sign(json.dumps(payload, separators=(",", ":")).encode()) == sessions.dumps(
                payload
            )
            csrf = csrf_serializer(app)
            assert QuickSigner(csrf).sign(json.dumps(secret).encode()) == csrf.dumps(secret)
        with pytest.raises(ValueError, match="small payloads"):
            QuickSigner(sessions).sign(b"x" * COMPRESS_FROM)
