"""Decision texts honour and remember SMS opt-outs; the join flow explains an opted-out number."""

from __future__ import annotations

from sqlmodel import select

from app.models import Member, SmsOptOut, utcnow
from app.services import notify
from app.services.sms import SmsError
from tests import factories
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


def test_join_with_an_opted_out_number_explains_and_records_it(app, client, db, sms):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    station = factories.workplace(db, district)
    db.commit()
    sms.fail_with = SmsError("opted_out", 21610)
    submit(client, factories.join_path(app, station))
    page = client.get("/join/code")
    assert "退订" in page.text
    db.commit()
    assert db.get(SmsOptOut, app.extensions["pii"].index(factories.phone(1))) is not None
