"""Decision texts honour and remember SMS opt-outs; the join flow explains an opted-out number."""

from __future__ import annotations

import re

from sqlmodel import select

from app.models import Member, SmsOptOut, utcnow
from app.services import notify
from app.services.sms import SmsError
from tests import factories
from tests.conftest import hidden_fields
from tests.web.test_join import code_from, send_code, submit


def joined_member(app, client, db, gateway) -> Member:  # type: ignore[no-untyped-def]
    district = factories.district(db)
    station = factories.workplace(db, district)
    db.commit()
    path = factories.join_path(app, station)
    submit(client, path)
    send_code(client, code_from(gateway))
    db.commit()
    return db.exec(select(Member)).one()


def test_decision_text_is_sent_and_neutral(app, client, db, sms):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    pii = app.extensions["pii"]
    assert notify.send_decision(db, sms, pii, member, link="https://join.example.org/status/", now=utcnow())
    assert sms.sent[-1].to == factories.phone(1) and "工会" not in sms.sent[-1].body
    assert "https://join.example.org/status/" in sms.sent[-1].body


def test_opted_out_phone_gets_no_decision_text(app, client, db, sms):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    pii = app.extensions["pii"]
    before = len(sms.sent)
    db.add(SmsOptOut(phone_index=pii.index(factories.phone(1))))
    db.flush()
    assert not notify.send_decision(db, sms, pii, member, link="x", now=utcnow())
    assert len(sms.sent) == before


def test_opt_out_answer_is_remembered(app, client, db, sms):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    pii = app.extensions["pii"]
    sms.fail_with = SmsError("opted_out", 21610)
    assert not notify.send_decision(db, sms, pii, member, link="x", now=utcnow())
    assert db.get(SmsOptOut, pii.index(factories.phone(1))) is not None


def neutral_code_page(page_text: str) -> str:
    """The code page's notice; it must be the one any undeliverable number gets."""
    assert "无法向这个号码发送验证码" in page_text, "a code that could not be sent, in neutral words"
    for telling in ("退订", "START", "turned off", "短信已关闭"):
        assert telling not in page_text, "nothing about the phone's history before it is proven"
    return page_text


def test_join_with_an_opted_out_number_reads_like_any_failed_send_and_is_recorded(app, client, db, sms):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    station = factories.workplace(db, district)
    db.commit()
    sms.fail_with = SmsError("opted_out", 21610)
    submit(client, factories.join_path(app, station))
    opted_out = neutral_code_page(client.get("/join/code").text)
    db.commit()
    assert db.get(SmsOptOut, app.extensions["pii"].index(factories.phone(1))) is not None
    sms.fail_with = SmsError("rejected", 21211)
    other = app.test_client()
    submit(other, factories.join_path(app, station), phone=factories.phone(2)[3:])
    rejected = other.get("/join/code").text
    assert same_page(rejected, factories.phone(2)) == same_page(opted_out, factories.phone(1)), (
        "the same page as a number the provider would not take"
    )


def same_page(html: str, phone: str) -> str:
    """The page without what differs between any two workers (the CSRF token, the masked number)."""
    return re.sub(r'name="csrf_token"[^>]*>', "", html).replace(phone[-4:], "")


def test_status_with_an_opted_out_number_reads_like_any_failed_send(app, client, db, sms):  # type: ignore[no-untyped-def]
    sms.fail_with = SmsError("opted_out", 21610)
    form = client.get("/status/")
    response = client.post("/status/", data={**hidden_fields(form.text), "phone": factories.phone(1)})
    assert response.status_code == 303
    neutral_code_page(client.get("/status/code").text)
