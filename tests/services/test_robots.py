"""District group robots (app/services/robots.py) against local servers that check WeCom's and
DingTalk's formats (DingTalk's signature as their server computes it): counts and the station only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from app.models import ChatRobot, Delivery, District, Member, utcnow
from app.services import robots
from tests import factories
from tests.http_receiver import Received, receiving
from tests.web.test_api import make_member
from tests.web.test_join import code_from, send_code, submit

OK = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
SECRET = "SEC" + "0123456789abcdef" * 4


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    return {**env, "WEBHOOK_ALLOW_PRIVATE": "1"}


def text_of(item: Received) -> str:
    body = item.json()
    assert set(body) == {"msgtype", "text"} and body["msgtype"] == "text" and set(body["text"]) == {"content"}
    assert item.headers["content-type"] == "application/json"
    return str(body["text"]["content"])


def wecom(item: Received) -> tuple[int, bytes]:
    """WeCom's robot: POST /cgi-bin/webhook/send?key=…, a text message."""
    query = parse_qs(urlsplit(item.path).query)
    if urlsplit(item.path).path != "/cgi-bin/webhook/send" or query.get("key") != ["wk-key"]:
        return 200, json.dumps({"errcode": 93000, "errmsg": "invalid webhook url"}).encode()
    text_of(item)
    return 200, OK


def dingtalk(item: Received) -> tuple[int, bytes]:
    """DingTalk's signed robot: timestamp (ms, within an hour) and sign = base64 HMAC-SHA256 of "ts\\nsecret"."""
    query = parse_qs(urlsplit(item.path).query)
    timestamp, sign = query["timestamp"][0], query["sign"][0]  # parse_qs undoes the URL encoding
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest())
    fresh = abs(time.time() * 1000 - int(timestamp)) < 3600 * 1000
    if query.get("access_token") != ["dt-token"] or sign != expected.decode() or not fresh:
        return 200, json.dumps({"errcode": 310000, "errmsg": "sign not match"}).encode()
    text_of(item)
    return 200, OK


def connect(app, db, kind: str, url: str, secret: str | None = None) -> ChatRobot:  # type: ignore[no-untyped-def]
    robot = robots.connect(db, app.extensions["pii"], "PD", kind, url, secret, allow_private=True)
    db.commit()
    return robot


def join(app, client, db, sms, station) -> Member:  # type: ignore[no-untyped-def]
    submit(client, factories.join_path(app, station))
    send_code(client, code_from(sms))
    db.commit()
    return db.exec(select(Member)).one()


def test_a_new_application_posts_the_station_and_count_to_wecom_and_signed_dingtalk(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    with receiving() as wecom_server, receiving() as dingtalk_server:
        wecom_server.reply, dingtalk_server.reply = wecom, dingtalk
        connect(app, db, "wecom", wecom_server.url + "/cgi-bin/webhook/send?key=wk-key")
        connect(app, db, "dingtalk", dingtalk_server.url + "/robot/send?access_token=dt-token", SECRET)
        join(app, client, db, sms, station)
        [to_wecom] = wecom_server.wait_for(1, within=5)
        [to_dingtalk] = dingtalk_server.wait_for(1, within=5)
    for item in (to_wecom, to_dingtalk):
        text = text_of(item)
        assert "张江美团骑手站" in text and "待审核共 1 份" in text
        assert factories.phone(1)[-4:] not in item.body.decode() and "王" not in text


def owe(db, robot: ChatRobot, count: int = 3) -> int:  # type: ignore[no-untyped-def]
    row = Delivery(kind=robots.KIND, owner_id=f"digest:{robot.id}:{count}:15", due_at=utcnow())
    db.add(row)
    db.commit()
    return row.id or 0


def test_refusals_fail_and_a_busy_robot_is_tried_again(app, db, station):  # type: ignore[no-untyped-def]
    outbox = app.extensions["tasks"]
    with receiving() as server:
        server.reply = dingtalk
        robot = connect(app, db, "dingtalk", server.url + "/robot/send?access_token=dt-token", "SECwrong")
        assert outbox.deliver(owe(db, robot)) == "failed"  # errcode 310000: sign not match
        busy = connect(app, db, "wecom", server.url + "/cgi-bin/webhook/send?key=wk-key")
        server.reply = lambda item: (200, json.dumps({"errcode": 45009, "errmsg": "api freq out of limit"}).encode())
        row_id = owe(db, busy)
        assert outbox.deliver(row_id) == "later"
        server.reply = lambda item: (502, b"")
        later = utcnow() + timedelta(seconds=robots.RETRY_DELAY + 1)
        assert outbox.deliver(row_id, now=later) == "later"
        server.reply = wecom
        assert outbox.deliver(row_id, now=later + timedelta(seconds=robots.RETRY_DELAY + 1)) == "sent"
        assert "3 份入会申请" in text_of(server.received[-1])
        gone = owe(db, busy)
        robots.remove(db, busy.id or 0)
        db.commit()
        assert outbox.deliver(gone) == "gone"


def test_the_overdue_digest_counts_pending_applications_past_the_deadline(app, db, station):  # type: ignore[no-untyped-def]
    pii = app.extensions["pii"]
    home = db.get(District, station.district_id)
    make_member(db, pii, home, 1, age_days=40)
    make_member(db, pii, home, 2, age_days=41)
    make_member(db, pii, home, 3, age_days=1)
    other = factories.district(db, "XH", "徐汇")
    make_member(db, pii, other, 4, age_days=40)  # no robot in XH: no message
    db.commit()
    with receiving() as server:
        server.reply = wecom
        connect(app, db, "wecom", server.url + "/cgi-bin/webhook/send?key=wk-key")
        result = app.test_cli_runner().invoke(args=["robots", "digest"])
        assert result.exit_code == 0 and "queued 1" in result.output
        [item] = server.wait_for(1, within=5)
    assert "2 份入会申请已超过 15 个工作日" in text_of(item)
    assert robots.overdue_counts(db, utcnow() - timedelta(days=60), 15) == {}


def test_a_robot_on_a_private_address_is_refused_unless_allowed(app, db, station):  # type: ignore[no-untyped-def]
    from app.services.webhooks import UrlRefused

    with pytest.raises(UrlRefused):
        robots.connect(
            db,
            app.extensions["pii"],
            "PD",
            "wecom",
            "http://10.0.0.8/cgi-bin/webhook/send?key=k",
            None,
            allow_private=False,
        )
    with pytest.raises(robots.RobotError, match="kind"):
        robots.connect(db, app.extensions["pii"], "PD", "slack", "http://127.0.0.1/", None, allow_private=True)
