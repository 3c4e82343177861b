"""`flask webhooks …` and `flask robots …`: add (secret once), refuse private addresses, list, log, resend, remove."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.models import AuditEvent, ChatRobot, WebhookDelivery, WebhookEndpoint
from tests import factories
from tests.http_receiver import receiving
from tests.services.test_webhooks import approve, place  # noqa: F401  (a fixture)
from tests.test_cli import run


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    return {**env, "WEBHOOK_ALLOW_PRIVATE": "1"}


def test_add_prints_the_secret_once_and_list_shows_no_secret(app, db, place):  # noqa: F811  # type: ignore[no-untyped-def]
    result = run(app, "webhooks", "add", "http://127.0.0.1:9/in", "--events", "member.approved,member.rejected")
    assert result.exit_code == 0
    secret = result.output.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    endpoint = db.exec(select(WebhookEndpoint)).one()
    assert endpoint.events == ["member.approved", "member.rejected"] and secret not in endpoint.secret_enc
    listing = run(app, "webhooks", "list").output
    assert "http://127.0.0.1:9/in" in listing and "*" in listing and secret not in listing
    audit = db.exec(select(AuditEvent).where(AuditEvent.action == "webhook.add")).one()
    assert secret not in str(audit.details)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["http://127.0.0.1:9/in", "--events", "member.deleted"], "events must be among"),
        (["http://127.0.0.1:9/in", "--events", "member.approved", "--district", "NOPE"], "no district"),
        (["gopher://127.0.0.1/x", "--events", "member.approved"], "http:// or https://"),
    ],
)
def test_bad_input_exits_non_zero_and_stores_nothing(app, db, args, says):  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(args=["webhooks", "add", *args])
    assert result.exit_code != 0 and says in result.output
    assert db.exec(select(WebhookEndpoint)).all() == []


def test_loopback_is_refused_without_webhook_allow_private(env, db):  # type: ignore[no-untyped-def]
    from app import create_app
    from config import TestingConfig

    strict = create_app(TestingConfig({**env, "WEBHOOK_ALLOW_PRIVATE": "0"}))
    result = strict.test_cli_runner().invoke(
        args=["webhooks", "add", "http://127.0.0.1:8080/", "--events", "member.approved"]
    )
    assert result.exit_code == 1
    assert "loopback, private, link-local or reserved" in result.output and "whsec_" not in result.output
    assert db.exec(select(WebhookEndpoint)).all() == []
    strict.extensions["db_engine"].dispose()


def test_the_delivery_log_resend_and_remove(app, db, place):  # noqa: F811  # type: ignore[no-untyped-def]
    with receiving([500, 200]) as receiver:
        run(app, "webhooks", "add", receiver.url, "--events", "member.approved", "--district", "PD")
        approve(app, db, place)
        receiver.wait_for(1, within=5)
        delivery = db.exec(select(WebhookDelivery)).one()
        log = run(app, "webhooks", "deliveries").output
        assert delivery.id in log and "pending" in log and "HTTP 500" in log
        assert run(app, "webhooks", "resend", delivery.id).exit_code == 0
        assert len(receiver.wait_for(2, within=5)) == 2
    assert "delivered" in run(app, "webhooks", "deliveries", "--endpoint", str(delivery.endpoint_id)).output
    assert app.test_cli_runner().invoke(args=["webhooks", "resend", "msg_nope"]).exit_code == 1
    assert run(app, "webhooks", "remove", str(delivery.endpoint_id)).exit_code == 0
    db.commit()
    assert db.exec(select(WebhookEndpoint)).all() == [] and db.exec(select(WebhookDelivery)).all() == []
    assert app.test_cli_runner().invoke(args=["webhooks", "remove", "99"]).exit_code == 1


def test_robots_set_list_remove_keep_the_url_and_secret_encrypted(app, db):  # type: ignore[no-untyped-def]
    factories.district(db)
    db.commit()
    url = "http://127.0.0.1:9/robot/send?access_token=tok123"
    result = run(
        app, "robots", "set", "pd", "--kind", "dingtalk", "--url-stdin", "--secret-stdin", input=f"{url}\nSECabc\n"
    )
    assert result.exit_code == 0, result.output
    robot = db.exec(select(ChatRobot)).one()
    assert "tok123" not in robot.url_enc and robot.secret_enc and "SECabc" not in robot.secret_enc
    listing = run(app, "robots", "list").output
    assert "PD" in listing and "dingtalk" in listing and "signed" in listing and "tok123" not in listing
    refused = app.test_cli_runner().invoke(
        args=["robots", "set", "PD", "--kind", "wecom", "--url", url, "--secret-stdin"], input="x\n"
    )
    assert refused.exit_code == 1 and "only a DingTalk robot" in refused.output
    assert run(app, "robots", "remove", str(robot.id)).exit_code == 0
