"""/healthz: what a load balancer asks every few seconds. The database, and Redis when it is set."""

from __future__ import annotations

import socket

from flask import Flask

import config
from app import create_app


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


def test_redis_down_is_503_and_names_no_host(env):  # type: ignore[no-untyped-def]
    app = app_with(env, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", RATELIMIT_STORAGE_URI="memory://")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "error", "database": "ok", "redis": "down"}
    assert "127.0.0.1" not in response.text


def test_real_redis_up_is_ok(env, redis_url):  # type: ignore[no-untyped-def]
    app = app_with(env, REDIS_URL=redis_url)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}
