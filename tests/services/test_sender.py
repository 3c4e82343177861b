"""Side effects after the commit on the sender's threads, and the join codes sent that way."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
import time_machine
from sqlmodel import select

import config as settings
from app import create_app
from app.models import JoinAttempt, SmsOptOut
from app.services.sender import Sender
from app.services.sms import SmsError
from tests import factories
from tests.conftest import hidden_fields
from tests.web.test_join import code_from, submit


def test_without_threads_a_job_runs_at_once_in_the_caller():
    ran: list[str] = []
    Sender(0).submit(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]


def test_with_threads_a_job_runs_on_a_sender_thread():
    sender, ran = Sender(2), []
    sender.submit(lambda: ran.append(threading.current_thread().name))
    sender.drain()
    assert len(ran) == 1 and ran[0].startswith("sender")


def test_a_failing_job_is_logged_never_raised(caplog):
    def broken() -> None:
        raise RuntimeError("provider exploded")

    caplog.set_level(logging.ERROR, logger="app.services.sender")
    sender = Sender(1)
    sender.submit(broken)
    sender.drain()
    assert any("broken failed: RuntimeError" in r.getMessage() for r in caplog.records)


def test_a_forked_process_gets_a_pool_of_its_own():
    sender = Sender(1)
    sender.submit(lambda: None)
    first = sender._pool
    sender._pid = -1  # as if this were a child process after fork
    sender.submit(lambda: None)
    sender.drain()
    assert sender._pool is not first


@pytest.fixture
def background(env, station):  # type: ignore[no-untyped-def]
    """The app as served: codes go out from the sender's threads after the response."""
    app = create_app(settings.TestingConfig({**env, "SMS_SENDER_THREADS": "2"}))
    yield app
    app.extensions["sender"].drain()
    app.extensions["db_engine"].dispose()


def test_the_code_goes_out_after_the_response(background, station):
    client, sms = background.test_client(), background.extensions["sms"]
    assert submit(client, factories.join_path(background, station)).status_code == 303
    background.extensions["sender"].drain()
    assert len(sms.sent) == 1 and code_from(sms)


def test_a_failed_send_is_shown_on_the_code_page_and_cleared_by_the_next_code(background, station, db):
    client, sms = background.test_client(), background.extensions["sms"]
    sms.fail_with = SmsError("rejected", 21211)
    assert submit(client, factories.join_path(background, station)).status_code == 303
    background.extensions["sender"].drain()
    page = client.get("/join/code")
    assert "无法向这个号码发送验证码" in page.text, "the reason, on the next page the worker sees"
    db.commit()
    [attempt] = db.exec(select(JoinAttempt)).all()
    assert attempt.send_error == "rejected", "the draft is kept, with why its code did not go out"
    sms.fail_with = None
    with time_machine.travel(attempt.code_sent_at + timedelta(seconds=61), tick=False):
        response = client.post("/join/resend", data=hidden_fields(client.get("/join/code").text))
        assert response.status_code == 303
        background.extensions["sender"].drain()
    db.commit()
    db.expire_all()
    assert db.get(JoinAttempt, attempt.id).send_error is None and len(sms.sent) == 1


def test_an_opted_out_number_is_recorded_from_the_sender(background, station, db):
    client, sms = background.test_client(), background.extensions["sms"]
    sms.fail_with = SmsError("opted_out", 21610)
    submit(client, factories.join_path(background, station))
    background.extensions["sender"].drain()
    db.commit()
    assert db.exec(select(SmsOptOut)).all(), "the opt-out was written by the sender thread"
