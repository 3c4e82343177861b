"""After applying (issue 14, item 3): questions, one appeal, the escalation queue, daily reminders.

Run on both databases (TEST_DATABASE=postgres for the PostgreSQL twin). Deadlines cross the
National Day holiday of 2026 (Oct 1-7 off, Sun Sep 20 and Sat Oct 10 worked).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app.models import Appeal, AuditEvent, EscalationReturn, Member, MemberQuestion, MemberStatus, Role, User
from app.services import decisions, lifecycle, roster
from tests import factories
from tests.conftest import make_staff
from tests.services.test_roster import make_member

DAYS = 15
APPLIED = datetime(2026, 9, 21, 2, 0, tzinfo=UTC)  # Mon Sep 21, 10:00 Beijing: due Mon Oct 19
DUE_DAY_END = datetime(2026, 10, 19, 15, 59, tzinfo=UTC)  # 23:59 Oct 19 Beijing
NEXT_MORNING = datetime(2026, 10, 19, 16, 1, tzinfo=UTC)  # 00:01 Oct 20 Beijing


@pytest.fixture
def pii(app):  # type: ignore[no-untyped-def]
    return app.extensions["pii"]


@pytest.fixture
def world(db, pii):  # type: ignore[no-untyped-def]
    """Two districts, an official of PD, an admin, and a pending PD applicant of Sep 21."""
    pd = factories.district(db)
    xh = factories.district(db, code="XH", name="徐汇区总工会")
    db.commit()
    official = make_staff(db, "o@example.org", Role.official, ["PD"])
    admin = make_staff(db, "a@example.org", Role.admin)
    member = make_member(db, pii, pd, 1)
    member.created_at = APPLIED
    db.add(member)
    db.commit()
    return {"pd": pd, "xh": xh, "official": official, "admin": admin, "member": member}


def _ask(db, pii, world, text: str = "请上传站点证明", now: datetime = APPLIED):  # type: ignore[no-untyped-def]
    question = lifecycle.ask(
        db, [world["pd"].id], world["member"].id, by=world["official"], question=text, pii=pii, now=now
    )
    db.commit()
    return question


def _reject(db, world, now: datetime = APPLIED) -> Member:  # type: ignore[no-untyped-def]
    member = decisions.decide_one(
        db, [world["pd"].id], world["member"].id, by=world["official"], approve=False, reason="材料不全", now=now
    )
    db.commit()
    return member


# --- needs more information ---------------------------------------------------------------------


def test_a_question_is_stored_encrypted_and_texts_the_neutral_status_link(app, db, pii, sms, world):
    _ask(db, pii, world)
    row = db.exec(select(MemberQuestion)).one()
    assert "站点证明" not in row.question_enc and pii.decrypt(row.question_enc) == "请上传站点证明"
    assert len(sms.sent) == 1 and sms.sent[0].to == factories.phone(1)
    assert "站点证明" not in sms.sent[0].body and "/status/" in sms.sent[0].body
    audit_row = db.exec(select(AuditEvent).where(AuditEvent.action == "member.ask")).one()
    assert "站点" not in str(audit_row.details)


def test_one_open_question_at_a_time_and_only_of_pending_applications_in_scope(db, pii, world):
    _ask(db, pii, world)
    with pytest.raises(lifecycle.QuestionOpen):
        _ask(db, pii, world, "再问一次")
    db.rollback()
    with pytest.raises(roster.MemberNotFound):
        lifecycle.ask(
            db, [world["xh"].id], world["member"].id, by=world["official"], question="?", pii=pii, now=APPLIED
        )
    db.rollback()
    for bad in ("", "   ", "问" * 501):
        with pytest.raises(lifecycle.TextInvalid):
            _ask(db, pii, world, bad)
        db.rollback()


def test_the_answer_returns_the_application_to_the_district(db, pii, world):
    _ask(db, pii, world)
    member = db.get(Member, world["member"].id)
    lifecycle.answer(db, member, text="已上传，见站长签字", pii=pii, now=APPLIED + timedelta(hours=2))
    db.commit()
    [view] = lifecycle.questions(db, member.id, pii)
    assert view.answer == "已上传，见站长签字" and view.answered_at is not None
    assert lifecycle.open_question(db, member.id) is None
    assert db.get(Member, member.id).status is MemberStatus.pending
    with pytest.raises(lifecycle.NoOpenQuestion):  # a second answer (another tab) changes nothing
        lifecycle.answer(db, member, text="again", pii=pii, now=APPLIED)


def test_a_decided_application_takes_no_question(db, pii, world):
    _reject(db, world)
    with pytest.raises(lifecycle.NotPending):
        _ask(db, pii, world)


# --- one appeal -------------------------------------------------------------------------------------


def test_a_rejected_applicant_appeals_once_and_lands_on_the_queue(db, pii, world):
    member = _reject(db, world)
    assert lifecycle.can_appeal(db, member)
    lifecycle.appeal(db, member, text="我有站点证明", pii=pii, now=APPLIED + timedelta(days=1))
    db.commit()
    member = db.get(Member, member.id)
    assert member.status is MemberStatus.pending and member.decided_at is None
    row = db.exec(select(Appeal)).one()
    assert pii.decrypt(row.text_enc) == "我有站点证明" and row.rejected_by_id == world["official"].id
    [item] = lifecycle.escalations(db, now=APPLIED + timedelta(days=1), days=DAYS)
    assert item.kind == lifecycle.APPEAL and item.member_id == member.id and item.reason == "材料不全"


def test_the_appeal_decided_by_an_admin_is_final(db, pii, world):
    member = _reject(db, world)
    lifecycle.appeal(db, member, text="请复核", pii=pii, now=APPLIED)
    db.commit()
    decisions.decide_one(db, None, member.id, by=world["admin"], approve=False, reason="复核维持", now=APPLIED)
    db.commit()
    member = db.get(Member, member.id)
    assert member.status is MemberStatus.rejected and db.exec(select(Appeal)).one().closed_at is not None
    assert not lifecycle.can_appeal(db, member)
    with pytest.raises(lifecycle.AppealRefused):
        lifecycle.appeal(db, member, text="再次申诉", pii=pii, now=APPLIED)
    assert lifecycle.escalations(db, now=APPLIED, days=DAYS) == []


def test_an_appeal_approved_gives_a_member_number(db, pii, world):
    member = _reject(db, world)
    lifecycle.appeal(db, member, text="请复核", pii=pii, now=APPLIED)
    db.commit()
    approved = decisions.decide_one(db, None, member.id, by=world["admin"], approve=True, now=APPLIED)
    db.commit()
    assert approved.status is MemberStatus.approved and approved.member_number == "PD-000001"


def test_only_a_rejected_application_can_be_appealed(db, pii, world):
    with pytest.raises(lifecycle.AppealRefused):
        lifecycle.appeal(db, world["member"], text="?", pii=pii, now=APPLIED)


# --- escalation across National Day --------------------------------------------------------------


def test_escalated_only_after_the_deadline_across_national_day(db, world):
    assert lifecycle.escalations(db, now=DUE_DAY_END, days=DAYS) == []  # due on Oct 19: still in time
    [item] = lifecycle.escalations(db, now=NEXT_MORNING, days=DAYS)
    assert item.kind == lifecycle.OVERDUE and item.due == date(2026, 10, 19)


def test_an_application_waiting_for_the_applicant_is_not_escalated(db, pii, world):
    _ask(db, pii, world)
    assert lifecycle.escalations(db, now=NEXT_MORNING, days=DAYS) == []


def test_sent_back_with_a_note_the_deadline_counts_again(db, pii, world):
    lifecycle.send_back(
        db, world["member"].id, by=world["admin"], note="请本周内处理", pii=pii, now=NEXT_MORNING, days=DAYS
    )
    db.commit()
    row = db.exec(select(EscalationReturn)).one()
    assert pii.decrypt(row.note_enc) == "请本周内处理"
    assert [n.note for n in lifecycle.notes(db, world["member"].id, pii)] == ["请本周内处理"]
    assert lifecycle.escalations(db, now=NEXT_MORNING + timedelta(days=7), days=DAYS) == []
    # 15 working days after Tue Oct 20 is Tue Nov 10: escalated again from Nov 11 (Beijing).
    assert lifecycle.escalations(db, now=datetime(2026, 11, 10, 15, 0, tzinfo=UTC), days=DAYS) == []
    assert len(lifecycle.escalations(db, now=datetime(2026, 11, 10, 16, 1, tzinfo=UTC), days=DAYS)) == 1


def test_only_an_escalated_application_can_be_sent_back(db, pii, world):
    with pytest.raises(lifecycle.NotPending):
        lifecycle.send_back(db, world["member"].id, by=world["admin"], note="x", pii=pii, now=APPLIED, days=DAYS)


def test_the_admin_decides_an_overdue_application_from_the_queue(db, pii, sms, world):
    decisions.decide_one(db, None, world["member"].id, by=world["admin"], approve=True, now=NEXT_MORNING)
    db.commit()
    assert lifecycle.escalations(db, now=NEXT_MORNING, days=DAYS) == []
    assert len(sms.sent) == 1  # the neutral decision notice


# --- daily reminders -------------------------------------------------------------------------------


def test_reminders_count_due_overdue_and_waiting_per_district(db, pii, world):
    late = make_member(db, pii, world["pd"], 2)
    late.created_at = APPLIED - timedelta(days=10)
    asked = make_member(db, pii, world["xh"], 3)
    db.add(late)
    db.commit()
    lifecycle.ask(db, None, asked.id, by=world["admin"], question="?", pii=pii, now=APPLIED)
    db.commit()
    # Fri Oct 16 (Beijing): the Sep 21 application is due Mon Oct 19, the next working day.
    now = datetime(2026, 10, 16, 1, 0, tzinfo=UTC)
    found = {r.district_code: r for r in lifecycle.reminders(db, now=now, days=DAYS)}
    assert found["PD"].counts() == {"due": 1, "overdue": 1, "waiting": 0}
    assert found["PD"].official_ids == [world["official"].id]
    assert found["XH"].counts() == {"due": 0, "overdue": 0, "waiting": 1} and found["XH"].official_ids == []


def test_reminders_go_once_a_day_with_counts_only(db, pii, world):
    delivered: list[tuple[int, dict[str, int]]] = []
    now = datetime(2026, 10, 16, 1, 0, tzinfo=UTC)

    def deliver(user_id: int, reminder: lifecycle.Reminder) -> None:
        delivered.append((user_id, reminder.counts()))

    assert len(lifecycle.send_reminders(db, now=now, days=DAYS, deliver=deliver)) == 1
    db.commit()
    assert lifecycle.send_reminders(db, now=now + timedelta(hours=3), days=DAYS, deliver=deliver) == []
    assert delivered == [(world["official"].id, {"due": 1, "overdue": 0, "waiting": 0})]
    row = db.exec(select(AuditEvent).where(AuditEvent.action == lifecycle.REMINDER_SENT)).one()
    assert row.target_id == str(world["pd"].id) and row.details == {
        "day": "2026-10-16",
        "officials": 1,
        "due": 1,
        "overdue": 0,
        "waiting": 0,
    }
    assert len(lifecycle.send_reminders(db, now=now + timedelta(days=1), days=DAYS, deliver=deliver)) == 1


def test_no_reminder_when_nothing_is_due(db, world):
    assert lifecycle.reminders(db, now=APPLIED + timedelta(days=1), days=DAYS) == []


def test_inactive_officials_are_not_reminded(db, world):
    user = db.get(User, world["official"].id)
    user.active = False
    db.add(user)
    db.commit()
    [reminder] = lifecycle.reminders(db, now=NEXT_MORNING, days=DAYS)
    assert reminder.official_ids == []


def test_an_appeal_on_the_queue_is_decided_by_an_admin_only(db, pii, world):
    member = _reject(db, world)
    lifecycle.appeal(db, member, text="请复核", pii=pii, now=APPLIED)
    db.commit()
    scope = [world["pd"].id]
    with pytest.raises(roster.AlreadyDecided):
        decisions.decide_one(db, scope, member.id, by=world["official"], approve=True, now=APPLIED)
    [row] = decisions.decide(db, scope, [member.id], by=world["official"], approve=True, now=APPLIED)
    assert row.outcome == "already_decided" and row.member is None
    db.rollback()
    assert db.get(Member, member.id).status is MemberStatus.pending
    # an official of another district learns nothing: the row is not found, as any other
    [other] = decisions.decide(db, [world["xh"].id], [member.id], by=world["official"], approve=True, now=APPLIED)
    assert other.outcome == "not_found"
    db.rollback()
    # sent back by the federation, the district decides the appeal itself
    lifecycle.send_back(db, member.id, by=world["admin"], note="请区里复核", pii=pii, now=APPLIED, days=DAYS)
    decided = decisions.decide_one(db, scope, member.id, by=world["official"], approve=True, now=APPLIED)
    db.commit()
    assert decided.status is MemberStatus.approved and db.exec(select(Appeal)).one().closed_at is not None


def test_a_bulk_decision_leaves_the_appeal_and_decides_the_rest(db, pii, world):
    member = _reject(db, world)
    lifecycle.appeal(db, member, text="请复核", pii=pii, now=APPLIED)
    other = make_member(db, pii, world["pd"], 2)
    db.commit()
    results = decisions.decide(
        db, [world["pd"].id], [other.id, member.id], by=world["official"], approve=True, now=APPLIED
    )
    db.commit()
    assert [(r.member_id, r.outcome) for r in results] == [(other.id, "approved"), (member.id, "already_decided")]


# --- at the same moment --------------------------------------------------------------------------


def _at_once(app, work) -> list[str]:  # type: ignore[no-untyped-def]
    """Run `work(session)` in two threads, each in a writing session of its own, released together."""
    from app.db import writing

    barrier, outcomes = threading.Barrier(2), []

    def run() -> None:
        with Session(writing(app.extensions["db_engine"]), expire_on_commit=False) as own:
            barrier.wait()
            try:
                work(own)
                own.commit()
                outcomes.append("done")
            except Exception as exc:  # noqa: BLE001 - the refusal is the outcome under test
                own.rollback()
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def test_two_appeals_at_once_make_one(app, db, pii, world):
    member_id = _reject(db, world).id

    def work(own) -> None:  # type: ignore[no-untyped-def]
        member = own.get(Member, member_id)
        lifecycle.appeal(own, member, text="请复核", pii=pii, now=APPLIED)

    assert _at_once(app, work) == ["AppealRefused", "done"]
    assert len(db.exec(select(Appeal)).all()) == 1


def test_two_officials_asking_at_once_leave_one_open_question(app, db, pii, world):
    def work(own) -> None:  # type: ignore[no-untyped-def]
        official = own.get(User, world["official"].id)
        lifecycle.ask(own, [world["pd"].id], world["member"].id, by=official, question="?", pii=pii, now=APPLIED)

    assert _at_once(app, work) == ["QuestionOpen", "done"]
    assert len(db.exec(select(MemberQuestion)).all()) == 1


def test_a_decision_closes_a_question_left_unanswered(db, pii, world):
    _ask(db, pii, world)
    _reject(db, world)
    assert lifecycle.open_question(db, world["member"].id) is None
    [view] = lifecycle.questions(db, world["member"].id, pii)
    assert view.answer is None and view.answered_at is not None
