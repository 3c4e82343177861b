"""The SMS limits on both stores: the embedded memory store and Redis (one atomic script there)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.services import limits


@pytest.fixture(params=["memory", "redis"])
def strategy(request: pytest.FixtureRequest) -> Iterator[MovingWindowRateLimiter]:
    if request.param == "memory":
        yield MovingWindowRateLimiter(MemoryStorage())
        return
    # Keys are fresh per test (no reset: other test runs may share this Redis database).
    yield MovingWindowRateLimiter(storage_from_string(request.getfixturevalue("redis_url")))


def guard(strategy: MovingWindowRateLimiter, budget: int = 1000) -> limits.Limits:
    return limits.Limits(strategy, daily_budget=budget)


def fresh() -> dict[str, str]:
    """Keys no other test used (the Redis database is shared by the session)."""
    tag = secrets.token_hex(4)
    return {"phone": f"phone-{tag}", "prefix": f"prefix-{tag}", "ip": f"ip-{tag}"}


def remaining(strategy: MovingWindowRateLimiter, rule: limits.Rule, key: str) -> int:
    """What the `limits` library itself reads for a rule: the store's format is the library's."""
    return strategy.get_window_stats(rule.limit, *limits.WindowStore(strategy).ids(rule, key)).remaining


def test_two_codes_per_phone_then_a_refusal_that_costs_nothing_else(strategy):
    g, keys = guard(strategy), fresh()
    g.reserve_send(**keys)
    g.reserve_send(**keys)
    ip_rule = limits.IP_SENDS[0]
    before = remaining(strategy, ip_rule, keys["ip"])
    with pytest.raises(limits.LimitExceeded) as refused:
        g.reserve_send(**keys)
    assert refused.value.scope == "phone" and 0 < refused.value.retry_after <= 600
    assert remaining(strategy, ip_rule, keys["ip"]) == before == ip_rule.limit.amount - 2
    assert remaining(strategy, limits.PHONE_SENDS[0], keys["phone"]) == 0


def test_a_locked_phone_gets_no_code(strategy):
    g, keys = guard(strategy), fresh()
    assert g._hit(limits.LOCK, keys["phone"])
    with pytest.raises(limits.PhoneLocked) as refused:
        g.reserve_send(**keys)
    assert 86000 < refused.value.retry_after <= 86400
    assert remaining(strategy, limits.PHONE_SENDS[0], keys["phone"]) == 2, "a refused send takes nothing"


def test_the_global_budget_is_shared_by_every_phone(strategy):
    g, tag = guard(strategy), secrets.token_hex(4)
    # The budget's key is "all": give this test a budget of its own by naming its scope apart.
    g.budget = (limits.Rule(f"global-{tag}", limits.parse("3 per day")),)
    for _ in range(3):
        g.reserve_send(**fresh())
    with pytest.raises(limits.LimitExceeded) as refused:
        g.reserve_send(**fresh())
    assert refused.value.scope == f"global-{tag}"


def test_a_crowd_racing_for_the_last_places_takes_exactly_the_limit(strategy):
    g, poster = guard(strategy), f"poster-{secrets.token_hex(4)}"
    taken, barrier = [], threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            try:
                g.reserve_join_start(poster)
                taken.append(1)
            except limits.LimitExceeded:
                pass

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == limits.POSTER_STARTS[0].limit.amount == 300


def test_redis_reserve_is_two_round_trips(redis_url, monkeypatch):
    """One read of the outstanding codes, one atomic reserve (the windows and the tally)."""
    storage = storage_from_string(redis_url)
    strategy = MovingWindowRateLimiter(storage)
    g, keys = guard(strategy), fresh()
    limits._script(strategy, "reserve")  # registered once per store, before counting
    connection = storage.get_connection()
    calls: list[str] = []
    real = connection.execute_command

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(connection, "execute_command", counted)
    g.reserve_send(**keys)
    assert calls == ["EVALSHA", "EVALSHA"]


def test_redis_down_means_unavailable_not_a_pass():
    storage = storage_from_string("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    g = guard(MovingWindowRateLimiter(storage))
    with pytest.raises(limits.LimiterUnavailable):
        g.reserve_send(**fresh())


def test_the_default_store_without_redis_is_the_swept_memory_store(app):
    from app.extensions import limiter

    assert app.config["RATELIMIT_STORAGE_URI"] == "swept-memory://"
    assert isinstance(limiter.limiter.storage, limits.SweptMemoryStorage)


def _timers_started(storage, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    """Timer threads the store starts over ~60 ms of writes (the library's own: one per 10 ms)."""
    import time

    import limits.storage.memory as memory_module

    started = []
    real_timer = memory_module.threading.Timer

    def counting_timer(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(1)
        return real_timer(*args, **kwargs)

    monkeypatch.setattr(memory_module.threading, "Timer", counting_timer)
    strategy = MovingWindowRateLimiter(storage)
    item = limits.parse("1000 per minute")
    for _batch in range(6):
        for n in range(20):
            strategy.hit(item, "k", str(n))
        time.sleep(0.012)
    monkeypatch.undo()
    return len(started)


def test_the_swept_store_sweeps_at_most_once_a_second(monkeypatch):
    # Control: the library's store starts a timer after nearly every batch; ours at most one.
    assert _timers_started(MemoryStorage(), monkeypatch) >= 3
    assert _timers_started(limits.SweptMemoryStorage(), monkeypatch) <= 1


def test_the_swept_store_still_counts_exactly():
    strategy = MovingWindowRateLimiter(limits.SweptMemoryStorage())
    item = limits.parse("3 per second")
    assert [strategy.hit(item, "k") for _ in range(4)] == [True, True, True, False]


def test_in_process_stores_are_named():
    assert limits.in_process_store("memory://") and limits.in_process_store("swept-memory://")
    assert not limits.in_process_store("redis://127.0.0.1:6379/0")


def test_many_at_once_reads_and_counts_as_one_at_a_time(strategy):
    g, tag = guard(strategy), secrets.token_hex(4)
    small, big = (
        limits.Rule(f"small-{tag}", limits.parse("2 per minute")),
        limits.Rule(f"big-{tag}", limits.parse("50 per hour")),
    )
    checks = [(small, "a"), (big, "a"), (big, "b")]
    assert g.used_many(checks) == [0, 0, 0]
    assert g.count_many(checks) == [True, True, True]
    assert g.count_many(checks) == [True, True, True]
    assert g.count_many(checks) == [False, True, True], "a full window refuses only itself"
    assert g.used_many(checks) == [g.used(rule, key) for rule, key in checks] == [2, 3, 3]


def test_redis_many_at_once_is_one_round_trip_each(redis_url, monkeypatch):
    storage = storage_from_string(redis_url)
    g, tag = guard(MovingWindowRateLimiter(storage)), secrets.token_hex(4)
    checks = [(limits.Rule(f"r-{tag}", limits.parse("5 per minute")), key) for key in ("x", "y", "z")]
    for name in ("used", "count"):
        limits._script(g.strategy, name)
    connection, calls = storage.get_connection(), []
    real = connection.execute_command
    monkeypatch.setattr(connection, "execute_command", lambda *a, **k: calls.append(str(a[0])) or real(*a, **k))
    g.count_many(checks)
    assert g.used_many(checks) == [1, 1, 1]
    assert calls == ["EVALSHA", "EVALSHA"]


def test_the_library_still_has_the_private_hook_we_override():
    # app/services/limits/library_adapter.py overrides this private method of `limits`: an
    # upgrade that renames it or stops calling it on writes must fail here, not slow the app.
    import inspect

    from app.services.limits import library_adapter

    assert hasattr(MemoryStorage, library_adapter.PRIVATE_EXPIRY_HOOK)
    assert "self.__schedule_expiry()" in inspect.getsource(MemoryStorage.incr)
    from flask_limiter import Limiter

    source = inspect.getsource(Limiter.init_app)
    assert f"app.before_request(self.{library_adapter.PRIVATE_REQUEST_HOOK})" in source
    assert "app.after_request(partial(Limiter.__inject_headers, self))" in source
    assert "app.teardown_request(self.__release_context)" in source
    assert hasattr(Limiter, library_adapter.PRIVATE_AFTER_HOOK)
    assert hasattr(Limiter, library_adapter.PRIVATE_TEARDOWN_HOOK)


def test_only_the_adapter_reaches_into_a_rate_limit_librarys_private_names():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "app"
    private = re.compile(r"_check_request_limit|_MemoryStorage__|\blimiter\._\w|\bstorage\._\w|_request_filters")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "library_adapter.py" and private.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_flask_limiter_skips_the_join_pages_through_its_public_filter(app, path, monkeypatch):
    from flask_limiter import Limiter

    from app.extensions import limiter

    resolved: list[str] = []
    real = limiter.limit_manager.resolve_limits

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        resolved.append(str(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(limiter.limit_manager, "resolve_limits", counting)
    client = app.test_client()
    assert client.get(path).status_code == 200
    assert client.get("/login").status_code == 200
    assert resolved and not any(endpoint.startswith("join.") for endpoint in resolved), resolved
    assert isinstance(limiter, Limiter)


def test_the_join_pages_skip_flask_limiters_hooks_the_others_still_run_them(env, path, monkeypatch):
    from flask import request
    from flask_limiter import Limiter

    from app import create_app
    from app.services.limits import library_adapter
    from config import TestingConfig

    ran: list[tuple[str, str]] = []
    adapter = library_adapter
    hooks = (adapter.PRIVATE_REQUEST_HOOK, adapter.PRIVATE_AFTER_HOOK, adapter.PRIVATE_TEARDOWN_HOOK)
    for hook in hooks:
        real = getattr(Limiter, hook)

        def counting(self, *args, real=real, hook=hook, **kwargs):  # type: ignore[no-untyped-def]
            ran.append((hook, str(request.endpoint)))
            return real(self, *args, **kwargs)

        # The app's hooks wrap what they found at start-up: patch before building the app.
        monkeypatch.setattr(Limiter, hook, counting)
    app = create_app(TestingConfig(env))
    try:
        client = app.test_client()
        assert client.get(path).status_code == 200
        assert ran == [], "a join page runs none of Flask-Limiter's hooks"
        assert client.get("/login").status_code == 200
        assert {hook for hook, endpoint in ran if endpoint == "auth.login"} == set(hooks), ran
    finally:
        app.extensions["db_engine"].dispose()
