"""Web hardening (docs/security.md E1–E6; scenarios 30, 31, 35, 40): CSRF, fetch metadata, headers, cookies."""

from __future__ import annotations

import pytest
from flask import request
from sqlalchemy.exc import OperationalError

import config as settings
from app import create_app
from tests import factories
from tests.conftest import hidden_fields
from tests.security.conftest import attempts, browser, submit

FORM = {"name": "王小明", "phone": factories.phone(1), "platform": "meituan", "consent": "y"}


def app_with(env, **overrides):  # type: ignore[no-untyped-def]
    return create_app(settings.TestingConfig({**env, **overrides}))


def test_cross_site_post_is_refused_even_with_a_valid_token(app, path, sms, db):
    client = browser(app)
    page = client.get(path)
    data = {**hidden_fields(page.text), **FORM}
    assert client.post(path, data=FORM).status_code == 400, "no CSRF token"
    refused = client.post(path, data=data, headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403 and "<h1>" in refused.text
    assert sms.sent == [] and attempts(db) == []
    assert client.post(path, data=data, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 303


def test_cross_site_get_still_works(client, path):
    # A worker arriving from WeChat or a search result is a cross-site navigation.
    assert client.get(path, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_same_origin_https_post_with_the_referer_our_policy_sends_is_accepted(env, station):
    app = app_with(env, TRUSTED_HOSTS="join.example.org")
    client = app.test_client()
    base = "https://join.example.org"
    path = factories.join_path(app, station)
    page = client.get(path, base_url=base)
    assert page.headers["Referrer-Policy"] == "same-origin", "same-origin requests keep their Referer"
    data = {**hidden_fields(page.text), **FORM}
    without = client.post(path, data=data, base_url=base)
    assert without.status_code == 400, "Flask-WTF's HTTPS check needs the Referer (never use no-referrer)"
    accepted = client.post(path, data=data, base_url=base, headers={"Referer": base + path})
    assert accepted.status_code == 303


def _responses(app, path):  # type: ignore[no-untyped-def]
    """One response of every kind: page, redirect, 400, 403, 404, 410-ish, 413, 429, 500."""

    @app.get("/__boom")
    def boom():  # type: ignore[no-untyped-def]
        raise OperationalError("SELECT name_enc FROM member WHERE phone_index = ?", {}, Exception("locked"))

    client = browser(app)
    yield "page", client.get(path)
    yield "redirect", client.get("/lang/en")
    yield "csrf", client.post(path, data=FORM)
    yield "cross-site", client.post(path, data=FORM, headers={"Sec-Fetch-Site": "cross-site"})
    yield "not found", client.get("/nothing-here")
    yield "too large", client.post(path, data={"name": "x" * 70_000})
    yield "error", client.get("/__boom")
    page = client.get(path)
    client.post(path, data={**hidden_fields(page.text), **FORM})
    # A resend within the cooldown is a 303 to the code page (post/redirect/get): the number's
    # own limit answers 429 on a page of its own (the join's code, one status code, then refused).
    for _ in range(2):
        asked = client.post("/status/", data={**hidden_fields(client.get("/status/").text), "phone": FORM["phone"]})
    yield "too many", asked


def test_security_headers_on_every_response_errors_included(app, path):
    seen = {}
    for kind, response in _responses(app, path):
        seen[kind] = response.status_code
        headers = response.headers
        assert headers["Strict-Transport-Security"].startswith("max-age=63072000"), kind
        assert "includeSubDomains" in headers["Strict-Transport-Security"], kind
        csp = headers["Content-Security-Policy"]
        for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
            assert directive in csp, (kind, directive)
        assert "http" not in csp, "no other origin at all"
        assert headers["X-Content-Type-Options"] == "nosniff", kind
        assert headers["Referrer-Policy"] == "same-origin", kind
        assert headers["Cache-Control"] == "no-store", kind
    assert seen == {
        "page": 200,
        "redirect": 302,
        "csrf": 400,
        "cross-site": 403,
        "not found": 404,
        "too large": 413,
        "error": 500,
        "too many": 429,
    }


def test_a_header_the_view_set_is_kept_and_never_doubled(app):
    @app.get("/__own")
    def own():  # type: ignore[no-untyped-def]
        return "x", 200, {"cache-control": "private, max-age=60", "X-Frame-Options": "SAMEORIGIN"}

    headers = app.test_client().get("/__own").headers
    assert headers.getlist("Cache-Control") == ["private, max-age=60"], "the view's own value, once"
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers.getlist("X-Content-Type-Options") == ["nosniff"], "the others are still added"


def test_no_hsts_over_plain_http_in_development(env, station):
    app = app_with(env, PUBLIC_BASE_URL="http://127.0.0.1:5000")
    assert "Strict-Transport-Security" not in app.test_client().get("/").headers
    secure = app.test_client().get("/", base_url="https://127.0.0.1:5000")
    assert "Strict-Transport-Security" in secure.headers


def test_error_page_is_generic(app):
    @app.get("/__boom")
    def boom():  # type: ignore[no-untyped-def]
        raise OperationalError("SELECT name_enc FROM member", {"phone": factories.phone(1)}, Exception("locked"))

    response = app.test_client().get("/__boom")
    assert response.status_code == 500 and "<h1>" in response.text
    for leak in ("Traceback", "SELECT", "OperationalError", "member", factories.phone(1), "locked"):
        assert leak not in response.text
    assert app.debug is False


def test_session_cookie_flags(env, path):
    app = app_with(env, SESSION_COOKIE_SECURE="true")
    response = app.test_client().get("/lang/en", base_url="https://join.example.org")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session="), cookie
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert "Domain=" not in cookie


def test_session_cookie_is_http_only_and_lax_in_development(app):
    cookie = app.test_client().get("/lang/en").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_uses_a_host_only_secure_cookie(keys, tmp_path):
    config = settings.load_config(
        {
            **keys,
            "APP_ENV": "production",
            "INSTANCE_PATH": str(tmp_path),
            "SMS_BACKEND": "twilio-verify",
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "t" * 32,
            "TWILIO_VERIFY_SERVICE_SID": "VA" + "0" * 32,
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert config.SESSION_COOKIE_NAME == "__Host-session" and config.SESSION_COOKIE_SECURE is True
    assert config.SESSION_COOKIE_HTTPONLY is True and config.SESSION_COOKIE_SAMESITE == "Lax"
    assert config.DEBUG is False


def test_production_refuses_memory_rate_limit_storage(keys, tmp_path):
    with pytest.raises(settings.ConfigError, match="memory"):
        settings.load_config(
            {
                **keys,
                "APP_ENV": "production",
                "INSTANCE_PATH": str(tmp_path),
                "SMS_BACKEND": "twilio-verify",
                "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
                "TWILIO_AUTH_TOKEN": "t" * 32,
                "TWILIO_VERIFY_SERVICE_SID": "VA" + "0" * 32,
            }
        )


def test_unknown_hosts_are_refused(env, station):
    app = app_with(env, TRUSTED_HOSTS="join.example.org")
    path = factories.join_path(app, station)
    assert app.test_client().get(path, base_url="https://join.example.org").status_code == 200
    evil = app.test_client().get(path, base_url="https://evil.example")
    assert evil.status_code == 400 and "张江" not in evil.text
    assert "Content-Security-Policy" in evil.headers


def test_oversize_body_is_refused_before_anything_is_stored(app, path, db):
    client = browser(app)
    page = client.get(path)
    response = client.post(path, data={**hidden_fields(page.text), **FORM, "name": "王" * 30_000})
    assert response.status_code == 413
    assert attempts(db) == []


def test_forms_work_without_cookies_from_elsewhere(app, path):
    # SameSite=Lax: a cross-site POST arrives without the session, so its CSRF token fails too.
    client = browser(app)
    page = client.get(path)
    data = {**hidden_fields(page.text), **FORM}
    client.delete_cookie("session")
    assert client.post(path, data=data).status_code == 400
    assert submit(browser(app), path).status_code == 303


# Routes a POST may reach without a CSRF token, and why: each checks its caller another way.
CSRF_EXEMPT = {
    "api.": "the API: bearer tokens only, cookie requests checked in api.core.authenticate",
    "sms_hooks.": "providers' delivery reports, signed by the provider",
    "twilio_hooks.": "Twilio's callbacks, signed with X-Twilio-Signature",
    "admin.import_places": "a large upload: the form checks the token once the body limit is raised",
    "admin_import.": "a large upload: the form checks the token once the body limit is raised",
}


def _example_url(app, rule) -> str:  # type: ignore[no-untyped-def]
    from app.web import DatabaseId
    from app.web.worker.poster import QrTokenConverter

    values = {}
    for name, converter in rule._converters.items():
        values[name] = (
            1 if isinstance(converter, DatabaseId) else "a" * 21 if isinstance(converter, QrTokenConverter) else "x"
        )
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def test_every_unsafe_method_outside_the_exemptions_is_checked_for_a_csrf_token(app):
    """The CSRF check runs from our own hook (app.security.check_csrf, WTF_CSRF_CHECK_DEFAULT off):
    a POST, PUT, PATCH or DELETE to any route but the exempt ones is refused without a token,
    whoever sends it, before the view runs."""
    app.config["WTF_CSRF_ENABLED"] = True
    csrf = app.extensions["csrf"]
    protected: list[str] = []
    original = csrf.protect

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        protected.append(request.endpoint)
        return original(*args, **kwargs)

    csrf.protect = recording
    client = app.test_client()
    checked = exempt_seen = 0
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            url = _example_url(app, rule)
            answer = client.open(url, method=method, data={"x": "1"})
            if any(rule.endpoint.startswith(prefix) for prefix in CSRF_EXEMPT):
                exempt_seen += 1
                assert b"CSRF" not in answer.data, (rule.endpoint, method)
                continue
            checked += 1
            assert answer.status_code == 400, (rule.endpoint, method, answer.status_code)
            assert protected[-1:] == [rule.endpoint], ("Flask-WTF did not check", rule.endpoint, method)
    assert checked >= 30 and exempt_seen >= 5, (checked, exempt_seen)


def test_a_get_does_no_csrf_work(app, path, monkeypatch):
    app.config["WTF_CSRF_ENABLED"] = True

    def refuse(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("CSRFProtect.protect ran for a GET")

    monkeypatch.setattr(app.extensions["csrf"], "protect", refuse)
    assert app.test_client().get(path).status_code == 200
    assert app.test_client().head(path).status_code == 200
