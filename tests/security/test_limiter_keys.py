"""Issue 12 item 7: the limiter's store (Redis) holds no client address, phone or token in clear.

Our own windows (app/services/limits/) and Flask-Limiter's (sign-in, API) are named by keyed
hashes; this scans every key and value of the real Redis database after a join, a refused
sign-in and a refused API call from one address.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

import config as settings
from app import create_app
from app.services import limits
from tests import factories
from tests.conftest import password_step
from tests.security.conftest import browser, code_from, send_code, submit


@pytest.fixture
def redis_app(env: dict[str, str], redis_url: str, path: str) -> Iterator[Flask]:
    # After `path` (which builds the default app): Flask-Limiter is one object, the last app wins.
    app = create_app(settings.TestingConfig({**env, "REDIS_URL": redis_url, "RATELIMIT_STORAGE_URI": redis_url}))
    yield app
    app.extensions["db_engine"].dispose()


def _stored(client: redis.Redis) -> dict[bytes, list[bytes]]:
    """Every key of the database with the values under it."""
    stored: dict[bytes, list[bytes]] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            stored[key] = [client.get(key) or b""]
        elif kind == b"list":
            stored[key] = client.lrange(key, 0, -1)
        elif kind == b"hash":
            stored[key] = [part for pair in client.hgetall(key).items() for part in pair]
        elif kind == b"zset":
            stored[key] = [member for member, _score in client.zrange(key, 0, -1, withscores=True)]
        else:
            stored[key] = sorted(client.smembers(key)) if kind == b"set" else []
    return stored


def _written_since(before: dict[bytes, list[bytes]], after: dict[bytes, list[bytes]]) -> str:
    """The keys and values new since `before` (the database is shared with other test runs)."""
    return "\n".join(
        b"\n".join([key, *values]).decode("utf-8", "replace")
        for key, values in after.items()
        if before.get(key) != values
    )


def test_no_address_phone_or_token_in_clear_in_redis(redis_app, redis_url, path, db):
    store = redis.Redis.from_url(redis_url)
    before = _stored(store)
    ip = f"198.51.{secrets.randbelow(200)}.{1 + secrets.randbelow(250)}"
    phone = factories.phone(700_000 + secrets.randbelow(90_000))
    worker = browser(redis_app, ip=ip)
    assert submit(worker, path, phone=phone).status_code == 303
    assert send_code(worker, code_from(redis_app.extensions["sms"])).status_code in (302, 303)
    staff = browser(redis_app, ip=ip)
    email = f"nobody-{secrets.token_hex(4)}@example.org"
    assert password_step(staff, email, "x" * 20).status_code == 422
    api = browser(redis_app, ip=ip)
    assert api.get("/api/v1/members", headers={"Authorization": "Bearer sj_" + "a" * 40}).status_code == 401

    stored = _written_since(before, _stored(store))
    token = path.strip("/")
    assert stored, "the flows above counted something in Redis"
    for clear in (ip, phone, phone.lstrip("+"), phone[-8:], token.upper(), token.lower(), email):
        assert clear not in stored, f"{clear!r} is stored in clear in Redis"


def test_window_names_are_keyed_hashes_shared_by_every_process_with_the_key(redis_url):
    from limits.storage import storage_from_string

    first, second, other = (storage_from_string(redis_url) for _ in range(3))
    for storage, secret in ((first, "k1"), (second, "k1"), (other, "k2")):
        limits.protect_keys(storage, secret)
    name = limits.keyed(first, "ip", "203.0.113.5")
    assert name == limits.keyed(second, "ip", "203.0.113.5"), "two workers count one address together"
    assert name != limits.keyed(other, "ip", "203.0.113.5") and "203.0.113" not in name
    assert name != limits.keyed(first, "poster", "203.0.113.5"), "scopes do not share a window"
