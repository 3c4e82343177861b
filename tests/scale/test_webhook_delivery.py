"""Issue 15's done-when, with real processes: an endpoint on loopback (WEBHOOK_ALLOW_PRIVATE=1)
registered with the CLI receives `member.approved` within 10 s of an approval through the API,
sent by the task consumer (`flask --app wsgi worker`, a process of its own, on the SQLite queue);
the signature verifies with the printed secret; the payload has no phone; an endpoint that
answers 500 first gets the same event again later (same webhook-id, fresh valid signature)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session
from standardwebhooks.webhooks import Webhook

import config
from app import create_app
from app.models import Role, utcnow
from app.services import api_tokens
from tests import factories
from tests.http_receiver import receiving
from tests.scale.test_delivery_kill import _kill
from tests.web.test_api import make_member, make_user

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def queued_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **env,
        "TASK_QUEUE": f"sqlite:///{tmp_path / 'tasks.db'}",
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "WEBHOOK_RETRY_BASE_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }


def _consumer(env: dict[str, str], log: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    with log.open("wb") as sink:
        return subprocess.Popen(
            [str(BIN / "flask"), "--app", "wsgi", "worker", "--workers", "2"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_started(process: subprocess.Popen, log: Path) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the consumer exited: {log.read_text()[-2000:]}")
        if "consumer started" in log.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError("the consumer did not start in 60 s")


@pytest.mark.slow
def test_an_api_approval_reaches_a_loopback_endpoint_signed_and_a_500_is_retried(queued_env, tmp_path):  # type: ignore[no-untyped-def]
    app = create_app(config.TestingConfig(queued_env))
    engine = app.extensions["db_engine"]
    log = tmp_path / "consumer.log"
    consumer = _consumer(queued_env, log)
    try:
        with receiving([500, 200]) as receiver:
            added = app.test_cli_runner().invoke(
                args=["webhooks", "add", receiver.url + "/hook", "--events", "member.approved"]
            )
            assert added.exit_code == 0, added.output
            secret = added.output.strip().splitlines()[-1]
            with Session(engine, expire_on_commit=False) as db:
                district = factories.district(db)
                official = make_user(db, "official@example.org", Role.official, [district])
                member = make_member(db, app.extensions["pii"], district, 7, name="王小明")
                token = api_tokens.issue(db, official, now=utcnow())[1]
                db.commit()
            _wait_started(consumer, log)

            approved_at = time.time()
            answer = app.test_client().post(
                f"/api/v1/members/{member.id}/approve", headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 200, answer.text
            first = receiver.wait_for(1, within=10)
            assert first, "member.approved reached the endpoint within 10 s of the approval"
            assert first[0].at - approved_at < 10

            both = receiver.wait_for(2, within=30)

            assert len(both) == 2, "after the 500 the event arrived again"
    finally:
        _kill(consumer)
        engine.dispose()
    one, two = both
    for item in (one, two):
        payload = Webhook(secret).verify(item.body, item.headers)  # the printed secret verifies each try
        assert payload["type"] == "member.approved" and payload["data"]["member_id"] == member.id
        assert payload["data"]["member_number"] == "PD-000001"
        assert factories.phone(7)[3:] not in item.body.decode() and "王小明" not in item.body.decode()
    assert one.headers["webhook-id"] == two.headers["webhook-id"]
    assert two.at - one.at >= 0.9  # WEBHOOK_RETRY_BASE_SECONDS later
