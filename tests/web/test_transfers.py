"""Transfers end to end: the worker's offer at another district's poster, the API, the roster tab, the card."""

from __future__ import annotations

import json
import re

import pytest
from sqlmodel import select

from app.models import AuditEvent, Member, MemberStatus, Role, Transfer, TransferStatus, utcnow
from app.services import api_tokens, roster, transfers
from tests import factories
from tests.conftest import hidden_fields, make_staff, sign_in
from tests.web.test_api import DOCUMENT, PREFIX, SCHEMA, World, world  # noqa: F401  (the fixture)
from tests.web.test_cards import card_of, path_of
from tests.web.test_join import code_from, send_code, submit
from tests.web.test_status import decide, only_member


def call(client, method: str, path: str, token: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
    """As test_api.call, for paths with a transfer id too; the response is held to the description."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.open(PREFIX + path, method=method, headers=headers, **kwargs)
    template = re.sub(r"/transfers/\d+", "/transfers/{transfer_id}", path.split("?")[0])
    template = re.sub(r"/members/\d+", "/members/{member_id}", template)
    documented = DOCUMENT["paths"][template][method.lower()]["responses"]
    assert str(response.status_code) in documented, f"{response.status_code} is not documented for {template}"
    SCHEMA[template][method].validate_response(response)
    return response


def token_for(db, email: str, role: Role, districts: list[str]) -> str:  # type: ignore[no-untyped-def]
    user = make_staff(db, email, role, districts)
    token = api_tokens.issue(db, user, now=utcnow())[1]
    db.commit()
    return token


@pytest.fixture
def two_districts(app, db, station):  # type: ignore[no-untyped-def]
    """PD (the `station` fixture's district) and XH with a station of its own; both posters' paths."""
    xh = factories.district(db, "XH", "徐汇区总工会")
    xh_station = factories.workplace(db, xh, "XH-TJ01", "田林饿了么站")
    db.commit()
    return factories.join_path(app, station), factories.join_path(app, xh_station)


def member_in_pd_scans_xh(client, app, db, sms, paths) -> Member:  # type: ignore[no-untyped-def]
    """The done-when path up to the offer: joined and approved in PD, then the join flow at XH."""
    pd_path, xh_path = paths
    submit(client, pd_path)
    assert send_code(client, code_from(sms)).status_code == 303
    decide(app, db, only_member(db).id, approve=True)
    worker = app.test_client()
    assert submit(worker, xh_path).status_code == 303
    done = send_code(worker, code_from(sms))
    assert done.status_code == 303
    offer = worker.get("/join/done")
    assert offer.status_code == 303 and offer.headers["Location"].endswith("/join/transfer")
    return worker


def test_done_when_member_moves_from_pd_to_xh(client, app, db, sms, two_districts):
    worker = member_in_pd_scans_xh(client, app, db, sms, two_districts)
    page = worker.get("/join/transfer", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "Transfer my membership here" in page.text
    assert "<script" not in page.text and 'method="post"' in page.text, "one POST form, no script"
    member = only_member(db)
    old_card = card_of(app, db, member).url
    db.commit()  # no read snapshot held across the requests' writes (SQLite)
    confirmed = worker.post("/join/transfer", data=hidden_fields(page.text))
    assert confirmed.status_code == 303
    assert "waiting for review" in worker.get("/join/transfer", headers={"Accept-Language": "en"}).text
    pd_token = token_for(db, "pd@example.org", Role.official, ["PD"])
    xh_token = token_for(db, "xh@example.org", Role.official, ["XH"])
    [pending] = call(client, "GET", "/transfers?status=pending", xh_token).json["items"]
    assert pending["from_district"] == "PD" and pending["to_district"] == "XH" and pending["started_by"] == "worker"
    assert call(client, "GET", "/transfers?status=pending", pd_token).json["items"] == []
    assert call(client, "POST", f"/transfers/{pending['id']}/approve", pd_token).status_code == 404
    assert db.get(Transfer, pending["id"]).status is TransferStatus.pending, "the sender's try changed nothing"
    sent_before = len(sms.sent)
    approved = call(client, "POST", f"/transfers/{pending['id']}/approve", xh_token)
    assert approved.status_code == 200 and approved.json["to_member_number"] == "XH-000001"
    assert approved.json["from_member_number"] == "PD-000001"
    assert len(sms.sent) == sent_before + 1, "one neutral notice"
    assert "工会" not in sms.sent[-1].body
    assert call(client, "POST", f"/transfers/{pending['id']}/approve", xh_token).status_code == 409
    moved = only_member(db)
    assert (moved.id, moved.created_at, moved.decided_at) == (member.id, member.created_at, member.decided_at)
    [row] = json.loads(app.test_cli_runner().invoke(args=["members", "list", "--json"]).output)
    assert row["district"] == "XH" and row["workplace"] == "XH-TJ01" and row["member_number"] == "XH-000001"
    assert [(h["district"], h["member_number"]) for h in row["history"]] == [("PD", "PD-000001"), ("XH", "XH-000001")]
    assert row["history"][0]["until"] == row["history"][1]["since"] and row["history"][1]["until"] is None
    assert call(client, "GET", f"/members/{member.id}", pd_token).status_code == 404
    assert call(client, "GET", f"/members/{member.id}", xh_token).json["district"] == "XH"
    assert 'class="card-state revoked"' in client.get(path_of(old_card)).text, "the PD card is revoked"
    new_card = card_of(app, db, moved)
    assert new_card.member_number == "XH-000001"
    assert 'class="card-state valid"' in client.get(path_of(new_card.url)).text
    history = call(client, "GET", f"/members/{member.id}/transfers", xh_token).json["history"]
    assert [h["district"] for h in history] == ["PD", "XH"]


def test_confirming_twice_asks_once_and_nothing_shows_before_the_code(client, app, db, sms, two_districts):
    worker = member_in_pd_scans_xh(client, app, db, sms, two_districts)
    form = hidden_fields(worker.get("/join/transfer").text)
    assert worker.post("/join/transfer", data=form).status_code == 303
    assert worker.post("/join/transfer", data=form).status_code == 303
    assert len(db.exec(select(Transfer)).all()) == 1
    stranger = app.test_client()
    assert stranger.get("/join/transfer").status_code == 404, "no attempt in this session"
    assert stranger.post("/join/transfer", data=form).status_code in (400, 404)


def test_a_member_of_the_same_district_is_just_told_so(client, app, db, sms, two_districts):
    pd_path, _ = two_districts
    submit(client, pd_path)
    send_code(client, code_from(sms))
    decide(app, db, only_member(db).id, approve=True)
    again = app.test_client()
    submit(again, pd_path)
    send_code(again, code_from(sms))
    page = again.get("/join/done", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "You are already a member" in page.text
    assert again.get("/join/transfer").status_code == 303


def test_official_started_transfer_and_its_errors(client, db, world: World):  # noqa: F811
    official, admin = world.tokens["official"], world.tokens["admin"]
    mine = world.mine[0]
    body = {"to_district": "XH", "reason": "搬到徐汇"}
    refused = call(client, "POST", f"/members/{mine.id}/transfers", official, json=body)
    assert refused.status_code == 409 and refused.json["error"] == "not_approved"
    roster.approve(db, None, mine.id, by=world.users["admin"], now=utcnow())
    db.commit()
    for bad in ({"to_district": "NOPE"}, {"to_district": "PD"}, {"to_district": "XH", "x": 1}, {"reason": "r"}):
        assert call(client, "POST", f"/members/{mine.id}/transfers", official, json=bad).status_code == 422, bad
    assert call(client, "POST", f"/members/{world.theirs.id}/transfers", official, json=body).status_code == 404
    organizer = world.tokens["organizer"]
    assert call(client, "POST", f"/members/{mine.id}/transfers", organizer, json=body).status_code == 403
    made = call(client, "POST", f"/members/{mine.id}/transfers", official, json=body)
    assert made.status_code == 201 and made.json["status"] == "pending" and made.json["started_by"] == "official"
    again = call(client, "POST", f"/members/{mine.id}/transfers", official, json=body)
    assert again.status_code == 409 and again.json["error"] == "already_pending"
    assert call(client, "POST", f"/transfers/{made.json['id']}/approve", official).status_code == 404
    assert call(client, "POST", f"/transfers/{made.json['id']}/reject", admin, json={}).status_code == 422
    rejected = call(client, "POST", f"/transfers/{made.json['id']}/reject", admin, json={"reason": "不在本区"})
    assert rejected.status_code == 200 and rejected.json["reject_reason"] == "不在本区"
    assert call(client, "POST", f"/transfers/{made.json['id']}/approve", admin).status_code == 409
    assert db.get(Member, mine.id).district_id == world.pd.id, "a rejected transfer moves no one"
    assert call(client, "GET", "/transfers?status=nope", admin).status_code == 400
    assert [t["status"] for t in call(client, "GET", "/transfers", admin).json["items"]] == ["rejected"]
    audit = db.exec(select(AuditEvent.action).where(AuditEvent.target_type == "transfer")).all()
    assert sorted(audit) == ["transfer.reject", "transfer.request"]


def test_roster_tab_and_member_page_forms_without_javascript(app, client, db, world: World):  # noqa: F811
    pd_official = make_staff(db, "o-pd@example.org", Role.official, ["PD"])
    make_staff(db, "o-xh@example.org", Role.official, ["XH"])
    mine = world.mine[1]
    roster.approve(db, None, mine.id, by=pd_official, now=utcnow())
    db.commit()
    sign_in(client, db, "o-pd@example.org")
    member_page = client.get(f"/roster/{mine.id}", headers={"Accept-Language": "en"})
    assert "Transfer to another district" in member_page.text
    asked = client.post(
        f"/roster/transfers/member/{mine.id}",
        data={**hidden_fields(member_page.text), "to_district": "XH", "reason": ""},
    )
    assert asked.status_code == 303
    assert "is waiting for that district" in client.get(f"/roster/{mine.id}", headers={"Accept-Language": "en"}).text
    [pending] = db.exec(select(Transfer)).all()
    db.commit()  # no read snapshot held across the requests' writes (SQLite)
    tab = client.get("/roster/transfers/")
    assert tab.status_code == 200 and f'id="transfer-{pending.id}"' not in tab.text, "PD receives nothing"
    csrf = hidden_fields(member_page.text)
    assert client.post(f"/roster/transfers/{pending.id}/approve", data=csrf).status_code == 404
    xh = app.test_client()
    sign_in(xh, db, "o-xh@example.org")
    roster_page = xh.get("/roster/", headers={"Accept-Language": "en"})
    assert "Incoming transfers (1)" in roster_page.text
    tab = xh.get("/roster/transfers/")
    assert f'id="transfer-{pending.id}"' in tab.text and "李四" in tab.text
    done = xh.post(f"/roster/transfers/{pending.id}/approve", data=hidden_fields(tab.text))
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/roster/{mine.id}")
    page = xh.get(f"/roster/{mine.id}", headers={"Accept-Language": "en"})
    assert "XH-000001" in page.text and "PD-000001" in page.text, "the history on the member page"
    assert client.get(f"/roster/{mine.id}").status_code == 404, "PD no longer sees the member"
    english = {"Accept-Language": "en"}
    late = xh.post(f"/roster/transfers/{pending.id}/approve", data=hidden_fields(tab.text), headers=english)
    assert late.status_code == 303
    again = xh.get(late.headers["Location"], headers=english)
    assert "Someone decided this transfer first: o-xh@example.org" in again.text, "who and when, never twice"


def test_dashboard_counts_a_transfer_out(app, client, db, world: World):  # noqa: F811
    admin = world.users["admin"]
    mine = world.mine[0]
    roster.approve(db, None, mine.id, by=admin, now=utcnow())
    move = transfers.request_by_official(db, None, mine.id, to_district="XH", reason=None, by=admin, now=utcnow())
    transfers.approve(db, None, move.id or 0, by=admin, now=utcnow())
    db.commit()
    make_staff(db, "dash-pd@example.org", Role.official, ["PD"])
    sign_in(client, db, "dash-pd@example.org")
    rows = client.get("/dashboard/dashboard.csv").text.splitlines()
    assert "transfers_out,,PD,,浦东,1" in rows and "transfers_in,,PD,,浦东,0" in rows


def test_withdrawal_removes_the_transfers_with_the_member(db, world: World):  # noqa: F811
    admin = world.users["admin"]
    mine = world.mine[0]
    roster.approve(db, None, mine.id, by=admin, now=utcnow())
    transfers.request_by_official(db, None, mine.id, to_district="XH", reason=None, by=admin, now=utcnow())
    db.commit()
    db.delete(db.get(Member, mine.id))
    db.commit()
    assert db.exec(select(Transfer)).all() == []
    assert db.exec(select(Member).where(Member.status == MemberStatus.approved)).all() == []


def prove_again(app, sms):  # type: ignore[no-untyped-def]
    """The status page after its code; the per-phone SMS limits (spent by the two joins) start afresh."""
    from app.extensions import limiter
    from tests.web.test_status import prove

    limiter.storage.reset()
    return prove(app.test_client(), sms, factories.phone(1)).text


def test_the_status_page_tells_the_worker_what_became_of_the_transfer(client, app, db, sms, two_districts):
    worker = member_in_pd_scans_xh(client, app, db, sms, two_districts)
    worker.post("/join/transfer", data=hidden_fields(worker.get("/join/transfer").text))
    assert "Your transfer to 徐汇区总工会 is waiting for review." in prove_again(app, sms)
    [asked] = db.exec(select(Transfer)).all()
    db.commit()
    xh_token = token_for(db, "xh@example.org", Role.official, ["XH"])
    sent_before = len(sms.sent)
    call(client, "POST", f"/transfers/{asked.id}/reject", xh_token, json={"reason": "请先提供站点证明"})
    assert len(sms.sent) == sent_before + 1, "the worker asked, so the worker hears"
    page = prove_again(app, sms)
    assert "Your transfer to 徐汇区总工会 was not accepted. Reason: 请先提供站点证明" in page
    assert 'id="member-number">PD-000001<' in page, "still a PD member"
