"""The pages of the life cycle after applying: the e-card on the status page, a question answered,
one appeal, the federation's escalation queue, and the promise of the done page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

import config
from app import create_app
from app.models import Appeal, EscalationReturn, Member, MemberQuestion, MemberStatus, Role, User, utcnow
from app.services import cards
from tests import factories
from tests.conftest import hidden_fields, make_staff, sign_in
from tests.web.test_join import code_from, send_code, submit
from tests.web.test_status import decide, joined, only_member, prove

ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}


def _official(client, db):  # type: ignore[no-untyped-def]
    make_staff(db, "pd@example.org", Role.official, ["PD"])
    sign_in(client, db, "pd@example.org")


def _admin(client, db):  # type: ignore[no-untyped-def]
    make_staff(db, "admin@example.org", Role.admin)
    sign_in(client, db, "admin@example.org")


def _post(client, page_url: str, target: str, **data: str):  # type: ignore[no-untyped-def]
    page = client.get(page_url, headers=EN)
    assert page.status_code == 200, page.status_code
    return client.post(target, data={"csrf_token": hidden_fields(page.text)["csrf_token"], **data}, headers=EN)


def _worker(app, sms):  # type: ignore[no-untyped-def]
    worker = app.test_client()
    assert prove(worker, sms, factories.phone(1)).status_code == 200
    return worker


# --- the e-card and the promise --------------------------------------------------------------------


def test_an_approved_worker_sees_the_card_with_its_qr(client, app, db, sms, station):
    joined(client, app, sms, station)
    decide(app, db, only_member(db).id, approve=True)
    page = prove(app.test_client(), sms, factories.phone(1))
    assert 'class="member-card"' in page.text and "<svg" in page.text
    assert "王*明" in page.text and "王小明" not in page.text and "PD-000001" in page.text
    assert "浦东新区总工会" in page.text  # the district
    valid_until = re.search(r"<dt>Valid until</dt><dd>(\d{4}-\d{2}-\d{2})</dd>", page.text)
    assert valid_until is not None
    member = only_member(db)
    card = cards.card_for(
        db,
        member,
        signer=app.extensions["card_signer"],
        name="王小明",
        base_url=app.config["PUBLIC_BASE_URL"],
        union_name="",
        now=utcnow(),
        valid_days=app.config["CARD_VALID_DAYS"],
    )
    assert card is not None and card.valid_until.isoformat() == valid_until.group(1)


def test_a_pending_worker_sees_no_card(client, app, db, sms, station):
    joined(client, app, sms, station)
    page = prove(app.test_client(), sms, factories.phone(1))
    assert "member-card" not in page.text and "within 15 working days" in page.text


def test_the_done_page_and_the_status_page_promise_approval_working_days(env, sms):
    app = create_app(config.TestingConfig({**env, "APPROVAL_WORKING_DAYS": "10"}))
    app.extensions["sms"] = sms
    with app.app_context():
        from sqlmodel import Session

        with Session(app.extensions["db_engine"]) as db:
            station = factories.workplace(db, factories.district(db))
            db.commit()
            client = app.test_client()
            submit(client, factories.join_path(app, station))
            done = send_code(client, code_from(sms))
    done_page = client.get(done.headers["Location"], headers=ZH)
    assert "10 个工作日" in done_page.text and "15 个工作日" not in done_page.text
    status_page = prove(app.test_client(), sms, factories.phone(1))
    assert "within 10 working days" in status_page.text


# --- needs more information ----------------------------------------------------------------------


def test_an_official_asks_and_the_worker_answers_on_the_status_page(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    _official(client, db)
    before = len(sms.sent)
    asked = _post(client, f"/roster/{member_id}", f"/roster/{member_id}/ask", question="请补充您的站点名称")
    assert asked.status_code == 303
    assert len(sms.sent) == before + 1 and "/status/" in sms.sent[-1].body and "站点" not in sms.sent[-1].body
    roster_page = client.get(f"/roster/{member_id}", headers=EN)
    assert "Waiting for the answer" in roster_page.text and 'id="question"' not in roster_page.text

    worker = _worker(app, sms)
    page = worker.get("/status/me", headers=EN)
    assert "请补充您的站点名称" in page.text and "has a question for you" in page.text
    answered = worker.post("/status/answer", data={**hidden_fields(page.text), "text": "张江美团站"}, headers=EN)
    assert answered.status_code == 303
    after = worker.get("/status/me", headers=EN)
    assert "answer was sent" in after.text and "waiting for review" in after.text

    roster_page = client.get(f"/roster/{member_id}", headers=EN)
    assert "张江美团站" in roster_page.text and 'id="question"' in roster_page.text  # may ask again
    row = db.exec(select(MemberQuestion)).one()
    assert "张江" not in (row.answer_enc or "")


def test_an_empty_or_late_answer_is_refused_with_a_message(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    _official(client, db)
    _post(client, f"/roster/{member_id}", f"/roster/{member_id}/ask", question="问题")
    worker = _worker(app, sms)
    page = worker.get("/status/me", headers=EN)
    empty = worker.post("/status/answer", data={**hidden_fields(page.text), "text": "  "}, headers=EN)
    assert empty.status_code == 422 and "Please write your answer" in empty.text
    long = worker.post("/status/answer", data={**hidden_fields(page.text), "text": "长" * 501}, headers=EN)
    assert long.status_code == 422 and "At most 500" in long.text
    assert worker.post("/status/answer", data={**hidden_fields(page.text), "text": "好"}, headers=EN).status_code == 303
    again = worker.post("/status/answer", data={**hidden_fields(page.text), "text": "再答"}, headers=EN)
    assert again.status_code == 409
    db.expire_all()
    assert db.exec(select(MemberQuestion)).one().answer_enc is not None


def test_an_empty_question_is_refused_and_another_districts_member_is_404(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    factories.district(db, code="XH", name="徐汇区总工会")
    db.commit()
    make_staff(db, "xh@example.org", Role.official, ["XH"])
    sign_in(client, db, "xh@example.org")
    page = client.get("/roster/", headers=EN)
    token = hidden_fields(page.text)["csrf_token"]
    assert client.post(f"/roster/{member_id}/ask", data={"csrf_token": token, "question": "?"}).status_code == 404
    client.post("/logout", data={"csrf_token": token})
    other = app.test_client()
    _official(other, db)
    empty = _post(other, f"/roster/{member_id}", f"/roster/{member_id}/ask", question=" ")
    assert empty.status_code == 303 and "Please write the question" in other.get(empty.headers["Location"]).text
    assert db.exec(select(MemberQuestion)).all() == []


# --- one appeal and the escalation queue -----------------------------------------------------------


def test_a_rejected_worker_appeals_once_and_the_admin_decides_it(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    decide(app, db, member_id, approve=False)
    worker = _worker(app, sms)
    page = worker.get("/status/me", headers=EN)
    assert "Appeal this decision" in page.text
    sent = worker.post("/status/appeal", data={**hidden_fields(page.text), "text": "我有站点证明"}, headers=EN)
    assert sent.status_code == 303
    assert "appeal is being reviewed" in worker.get("/status/me", headers=EN).text
    assert only_member(db).status is MemberStatus.pending

    _admin(client, db)
    queue = client.get("/admin/escalations", headers=EN)
    assert f'id="escalated-{member_id}"' in queue.text and "Appeal" in queue.text
    assert "我有站点证明" not in queue.text  # the appeal's words are on the member page only
    assert "我有站点证明" in client.get(f"/roster/{member_id}", headers=EN).text
    decided = _post(
        client, "/admin/escalations", f"/admin/escalations/{member_id}/decide", action="reject", reason="复核维持"
    )
    assert decided.status_code == 303
    assert f'id="escalated-{member_id}"' not in client.get("/admin/escalations").text

    final = worker.get("/status/me", headers=EN)
    assert "复核维持" in final.text and "This decision is final" in final.text
    assert "Appeal this decision" not in final.text
    again = worker.post("/status/appeal", data={**hidden_fields(final.text), "text": "再次"}, headers=EN)
    assert again.status_code == 409
    assert len(db.exec(select(Appeal)).all()) == 1


def test_an_empty_appeal_is_refused(client, app, db, sms, station):
    joined(client, app, sms, station)
    decide(app, db, only_member(db).id, approve=False)
    worker = _worker(app, sms)
    page = worker.get("/status/me", headers=EN)
    refused = worker.post("/status/appeal", data={**hidden_fields(page.text), "text": ""}, headers=EN)
    assert refused.status_code == 422 and "Please say why you appeal" in refused.text
    assert only_member(db).status is MemberStatus.rejected and db.exec(select(Appeal)).all() == []


def test_an_overdue_application_is_sent_back_with_a_note(client, app, db, sms, station):
    joined(client, app, sms, station)
    member = only_member(db)
    member.created_at = utcnow() - timedelta(days=60)
    db.add(member)
    db.commit()
    _admin(client, db)
    queue = client.get("/admin/escalations", headers=EN)
    assert f'id="escalated-{member.id}"' in queue.text and "Overdue" in queue.text
    back = _post(client, "/admin/escalations", f"/admin/escalations/{member.id}/return", note="请三天内处理")
    assert back.status_code == 303
    assert f'id="escalated-{member.id}"' not in client.get("/admin/escalations").text
    assert "请三天内处理" in client.get(f"/roster/{member.id}", headers=EN).text
    assert "请三天内处理" not in db.exec(select(EscalationReturn)).one().note_enc


def test_the_admin_approves_an_overdue_application_from_the_queue(client, app, db, sms, station):
    joined(client, app, sms, station)
    member = only_member(db)
    member.created_at = utcnow() - timedelta(days=60)
    db.add(member)
    db.commit()
    _admin(client, db)
    before = len(sms.sent)
    done = _post(client, "/admin/escalations", f"/admin/escalations/{member.id}/decide", action="approve")
    assert done.status_code == 303 and len(sms.sent) == before + 1
    assert only_member(db).status is MemberStatus.approved
    gone = _post(client, "/home", f"/admin/escalations/{member.id}/decide", action="approve")
    assert "Someone else decided" in client.get(gone.headers["Location"], headers=EN).text


@pytest.mark.parametrize("role", [Role.official, Role.organizer])
def test_the_escalation_queue_is_for_admins_only(client, db, station, role):
    make_staff(db, "staff@example.org", role, ["PD"])
    sign_in(client, db, "staff@example.org")
    assert client.get("/admin/escalations").status_code == 403


def test_a_member_row_deleted_takes_its_questions_and_appeal_with_it(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    decide(app, db, member_id, approve=False)
    worker = _worker(app, sms)
    page = worker.get("/status/me", headers=EN)
    worker.post("/status/appeal", data={**hidden_fields(page.text), "text": "申诉"}, headers=EN)
    page = worker.get("/status/me", headers=EN)
    withdrawn = worker.post("/status/withdraw", data={**hidden_fields(page.text), "confirm": "y"}, headers=EN)
    assert withdrawn.status_code == 303
    db.expire_all()
    assert db.exec(select(Member)).all() == [] and db.exec(select(Appeal)).all() == []


def test_the_district_official_sees_the_appeal_but_cannot_decide_it(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    decide(app, db, member_id, approve=False)
    worker = _worker(app, sms)
    page = worker.get("/status/me", headers=EN)
    worker.post("/status/appeal", data={**hidden_fields(page.text), "text": "请复核"}, headers=EN)
    _official(client, db)
    member_page = client.get(f"/roster/{member_id}", headers=EN)
    assert "Under appeal: the federation decides" in member_page.text and "请复核" in member_page.text
    assert f"/roster/{member_id}/approve" not in member_page.text
    tried = _post(client, "/roster/", f"/roster/{member_id}/approve")
    assert tried.status_code == 409 and only_member(db).status is MemberStatus.pending


def test_the_api_answers_409_for_an_appeal_on_the_queue(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    decide(app, db, member_id, approve=False)
    worker = _worker(app, sms)
    page = worker.get("/status/me", headers=EN)
    worker.post("/status/appeal", data={**hidden_fields(page.text), "text": "请复核"}, headers=EN)
    make_staff(db, "api@example.org", Role.official, ["PD"])
    from app.services import api_tokens

    _, token = api_tokens.issue(db, db.exec(select(User).where(User.email == "api@example.org")).one(), now=utcnow())
    db.commit()
    answer = client.post(f"/api/v1/members/{member_id}/approve", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 409
    body = answer.get_json()
    assert body["error"] == "already_decided" and body["status"] == "rejected" and body["decided_by"] == "o@example.org"
