"""The conversion monitor (docs/security.md B6) on the limiter's memory store, and on a real Redis
shared by two connections, as two app servers would share it."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

import pytest
import time_machine
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from sqlmodel import select

from app.models import AuditEvent, utcnow
from app.services import conversion
from app.services.limits import Limits


def monitor(storage=None, **thresholds: int) -> conversion.Monitor:  # type: ignore[no-untyped-def]
    strategy = MovingWindowRateLimiter(storage or MemoryStorage())
    return conversion.Monitor(Limits(strategy, daily_budget=100), conversion.Thresholds(**thresholds))


def run(watch: conversion.Monitor, prefix: str, *, sent: int, verified: int) -> None:
    for n in range(sent):
        watch.note_sent(prefix)
        if n < verified:
            watch.note_verified(prefix)


def scopes(figures: list[conversion.Figures]) -> list[str]:
    return [f.scope for f in figures]


def test_nineteen_unanswered_sends_are_not_low_twenty_are():
    watch = monitor()
    run(watch, "p1", sent=19, verified=0)
    assert watch.low("p1") == []
    watch.note_sent("p1")
    assert scopes(watch.low("p1")) == ["all", "prefix"]


def test_half_verified_is_enough():
    watch = monitor()
    run(watch, "p1", sent=20, verified=10)
    assert watch.low("p1") == []


def test_forty_sent_five_verified_is_low_overall():
    watch = monitor()
    for n in range(40):
        run(watch, f"p{n}", sent=1, verified=1 if n < 5 else 0)
    assert [(f.scope, f.sent, f.verified) for f in watch.low("p0")] == [("all", 40, 5)]


def test_one_bad_prefix_among_good_ones():
    watch = monitor()
    run(watch, "bad", sent=20, verified=2)
    run(watch, "good", sent=40, verified=40)
    assert scopes(watch.low("bad")) == ["prefix"] and watch.low("good") == []


def test_the_window_moves():
    with time_machine.travel(utcnow(), tick=False) as clock:
        watch = monitor()
        run(watch, "p1", sent=30, verified=0)
        clock.shift(timedelta(minutes=59))
        assert watch.low("p1")
        clock.shift(timedelta(minutes=1, seconds=1))
        assert [f.sent for f in watch.figures("p1")] == [0, 0]


def test_thresholds_are_settings():
    watch = monitor(min_sends=5, min_percent=80, window_seconds=600)
    run(watch, "p1", sent=5, verified=3)
    assert scopes(watch.low("p1")) == ["all", "prefix"]


def test_an_alert_is_raised_once_per_window(app, db, caplog):
    caplog.set_level(logging.WARNING, logger="scanjoin.alerts")
    with time_machine.travel(utcnow(), tick=False) as clock:
        watch = monitor()
        run(watch, "a" * 64, sent=25, verified=1)
        assert scopes(watch.raise_alerts(db, watch.low("a" * 64))) == ["all", "prefix"]
        assert watch.raise_alerts(db, watch.low("a" * 64)) == []
        clock.shift(timedelta(hours=1, seconds=1))
        run(watch, "a" * 64, sent=25, verified=1)
        assert len(watch.raise_alerts(db, watch.low("a" * 64))) == 2
    db.commit()
    events = list(db.exec(select(AuditEvent).where(AuditEvent.action == conversion.ALERT_ACTION)))
    assert len(events) == 4 and {e.target_id for e in events} == {"all", "a" * 12}
    assert events[0].details == {"sent": 25, "verified": 1, "window_seconds": 3600, "min_sends": 20, "min_percent": 50}
    lines = [r.getMessage() for r in caplog.records if r.name == "scanjoin.alerts"]
    assert len(lines) == 4 and all("25 codes sent, 1 verified" in line for line in lines)
    assert conversion.recent_alerts(db, now=utcnow() + timedelta(hours=1), within=timedelta(hours=1))


@pytest.mark.redis
def test_two_servers_on_one_redis_see_the_same_figures_and_alert_once(redis_url, app, db):
    prefix = secrets.token_hex(32)
    window = 3000 + secrets.randbelow(600)  # part of every key: this run's overall figures are its own
    first, second = (monitor(RedisStorage(redis_url), window_seconds=window) for _ in range(2))
    run(first, prefix, sent=12, verified=1)
    run(second, prefix, sent=12, verified=1)
    assert [(f.sent, f.verified) for f in second.figures(prefix)][1] == (24, 2)
    assert [(f.sent, f.verified) for f in first.figures(prefix)][1] == (24, 2)
    assert [(f.sent, f.verified) for f in first.figures(prefix)][0] == (24, 2)
    assert len(first.raise_alerts(db, first.low(prefix))) == 2
    assert second.raise_alerts(db, second.low(prefix)) == [], "the other server sees it was raised"


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_crowd_just_sent_its_codes_is_not_judged_until_the_grace_period_passes(store, request):
    storage = MemoryStorage() if store == "memory" else RedisStorage(request.getfixturevalue("redis_url"))
    window = 3000 + secrets.randbelow(600)  # this run's own keys on a shared Redis
    prefix = secrets.token_hex(32)
    with time_machine.travel(utcnow(), tick=False) as clock:
        watch = monitor(storage, window_seconds=window, grace_seconds=180)
        run(watch, prefix, sent=30, verified=2)  # a crowd at one poster: codes out, few typed yet
        assert [(f.sent, f.verified) for f in watch.figures(prefix)] == [(0, 2), (0, 2)]
        assert watch.low(prefix) == []
        clock.shift(timedelta(seconds=181))  # their codes should be back by now: 2 of 30 is pumping
        assert [(f.sent, f.verified) for f in watch.figures(prefix)] == [(30, 2), (30, 2)]
        assert scopes(watch.low(prefix)) == ["all", "prefix"]
