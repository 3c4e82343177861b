"""/healthz: what a load balancer asks every few seconds. The database decides; Redis is reported.

A Redis outage must not take every server out of rotation at once: the poster and join pages
work without it, and only sending codes fails closed (a 503, no SMS).
"""

from __future__ import annotations

import socket

from flask import Flask

import config
from app import create_app
from tests import factories
from tests.security.conftest import browser, submit


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_with(env: dict[str, str], **settings: str) -> Flask:
    return create_app(config.TestingConfig({**env, **settings}))


def test_healthy_database_without_redis_says_ok(client):  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def test_database_down_is_503(tmp_path, env):  # type: ignore[no-untyped-def]
    app = app_with(env, DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'nothing.db'}")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "error", "database": "down"}


def test_redis_down_is_reported_but_keeps_the_server_in_rotation(env):  # type: ignore[no-untyped-def]
    app = app_with(env, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", RATELIMIT_STORAGE_URI="memory://")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "down"}
    assert "127.0.0.1" not in response.text


def test_redis_down_pages_open_codes_fail_closed(env, station):  # type: ignore[no-untyped-def]
    down = f"redis://127.0.0.1:{closed_port()}/0"
    app = app_with(env, REDIS_URL=down, RATELIMIT_STORAGE_URI=down)
    client = browser(app)
    assert client.get("/healthz").status_code == 200
    path = factories.join_path(app, station)
    assert client.get(path).status_code == 200
    assert submit(client, path).status_code == 503
    assert app.extensions["sms"].sent == []


def test_sentinel_and_cluster_urls_do_not_crash_the_check(env):  # type: ignore[no-untyped-def]
    port = closed_port()
    for url in (f"redis+sentinel://127.0.0.1:{port}/mymaster", f"redis+cluster://127.0.0.1:{port}"):
        app = app_with(env, REDIS_URL=url, RATELIMIT_STORAGE_URI="memory://")
        response = app.test_client().get("/healthz")
        assert response.status_code == 200, url
        assert response.json == {"status": "ok", "database": "ok", "redis": "down"}


def test_real_redis_up_is_ok(env, redis_url):  # type: ignore[no-untyped-def]
    app = app_with(env, REDIS_URL=redis_url)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}
