"""/api/v1 rate limits: per token, per address for refused calls; 429 as JSON with Retry-After, as documented."""

from __future__ import annotations

import pytest
from flask import Flask

import config as settings
from app import create_app
from app.models import User, utcnow
from app.services import api_tokens, users
from tests import conftest
from tests.web.test_api import World, call, world  # noqa: F401  (the fixture)


def limited_app(env: dict[str, str], **limits: str) -> Flask:
    """Another app on the test's database with its own limits (as a differently configured deployment)."""
    return create_app(settings.TestingConfig({**env, **limits}))


def client_from(app: Flask, ip: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def assert_limited(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429 and response.is_json
    assert response.json["error"] == "rate_limited"
    assert response.headers["Retry-After"].isdigit() and 0 < int(response.headers["Retry-After"]) <= 60


def test_each_token_has_its_own_allowance(env, world: World):  # noqa: F811
    app = limited_app(env, API_RATE_LIMIT="3 per minute")
    client = client_from(app, "198.51.100.1")
    for path in ("/members", "/places", f"/members/{world.mine[0].id}"):
        assert call(client, "GET", path, world.tokens["official"]).status_code == 200
    assert_limited(call(client, "GET", "/members", world.tokens["official"]))
    assert_limited(call(client, "GET", "/places", world.tokens["official"])), "one count for every endpoint"
    assert call(client, "GET", "/members", world.tokens["admin"]).status_code == 200, "another token is not held back"
    app.extensions["db_engine"].dispose()


def test_refused_calls_are_limited_per_address_even_for_a_good_token_after(env, world: World):  # noqa: F811
    app = limited_app(env, API_AUTH_FAILURE_LIMIT="3 per minute")
    guesser, neighbour = client_from(app, "198.51.100.2"), client_from(app, "198.51.100.3")
    for n in range(3):
        assert call(guesser, "GET", "/members", f"sj_made-up-{n}").status_code == 401
    assert_limited(call(guesser, "GET", "/members", "sj_made-up-4"))
    assert_limited(call(guesser, "GET", "/members"))
    assert_limited(call(guesser, "GET", "/members", world.tokens["official"]))
    assert call(neighbour, "GET", "/members", world.tokens["official"]).status_code == 200
    app.extensions["db_engine"].dispose()


def test_successful_calls_do_not_use_the_refusal_allowance(env, world: World):  # noqa: F811
    app = limited_app(env, API_AUTH_FAILURE_LIMIT="2 per minute")
    client = client_from(app, "198.51.100.4")
    for _ in range(5):
        assert call(client, "GET", "/places", world.tokens["organizer"]).status_code == 200
    app.extensions["db_engine"].dispose()


def test_cookie_calls_count_per_user(env, db, world: World):  # noqa: F811
    app = limited_app(env, API_RATE_LIMIT="2 per minute")
    client = client_from(app, "198.51.100.5")
    api_tokens.revoke(db, world.users["official"], now=utcnow())
    users.set_password(db, db.get(User, world.users["official"].id), conftest.STAFF_PASSWORD)
    db.commit()
    conftest.sign_in(client, db, "official@example.org")
    assert call(client, "GET", "/members").status_code == 200
    assert call(client, "GET", "/members").status_code == 200
    assert_limited(call(client, "GET", "/members"))
    app.extensions["db_engine"].dispose()


def test_limits_are_shared_by_workers_through_redis(env, world: World, redis_url):  # noqa: F811
    """Two app processes (workers) on one Redis: the token's allowance is one count across them."""
    token = world.tokens["admin"]
    workers = [limited_app(env, API_RATE_LIMIT="3 per minute", RATELIMIT_STORAGE_URI=redis_url) for _ in range(2)]
    first, second = (client_from(w, "198.51.100.6") for w in workers)
    assert [call(c, "GET", "/places", token).status_code for c in (first, second, first)] == [200, 200, 200]
    assert_limited(call(second, "GET", "/places", token))
    for worker in workers:
        worker.extensions["db_engine"].dispose()


def test_every_operation_documents_429_with_retry_after():
    from app.web import openapi

    for operations in openapi.document()["paths"].values():
        for operation in operations.values():
            assert operation["responses"]["429"]["headers"]["Retry-After"]["required"] is True


@pytest.mark.parametrize("name", ["API_RATE_LIMIT", "API_AUTH_FAILURE_LIMIT"])
def test_a_malformed_limit_setting_is_refused_at_start(env, name):
    with pytest.raises(settings.ConfigError, match=name):
        settings.TestingConfig({**env, name: "lots"}).check()
