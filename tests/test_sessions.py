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
