"""The phone lock (docs/security.md A6, scenario 2): ten wrong codes in a day, across new codes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.security.conftest import (
    ask_again,
    browser,
    code_from,
    members,
    refused_code,
    send_code,
    submit,
    wait_out,
    wrong,
)


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    # Long-lived codes so ten wrong tries fit in two codes despite the backoff (the lock is what is tested).
    return {**env, "CODE_TTL_SECONDS": "7200"}


def test_ten_failures_across_resends_lock_the_phone_for_a_day(app, path, sms, db, clock):
    client = browser(app)
    submit(client, path)
    for n in range(1, 6):
        send_code(client, wrong(code_from(sms)))
        wait_out(clock, n)
    clock.shift(timedelta(seconds=61))
    assert ask_again(client).status_code == 303, "a new code is allowed"
    for n in range(6, 10):
        assert "验证码不正确" in refused_code(client, wrong(code_from(sms))).text, f"failure {n} still counts"
        wait_out(clock, n)
    tenth = refused_code(client, wrong(code_from(sms)), retry_after="86400")
    assert "次数太多" in tenth.text, "the counter went on across the new code"
    assert "次数太多" in refused_code(client, code_from(sms), retry_after="86400").text, (
        "locked even against the right code"
    )
    sent = len(sms.sent)
    clock.shift(timedelta(minutes=20))
    other = browser(app, ip="203.0.113.9")
    refused = submit(other, path)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert len(sms.sent) == sent, "a locked phone gets no SMS"
    clock.shift(timedelta(hours=23, minutes=41))
    assert submit(browser(app, ip="203.0.113.10"), path).status_code == 303, "the lock ends after a day"
    assert members(db) == []
