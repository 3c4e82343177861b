"""A poster page's first visit answered before Flask's request cycle (app/web/worker/first_visit.py):
the same answer as Flask's, a working join after it, and everything else left to Flask."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask, request_started
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import validate_csrf
from sqlmodel import select

import config as settings
from app import create_app
from app.models import JoinAttempt, PlaceStat
from app.services import metrics
from tests import factories
from tests.conftest import hidden_fields
from tests.web.test_join import code_from, send_code, submit

OTHER_COOKIE = "other=1"  # any cookie at all sends the visit through Flask


def through_flask(app: Flask, path: str, **headers: str):  # type: ignore[no-untyped-def]
    """The same request answered by Flask's own cycle, the first-visit layer left out."""
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from app.web.worker.first_visit import FirstVisits

    layer = app.wsgi_app
    while not isinstance(layer, FirstVisits):
        layer = layer.app  # type: ignore[attr-defined]  # ProxyFix keeps the app it wraps in .app
    return Client(layer.wsgi_app, Response).get(path, headers=headers)


@contextmanager
def flask_requests(app: Flask) -> Iterator[list[str]]:
    """The paths Flask's request cycle handled while the block ran."""
    seen: list[str] = []

    def note(sender: Flask, **_extra: object) -> None:
        from flask import request

        seen.append(request.path)

    request_started.connect(note, app)
    try:
        yield seen
    finally:
        request_started.disconnect(note, app)


def answer(app: Flask, path: str, **headers: str):  # type: ignore[no-untyped-def]
    return app.test_client(use_cookies=False).get(path, headers=headers)


def cookie_parts(response) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    name_value, *attributes = [part.strip() for part in response.headers["Set-Cookie"].split(";")]
    return name_value, sorted(attributes)


def opened_session(app: Flask, response) -> dict[str, object]:  # type: ignore[no-untyped-def]
    value = cookie_parts(response)[0].split("=", 1)[1]
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)  # Flask's own reads it
    assert serializer is not None
    return dict(serializer.loads(value))


def test_a_cached_first_visit_never_enters_flask(app, path):
    with flask_requests(app) as handled:
        first = answer(app, path)  # renders and caches the page
        second = answer(app, path)
    assert first.status_code == second.status_code == 200
    assert handled == [path], "only the first visit, which rendered the page, went through Flask"
    assert "@@" not in second.text and hidden_fields(second.text)["csrf_token"]


SETTINGS = [
    {},
    {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_NAME": "__Host-session", "SESSION_COOKIE_SAMESITE": "Strict"},
    {"SESSION_COOKIE_DOMAIN": "join.example.org", "SESSION_COOKIE_PARTITIONED": True, "SESSION_COOKIE_SECURE": True},
    {"PUBLIC_BASE_URL": "https://join.example.org", "WTF_CSRF_SECRET_KEY": "a-csrf-key-" + "c" * 40},
    {"SECRET_KEY_FALLBACKS": ["an-older-key-" + "o" * 40], "WTF_CSRF_FIELD_NAME": "csrf_token"},
]


@pytest.mark.parametrize("changes", SETTINGS)
@pytest.mark.parametrize("language", ["zh-CN,zh;q=0.9", "en-GB,en;q=0.8", ""])
def test_the_answer_is_flasks_answer(app, path, changes, language):
    app.config.update(changes)
    app.config["WTF_CSRF_ENABLED"] = True
    headers = {"Accept-Language": language} if language else {}
    answer(app, path, **headers)  # cache the page
    with flask_requests(app) as handled:
        quick = answer(app, path, **headers)
        assert handled == [], "the first visit of a cached page never entered Flask"
        full = through_flask(app, path, **headers)
    assert handled == [path]
    assert quick.status_code == full.status_code == 200
    varying = {"X-Request-ID", "Set-Cookie"}
    assert {k: v for k, v in quick.headers.items() if k not in varying} == {
        k: v for k, v in full.headers.items() if k not in varying
    }
    assert sorted(quick.headers.keys()) == sorted(full.headers.keys())
    assert re.fullmatch(r"[0-9a-f]{32}", quick.headers["X-Request-ID"])
    (quick_name, quick_attrs), (full_name, full_attrs) = cookie_parts(quick), cookie_parts(full)
    assert quick_name.split("=", 1)[0] == full_name.split("=", 1)[0] and quick_attrs == full_attrs
    quick_fields, full_fields = hidden_fields(quick.text), hidden_fields(full.text)
    assert quick.text.replace(quick_fields["csrf_token"], "T").replace(
        quick_fields["form_key"], "K"
    ) == full.text.replace(full_fields["csrf_token"], "T").replace(full_fields["form_key"], "K")
    for response, fields in ((quick, quick_fields), (full, full_fields)):
        session = opened_session(app, response)
        assert list(session) == ["csrf_token"] and re.fullmatch(r"[0-9a-f]{40}", str(session["csrf_token"]))
        with app.test_request_context("/"):
            from flask import session as flask_session

            flask_session["csrf_token"] = session["csrf_token"]
            validate_csrf(fields["csrf_token"])  # Flask-WTF accepts the token for that session


def test_request_ids_sent_by_a_proxy_are_kept_and_phone_numbers_are_not(app, path):
    answer(app, path)
    assert answer(app, path, **{"X-Request-ID": "edge-4f1c-77aa"}).headers["X-Request-ID"] == "edge-4f1c-77aa"
    assert answer(app, path, **{"X-Request-ID": "13800138000"}).headers["X-Request-ID"] != "13800138000"


def test_a_worker_who_came_in_through_it_can_join(app, path, sms, db):
    answer(app, path)  # the page is cached: the next first visit is answered before Flask
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    with flask_requests(app) as handled:
        response = submit(client, path)
    assert handled == [path], "the GET was answered before Flask; only the POST went through it"
    assert response.status_code == 303
    assert send_code(client, code_from(sms)).status_code == 303
    assert len(db.exec(select(JoinAttempt)).all()) == 1


def test_a_forged_token_on_its_page_is_refused(app, path, db):
    answer(app, path)
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    page = client.get(path)
    fields = hidden_fields(page.text)
    token = fields["csrf_token"]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    data = {**fields, "csrf_token": forged, "name": "王小明", "phone": factories.phone(1)[3:]}
    data |= {"platform": "meituan", "consent": "y", "cross_border": "y"}
    assert client.post(path, data=data).status_code == 400
    assert db.exec(select(JoinAttempt)).all() == []


def test_scans_are_counted_and_timed(app, path, db, station):
    answer(app, path)
    before = _histogram_count()
    for _ in range(3):
        answer(app, path)
    app.extensions["funnel"].flush()
    stats = db.exec(select(PlaceStat).where(PlaceStat.place_id == station.id)).all()
    assert sum(stat.scans for stat in stats) == 4
    assert _histogram_count() == before + 3


def _histogram_count() -> float:
    for family in metrics.REQUEST_SECONDS.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_count")
                and labels.get("endpoint") == "join.scan"
                and labels.get("method") == "GET"
            ):
                if labels.get("status") == "200":
                    return sample.value
    return 0.0


@pytest.mark.parametrize(
    ("method", "suffix", "headers"),
    [
        ("HEAD", "", {}),
        ("GET", "?lang=en", {}),
        ("GET", "/", {}),
        ("GET", "", {"Cookie": OTHER_COOKIE}),
        ("POST", "", {}),
    ],
)
def test_other_requests_go_to_flask(app, path, method, suffix, headers):
    answer(app, path)
    with flask_requests(app) as handled:
        app.test_client(use_cookies=False).open(path + suffix, method=method, headers=headers)
    assert len(handled) == 1, (method, suffix, headers)


def test_a_page_not_cached_yet_and_a_cache_turned_off_go_to_flask(env, station):
    app = create_app(settings.TestingConfig({**env, "SCAN_PAGE_CACHE_SECONDS": "0"}))
    try:
        path = factories.join_path(app, station)
        with flask_requests(app) as handled:
            assert answer(app, path).status_code == answer(app, path).status_code == 200
        assert len(handled) == 2
    finally:
        app.extensions["db_engine"].dispose()


@pytest.mark.parametrize(
    "host",
    [
        "join.example.org",
        "join.example.org:8443",
        "JOIN.example.org",
        "Join.Example.Org:443",
        "join.example.org:0",
        "join.example.org:99999",
        "a.example.net",
        "example.net",
        "evil.example.com",
        "join.example.org.evil.com",
        "",
    ],
)
def test_hosts_are_checked_as_flask_checks_them(app, path, host):
    app.config["TRUSTED_HOSTS"] = ["join.example.org", ".example.net"]
    answer(app, path, Host="join.example.org")  # cached
    with flask_requests(app) as handled:
        quick = answer(app, path, Host=host)
    expected = through_flask(app, path, Host=host)
    assert quick.status_code == expected.status_code, host
    if quick.status_code != 200:
        assert handled == [path], "a host Flask refuses is refused by Flask"


def test_a_blocked_address_gets_flasks_429(app, path):
    answer(app, path)
    guard = app.extensions["phone_proof"].limits
    for _ in range(50):
        guard.note_bad_token("127.0.0.1")
    assert guard.bad_tokens_blocked("127.0.0.1")
    with flask_requests(app) as handled:
        blocked = answer(app, path)
    assert blocked.status_code == 429 and handled == [path]


def test_behind_a_proxy_the_forwarded_address_and_scheme_count(env, station):
    app = create_app(settings.TestingConfig({**env, "PROXY_FIX_X_FOR": "1"}))
    try:
        path = factories.join_path(app, station)
        answer(app, path)
        forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        with flask_requests(app) as handled:
            quick = answer(app, path, **forwarded)
        assert handled == [] and quick.status_code == 200
        assert "Strict-Transport-Security" in quick.headers, "https as the proxy said: HSTS"
        guard = app.extensions["phone_proof"].limits
        for _ in range(50):
            guard.note_bad_token("203.0.113.9")
        assert answer(app, path, **forwarded).status_code == 429, "the forwarded address is the one blocked"
        assert answer(app, path, **{"X-Forwarded-For": "203.0.113.10"}).status_code == 200
    finally:
        app.extensions["db_engine"].dispose()


def test_a_failure_in_the_layer_leaves_the_visit_to_flask(app, path, db, station, monkeypatch, caplog):
    from app.sessions import QuickSigner

    answer(app, path)

    def broken(self: QuickSigner, payload: bytes) -> str:
        raise RuntimeError("broken signer")

    monkeypatch.setattr(QuickSigner, "sign", broken)
    with flask_requests(app) as handled:
        served = answer(app, path)
    assert served.status_code == 200 and hidden_fields(served.text)["csrf_token"]
    assert handled == [path] and "first visit not answered before Flask" in caplog.text
    app.extensions["funnel"].flush()
    stats = db.exec(select(PlaceStat).where(PlaceStat.place_id == station.id)).all()
    assert sum(stat.scans for stat in stats) == 2, "counted once: by Flask, not by the layer that failed"


def test_a_limiter_store_that_is_down_still_opens_the_page(app, path, monkeypatch):
    from app.services import limits

    answer(app, path)
    guard = app.extensions["phone_proof"].limits

    def down(_ip: str) -> int:
        raise limits.LimiterUnavailable("down")

    monkeypatch.setattr(guard, "bad_tokens_blocked", down)
    with flask_requests(app) as handled:
        assert answer(app, path).status_code == 200
    assert handled == []


# The hooks Flask runs around a request. first_visit.py answers a poster's first visit without
# them, doing itself what they would do for it (request id, timing, headers, session, CSRF,
# funnel flush). A new hook must be checked against that page: does it apply to a first visit
# of a poster? If so, first_visit.py must do it too; then add it here.
KNOWN_HOOKS = {
    "before_request": [
        "reject_cross_site",
        "csrf_protect",
        "check_csrf",
        "check_unless_free",
        "start_request",
        "enforce_session_limits",
    ],
    "after_request": [
        "inject_unless_free",
        "_update_remember_cookie",
        "add_headers",
        "finish_request",
    ],
    "teardown_request": ["release_unless_free", "end_request"],
    "teardown_appcontext": ["<lambda>", "close_session"],
    "url_value_preprocessors": [],
    "url_default_functions": [],
}


def _names(functions) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(getattr(getattr(f, "func", f), "__name__", repr(f)) for f in functions)


def test_every_hook_of_the_app_is_known_to_the_first_visit_path(app):
    attributes = {
        "before_request": app.before_request_funcs,
        "after_request": app.after_request_funcs,
        "teardown_request": app.teardown_request_funcs,
        "url_value_preprocessors": app.url_value_preprocessors,
        "url_default_functions": app.url_default_functions,
    }
    # The app's own hooks and the join blueprint's (other blueprints' hooks never run for a poster).
    registered = {
        kind: _names(f for scope in (None, "join") for f in hooks.get(scope, ())) for kind, hooks in attributes.items()
    }
    registered["teardown_appcontext"] = _names(app.teardown_appcontext_funcs)
    assert registered == {kind: sorted(names) for kind, names in KNOWN_HOOKS.items()}
