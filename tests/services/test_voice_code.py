"""The same code read out in a voice call (app/services/phone_proof.py `call`, app/services/tasks.py
kinds `join_voice`/`status_voice`): offered on the code page after a failed SMS or 60 s after one that
brought no right code, counted as a resend, written to the outbox with the commit like the SMS, and
dropped when the code is no longer current."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from app.models import JoinAttempt, utcnow
from app.services import events, phone_proof, tasks, verification
from app.services.sms import JOIN_CODE, SmsError, voice_text
from app.services.sms.messages import Message
from tests import factories
from tests.services.test_tasks import lose_wake_ups, rows
from tests.web.test_join import code_from, hidden_fields, send_code, submit

BUTTON = "/join/voice"


def ask_for_call(client):  # type: ignore[no-untyped-def]
    page = client.get("/join/code")
    return client.post(BUTTON, data=hidden_fields(page.text))


def slow(db, seconds: int = phone_proof.VOICE_AFTER_SECONDS + 1) -> JoinAttempt:  # type: ignore[no-untyped-def]
    """The SMS went `seconds` ago and no right code came back."""
    attempt = db.exec(select(JoinAttempt).execution_options(populate_existing=True)).one()
    attempt.code_sent_at = utcnow() - timedelta(seconds=seconds)
    db.add(attempt)
    db.commit()
    return attempt


def test_the_button_comes_only_after_a_slow_sms_and_calls_with_the_same_code(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    sms.voice = True
    submit(client, factories.join_path(app, station))
    assert BUTTON not in client.get("/join/code").text, "not while the SMS may still come"
    slow(db)
    page = client.get("/join/code")
    assert BUTTON in page.text and 'method="post"' in page.text
    response = ask_for_call(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    code = code_from(sms)
    [call] = sms.calls
    assert call.to == factories.phone(1)
    assert "，".join(code) in call.body, "the same code, digit by digit"
    page = client.get("/join/code")
    assert "正在" in page.text or "calling" in page.text
    assert BUTTON not in page.text, "the call was the attempt's one resend"
    assert send_code(client, code).headers["Location"].endswith("/join/done")
    assert db.exec(select(JoinAttempt).execution_options(populate_existing=True)).one().code_enc is None


def test_after_a_failed_sms_the_call_is_offered_at_once(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    sms.voice, sms.fail_with = True, SmsError("unavailable")
    submit(client, factories.join_path(app, station))
    assert BUTTON in client.get("/join/code").text
    sms.fail_with = None
    assert ask_for_call(client).status_code == 303
    assert len(sms.calls) == 1 and sms.sent == []


def test_a_bad_number_or_an_opt_out_is_not_offered_a_call(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    sms.voice, sms.fail_with = True, SmsError("rejected")
    submit(client, factories.join_path(app, station))
    assert BUTTON not in client.get("/join/code").text
    response = ask_for_call(client)
    assert response.status_code == 409 and sms.calls == []


def test_a_backend_without_voice_shows_no_button(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    submit(client, factories.join_path(app, station))
    slow(db)
    assert BUTTON not in client.get("/join/code").text
    assert ask_for_call(client).status_code == 409 and sms.calls == []


def test_the_call_counts_as_the_resend(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    sms.voice = True
    submit(client, factories.join_path(app, station))
    slow(db)
    ask_for_call(client)
    attempt = slow(db, 3600)
    assert attempt.sends == verification.MAX_SENDS_PER_ATTEMPT
    assert ask_for_call(client).status_code == 409 and len(sms.calls) == 1


def test_the_call_is_owed_in_the_commit_and_dropped_once_stale(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    sms.voice = True
    deliveries = app.extensions["tasks"]
    submit(client, factories.join_path(app, station))
    code = code_from(sms)
    slow(db)
    asked = lose_wake_ups(app, monkeypatch)
    ask_for_call(client)
    attempt = db.exec(select(JoinAttempt)).one()
    assert asked == [(tasks.JOIN_VOICE, attempt.id)], "the kind and the id, nothing personal"
    [row] = rows(db)
    assert row.kind == tasks.JOIN_VOICE and app.extensions["pii"].decrypt(row.code_enc) == code
    attempt = db.get(JoinAttempt, attempt.id, populate_existing=True)
    attempt.code_expires_at = utcnow() - timedelta(seconds=1)
    db.add(attempt)
    db.commit()
    assert deliveries.deliver(row.id) == "stale" and sms.calls == [] and rows(db) == []


def test_a_lost_wake_up_is_made_good_by_the_sweep_and_a_failed_call_retried(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    sms.voice = True
    deliveries = app.extensions["tasks"]
    submit(client, factories.join_path(app, station))
    slow(db)
    lose_wake_ups(app, monkeypatch)
    ask_for_call(client)
    sms.fail_with = SmsError("unavailable")
    later = utcnow() + timedelta(seconds=tasks.GRACE_SECONDS + 1)
    deliveries.sweep(later)
    [row] = rows(db)
    assert row.attempts == 1 and sms.calls == [], "waiting for its retry, the lease and claim as for an SMS"
    sms.fail_with = None
    assert deliveries.deliver(row.id, row.due_at + timedelta(seconds=1)) == "sent"
    assert len(sms.calls) == 1 and rows(db) == []


def test_a_failed_call_shows_on_the_code_page(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    sms.voice = True
    submit(client, factories.join_path(app, station))
    slow(db)
    sms.fail_with = SmsError("rejected")
    ask_for_call(client)
    attempt = db.exec(select(JoinAttempt).execution_options(populate_existing=True)).one()
    assert attempt.send_error == "rejected"
    page = client.get("/join/code")
    assert page.status_code == 200 and 'role="alert"' in page.text


def test_the_spoken_text_is_neutral_and_digit_by_digit():  # type: ignore[no-untyped-def]
    zh = voice_text(Message(JOIN_CODE, {"code": "012345"}))
    en = voice_text(Message(JOIN_CODE, {"code": "012345"}, "en"))
    assert "0，1，2，3，4，5" in zh and "0, 1, 2, 3, 4, 5" in en
    assert "012345" not in zh + en
    for word in ("工会", "union", "Union"):
        assert word not in zh + en


def test_the_event_says_its_channel_without_the_code(app):  # type: ignore[no-untyped-def]
    requested = events.CodeRequested("join", "a" * 32, "+8617000000001", "123456", "zh", channel="voice")
    assert "123456" not in repr(requested) and "+86" not in repr(requested) and "voice" in repr(requested)
    assert len(tasks.STATUS_VOICE) <= 20, "the kind fits the outbox's column"
