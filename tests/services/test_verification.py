"""SMS codes and the limits behind them, as services (no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.models import JoinAttempt
from app.services import limits, verification
from app.services.crypto import PiiCipher
from app.services.sms import MemoryGateway

KEY, PHONE = "k" * 50, "+8617000000001"
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def guard(clock) -> limits.Limits:  # type: ignore[no-untyped-def]
    return limits.Limits(MovingWindowRateLimiter(MemoryStorage()), daily_budget=5)


def attempt(n: int = 1) -> JoinAttempt:
    return JoinAttempt(id=f"{n:032d}", phone_index="phone", code_tries=0, sends=0)


def issue(row: JoinAttempt) -> str:
    code = verification.issue(row, gateway=MemoryGateway(), key=KEY, now=datetime.now(UTC), ttl=600)
    assert code is not None
    return code


def check(row: JoinAttempt, code: str, guard: limits.Limits) -> None:
    verification.check_guarded(
        row, code, guard=guard, phone=PHONE, gateway=MemoryGateway(), key=KEY, now=datetime.now(UTC), max_tries=5
    )


def test_code_is_six_random_digits_kept_only_as_an_hmac():
    row = attempt()
    code = issue(row)
    assert len(code) == 6 and code.isdigit()
    assert row.code_hash == verification.code_hash(KEY, row.id, code) and code not in row.code_hash


def test_one_resend_per_attempt():
    row = attempt()
    issue(row)
    issue(row)
    with pytest.raises(verification.TooManySends):
        issue(row)


def test_wrong_codes_count_against_the_phone_and_a_resend_does_not_reset_them(guard, clock):
    row = attempt()
    code = issue(row)
    for _ in range(2):
        with pytest.raises(verification.CodeWrong):
            check(row, "000000" if code != "000000" else "111111", guard)
    issue(row)
    assert row.code_tries == 0, "the new code gets its own five tries"
    assert guard.failures("phone") == 2, "the phone's count goes on"


def test_no_delay_before_three_failures_then_a_doubling_one():
    assert [limits.delay_after(n) for n in range(12)] == [0, 0, 0, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_lock_after_ten_failures_blocks_sending_and_checking_for_a_day(guard, clock):
    for _ in range(10):
        guard.record_failure("phone")
    with pytest.raises(limits.PhoneLocked) as locked:
        guard.ensure_may_check("phone")
    assert 86_000 < locked.value.retry_after <= 86_400
    with pytest.raises(limits.PhoneLocked):
        guard.reserve_send(phone="phone", prefix="p", ip="1.2.3.4")
    clock.shift(timedelta(days=1, seconds=1))
    guard.ensure_may_check("phone")
    assert guard.failures("phone") == 0


def test_a_refused_send_costs_no_other_limit(guard):
    for n in range(2):
        guard.reserve_send(phone="phone", prefix=f"p{n}", ip=f"1.2.3.{n}")
    with pytest.raises(limits.LimitExceeded) as refused:
        guard.reserve_send(phone="phone", prefix="p9", ip="1.2.3.9")
    assert refused.value.scope == "phone" and refused.value.retry_after > 0
    for n in range(3):  # the refused try took nothing from the global budget of 5
        guard.reserve_send(phone=f"other{n}", prefix=f"q{n}", ip=f"5.6.7.{n}")


def test_budget_alert_fires_once_an_hour(guard, caplog):
    for n in range(5):
        guard.reserve_send(phone=f"p{n}", prefix=f"x{n}", ip=f"9.9.9.{n}")
    for n in range(3):
        with pytest.raises(limits.LimitExceeded):
            guard.reserve_send(phone=f"late{n}", prefix=f"y{n}", ip=f"8.8.8.{n}")
    alerts = [r for r in caplog.records if r.name == "scanjoin.alerts"]
    assert len(alerts) == 1


def test_store_errors_become_limiter_unavailable():
    class Broken(MovingWindowRateLimiter):
        """A store that is down for every call (reads, tests and takes)."""

        def test(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise StorageError(ConnectionError("down"))

        hit = get_window_stats = test

    guard = limits.Limits(Broken(MemoryStorage()), daily_budget=5)
    with pytest.raises(limits.LimiterUnavailable):
        guard.reserve_send(phone="phone", prefix="p", ip="1.2.3.4")
    with pytest.raises(limits.LimiterUnavailable):
        guard.ensure_may_check("phone")


def test_keys_never_hold_a_raw_phone():
    from cryptography.fernet import Fernet

    pii = PiiCipher([Fernet.generate_key().decode()], "index-key-" + "i" * 40)
    for key in (limits.phone_key(pii, PHONE), limits.prefix_key(pii, PHONE)):
        assert PHONE[3:7] not in key and len(key) == 64
    assert limits.prefix_key(pii, PHONE) == limits.prefix_key(pii, PHONE[:-4] + "9999"), "same 7-digit prefix"
    assert limits.phone_key(pii, PHONE) == pii.index(PHONE), "the database's blind index"


def test_ip_keys():
    assert limits.ip_key("203.0.113.5") == "203.0.113.5"
    assert limits.ip_key("2001:db8:1:2::5") == limits.ip_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert limits.ip_key(None) == limits.ip_key("garbage") == "unknown"
