"""Receipts and replies pushed by the mainland providers: a secret key, opt-out words recorded."""

from __future__ import annotations

import pytest

from app.services import sms
from app.services.sms import replies
from tests import factories

SECRET = "k" * 32


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    return {**env, "SMS_RECEIPT_SECRET": SECRET}


@pytest.mark.parametrize("word", ["TD", "退订", "t", "N", "STOP", " td "])
def test_an_aliyun_opt_out_reply_is_recorded(app, client, db, word):  # type: ignore[no-untyped-def]
    phone = factories.phone(3)
    push = [{"phone_number": phone[3:], "content": word, "sign_name": "x", "send_time": "2026-12-01 10:00:00"}]
    answer = client.post(f"/sms/aliyun/receipts?key={SECRET}", json=push)
    assert answer.status_code == 200 and answer.json == {"code": 0, "msg": "成功"}
    assert sms.is_opted_out(db, app.extensions["pii"], phone)


def test_a_tencent_reply_and_reports(app, client, db):  # type: ignore[no-untyped-def]
    pii = app.extensions["pii"]
    report = [{"mobile": factories.phone(4)[3:], "report_status": "SUCCESS", "errmsg": "DELIVRD"}]
    assert client.post(f"/sms/tencent/receipts?key={SECRET}", json=report).json == {"result": 0, "errmsg": "OK"}
    assert not sms.is_opted_out(db, pii, factories.phone(4))
    reply = {"mobile": factories.phone(5)[3:], "text": "退订", "nationcode": "86"}
    assert client.post(f"/sms/tencent/receipts?key={SECRET}", json=reply).status_code == 200
    db.commit()  # a fresh snapshot
    assert sms.is_opted_out(db, pii, factories.phone(5))


def test_a_push_without_the_key_or_with_junk_is_refused_or_ignored(app, client, db):  # type: ignore[no-untyped-def]
    push = [{"phone_number": factories.phone(6)[3:], "content": "TD"}]
    assert client.post("/sms/aliyun/receipts?key=wrong", json=push).status_code == 404
    assert client.post("/sms/aliyun/receipts", json=push).status_code == 404
    assert client.post(f"/sms/other/receipts?key={SECRET}", json=push).status_code == 404
    assert not sms.is_opted_out(db, app.extensions["pii"], factories.phone(6))
    assert client.post(f"/sms/aliyun/receipts?key={SECRET}", data="not json").status_code == 200
    assert client.post(f"/sms/aliyun/receipts?key={SECRET}", json=[1, "x", {"phone_number": "abc"}]).status_code == 200


def test_parse_reads_reports_as_delivered_or_failed():  # type: ignore[no-untyped-def]
    ok, failed = replies.parse(
        "aliyun",
        [{"phone_number": "13800000000", "success": True}, {"phone_number": "13800000001", "success": False}],
    )
    assert ok.status == "delivered" and failed.status == "failed" and not ok.opted_out
    assert replies.parse("aliyun", {"phone_number": "13800000000", "content": "好的"})[0].opted_out is False
