"""The roster service: scoping, filters, keyset pages, exactly-once decisions, member numbers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app.models import AuditEvent, District, Member, MemberStatus, PlaceKind, Platform, Role, User, utcnow
from app.services import audit, names, roster
from app.services.phones import last4
from tests import factories


def make_member(
    db: Session,
    pii,
    district: District,
    n: int,
    *,
    name: str = "王小明",
    workplace=None,  # type: ignore[no-untyped-def]
    platform: Platform = Platform.meituan,
    status: MemberStatus = MemberStatus.pending,
    age_days: float = 0,
) -> Member:
    phone = factories.phone(n)
    at = utcnow() - timedelta(days=age_days)
    member = Member(
        district_id=district.id,
        workplace_id=workplace.id if workplace else None,
        name_enc=pii.encrypt(name),
        phone_enc=pii.encrypt(phone),
        phone_index=pii.index(phone),
        phone_last4_index=pii.index(last4(phone), purpose="last4"),
        name_index=names.index(pii, name),
        platform=platform,
        status=status,
        consent_version="test",
        consent_at=at,
        source_kind=PlaceKind.district,
        source_qr_version=1,
        created_at=at,
        verified_at=at,
    )
    db.add(member)
    db.flush()
    return member


def make_user(db: Session, email: str = "official@example.org", role: Role = Role.official) -> User:
    user = User(email=email, password_hash="x", role=role)
    db.add(user)
    db.flush()
    return user


@pytest.fixture
def pii(app):  # type: ignore[no-untyped-def]
    return app.extensions["pii"]


@pytest.fixture
def places(db):  # type: ignore[no-untyped-def]
    pd = factories.district(db, "PD", "浦东")
    xh = factories.district(db, "XH", "徐汇")
    station = factories.workplace(db, pd, "PD-ZJ01", "张江站")
    db.commit()
    return pd, xh, station


def test_scope_is_in_the_query(db, pii, places):
    pd, xh, _ = places
    mine = make_member(db, pii, pd, 1)
    theirs = make_member(db, pii, xh, 2)
    page = roster.list_members(db, pii, [pd.id], roster.RosterFilter(), cursor=None, limit=50)
    assert [v.id for v in page.items] == [mine.id]
    assert roster.get_member(db, pii, [pd.id], mine.id).phone == factories.phone(1)
    with pytest.raises(roster.MemberNotFound):
        roster.get_member(db, pii, [pd.id], theirs.id)
    assert {v.id for v in roster.list_members(db, pii, None, roster.RosterFilter(), cursor=None, limit=50).items} == {
        mine.id,
        theirs.id,
    }
    assert roster.list_members(db, pii, [], roster.RosterFilter(), cursor=None, limit=50).items == []


def test_filters_by_status_platform_workplace_name_and_last_four(db, pii, places):
    pd, _, station = places
    a = make_member(db, pii, pd, 1, name="李雷", workplace=station)
    b = make_member(db, pii, pd, 2, name="韩梅梅", platform=Platform.eleme, status=MemberStatus.approved)

    def ids(**kw) -> list[int]:  # type: ignore[no-untyped-def]
        page = roster.list_members(db, pii, None, roster.RosterFilter(**kw), cursor=None, limit=50)
        return [v.id for v in page.items]

    assert ids(status=MemberStatus.approved) == [b.id]
    assert ids(platform=Platform.meituan) == [a.id]
    assert ids(workplace="PD-ZJ01") == [a.id]
    assert ids(q="韩梅梅") == [b.id]
    assert ids(q=" 韩 梅梅 ") == [b.id]  # spaces are not part of a name
    assert ids(q="梅梅") == ids(q="韩") == []  # the whole name or nothing: no partial index (docs/security.md)
    assert ids(q=factories.phone(1)[-4:]) == [a.id]
    assert ids(q=factories.phone(2)) == [b.id]
    assert ids(q="nobody") == []
    by_name = roster.counts(db, None, roster.RosterFilter(q="李雷"), pii=pii)
    assert by_name == {"pending": 1, "approved": 0, "rejected": 0}
    assert roster.counts(db, None, roster.RosterFilter()) == {"pending": 1, "approved": 1, "rejected": 0}
    assert roster.counts(db, None, roster.RosterFilter(workplace=station.code)) == {
        "pending": 1,
        "approved": 0,
        "rejected": 0,
    }
    assert roster.counts(db, None, roster.RosterFilter(district="PD")) == {"pending": 1, "approved": 1, "rejected": 0}
    assert roster.counts(db, None, roster.RosterFilter(district="XH")) == {"pending": 0, "approved": 0, "rejected": 0}


def test_age_overdue_and_recent(db, pii, places):
    pd, _, _ = places
    old = make_member(db, pii, pd, 1, age_days=40)  # past 15 working days whatever the holidays
    new = make_member(db, pii, pd, 2, age_days=1)
    views = {v.id: v for v in roster.list_members(db, pii, None, roster.RosterFilter(), cursor=None, limit=50).items}
    assert views[old.id].overdue and views[old.id].age_days == 40
    assert not views[new.id].overdue
    overdue = roster.list_members(db, pii, None, roster.RosterFilter(overdue=True), cursor=None, limit=50)
    assert [v.id for v in overdue.items] == [old.id]
    recent = roster.list_members(db, pii, None, roster.RosterFilter(recent_days=7), cursor=None, limit=50)
    assert [v.id for v in recent.items] == [new.id]
    lenient = roster.RosterFilter(overdue_days=60)  # working days
    assert not any(v.overdue for v in roster.list_members(db, pii, None, lenient, cursor=None, limit=50).items)


def test_the_overdue_flag_filter_and_count_agree_across_national_day(db, pii, places):
    """21 calendar days over the 2026 National Day holiday are fewer than 15 working days."""
    pd, _, _ = places
    now = datetime(2026, 10, 20, 4, tzinfo=UTC)
    holiday = make_member(db, pii, pd, 1)
    holiday.created_at = datetime(2026, 9, 29, 2, tzinfo=UTC)  # 21 calendar days before
    late = make_member(db, pii, pd, 2)
    late.created_at = datetime(2026, 9, 14, 2, tzinfo=UTC)
    db.flush()
    views = roster.list_members(db, pii, None, roster.RosterFilter(), cursor=None, limit=50, now=now).items
    flagged = {v.id for v in views if v.overdue}
    filtered = roster.list_members(db, pii, None, roster.RosterFilter(overdue=True), cursor=None, limit=50, now=now)
    assert flagged == {v.id for v in filtered.items} == {late.id}
    assert roster.overdue_count(db, None, now=now, overdue_days=15) == 1


@pytest.mark.parametrize("sort", ["applied", "decided"])
@pytest.mark.parametrize("q", [None, "王小明"])
def test_keyset_pages_cover_every_row_once(db, pii, places, sort, q):
    pd, _, _ = places
    user = make_user(db)
    made = [make_member(db, pii, pd, n, age_days=n % 3) for n in range(1, 12)]
    for member in made[:5]:
        roster.approve(db, None, member.id, by=user, now=utcnow() - timedelta(hours=member.id % 2))
    seen, cursor = [], None
    for _ in range(20):
        page = roster.list_members(db, pii, None, roster.RosterFilter(sort=sort, q=q), cursor=cursor, limit=3)
        seen += [v.id for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(m.id for m in made) and len(seen) == len(set(seen))
    if sort == "decided":
        assert set(seen[:5]) == {m.id for m in made[:5]}, "decided rows first, undecided last"


@pytest.mark.parametrize("sort", ["applied", "decided"])
def test_a_scope_of_several_districts_merges_their_pages_in_order(db, pii, places, sort):
    pd, xh, _ = places
    other = factories.district(db, "JA", "静安")
    user = make_user(db)
    made = [make_member(db, pii, (pd, xh, other)[n % 3], n, age_days=(n * 7) % 11 + n / 100) for n in range(1, 16)]
    for member in made[::2]:
        roster.approve(db, None, member.id, by=user, now=utcnow() - timedelta(hours=member.id % 4))
    everything = roster.RosterFilter(sort=sort)
    rows = db.exec(select(Member).where(Member.district_id.in_([pd.id, xh.id]))).all()  # type: ignore[attr-defined]
    if sort == "decided":  # decided rows newest decision first, then undecided ones newest first
        rows.sort(key=lambda m: (m.decided_at is None, -m.decided_at.timestamp() if m.decided_at else 0, -m.id))
    else:
        rows.sort(key=lambda m: (-m.created_at.timestamp(), -m.id))
    expected = [m.id for m in rows]
    seen, cursor = [], None
    for _ in range(20):
        page = roster.list_members(db, pii, [pd.id, xh.id], everything, cursor=cursor, limit=3)
        seen += [v.id for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected and len(expected) == 10, "every row of the two districts once, in sort order"


def test_bad_cursor(db, pii, places):
    for cursor in ["garbage", "W10", roster.encode_cursor("decided", [True, None, 3])]:
        with pytest.raises(roster.BadCursor):
            roster.list_members(db, pii, None, roster.RosterFilter(), cursor=cursor, limit=5)


def test_filter_from_args_rejects_bad_values():
    flt = roster.filter_from_args({"status": "pending", "q": " 1234 ", "recent": "7", "sort": "decided"})
    assert flt.status is MemberStatus.pending and flt.q == "1234" and flt.recent_days == 7
    assert flt.describe() == {"status": "pending", "q": "last4", "recent_days": 7, "sort": "decided"}
    for bad in [{"status": "x"}, {"sort": "name"}, {"since": "yesterday"}, {"recent": "-1"}, {"platform": "uber"}]:
        with pytest.raises(roster.BadFilter):
            roster.filter_from_args(bad)


def test_approve_assigns_numbers_in_sequence_and_audits(db, pii, places):
    pd, xh, _ = places
    user = make_user(db)
    a, b, c = (make_member(db, pii, pd, 1), make_member(db, pii, pd, 2), make_member(db, pii, xh, 3))
    assert roster.approve(db, None, a.id, by=user, now=utcnow()).member_number == "PD-000001"
    assert roster.approve(db, None, c.id, by=user, now=utcnow()).member_number == "XH-000001"
    approved = roster.approve(db, None, b.id, by=user, now=utcnow())
    assert approved.member_number == "PD-000002" and approved.status is MemberStatus.approved
    assert approved.decided_by_id == user.id
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "member.approve")).all()
    assert sorted(e.target_id for e in events) == sorted(str(m.id) for m in (a, b, c))
    assert all(e.actor_id == user.id and "name" not in e.details for e in events)


def test_second_decision_loses_and_learns_who_won(db, pii, places):
    pd, _, _ = places
    first, second = make_user(db, "a@example.org"), make_user(db, "b@example.org")
    member = make_member(db, pii, pd, 1)
    roster.approve(db, None, member.id, by=first, now=utcnow())
    with pytest.raises(roster.AlreadyDecided) as lost:
        roster.reject(db, None, member.id, by=second, reason="dup", now=utcnow())
    assert lost.value.by_email == "a@example.org" and lost.value.at is not None
    with pytest.raises(roster.AlreadyDecided):
        roster.approve(db, None, member.id, by=second, now=utcnow())
    assert db.get(District, pd.id).member_seq == 1, "a lost race uses no number"


def test_out_of_scope_decision_is_not_found(db, pii, places):
    pd, xh, _ = places
    user = make_user(db)
    member = make_member(db, pii, xh, 1)
    with pytest.raises(roster.MemberNotFound):
        roster.approve(db, [pd.id], member.id, by=user, now=utcnow())
    db.refresh(member)
    assert member.status is MemberStatus.pending


def test_reject_needs_a_reason(db, pii, places):
    pd, _, _ = places
    user = make_user(db)
    member = make_member(db, pii, pd, 1)
    with pytest.raises(roster.ReasonRequired):
        roster.reject(db, None, member.id, by=user, reason="  ", now=utcnow())
    rejected = roster.reject(db, None, member.id, by=user, reason="不在本区", now=utcnow())
    assert rejected.status is MemberStatus.rejected and rejected.reject_reason == "不在本区"


def test_crash_between_update_and_audit_leaves_nothing(app, db, pii, places, monkeypatch):
    pd, _, _ = places
    user = make_user(db)
    member = make_member(db, pii, pd, 1)
    db.commit()

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("crash")

    monkeypatch.setattr(audit, "record", boom)
    with pytest.raises(RuntimeError):
        roster.approve(db, None, member.id, by=user, now=utcnow())
    db.rollback()
    db.expire_all()
    assert db.get(Member, member.id).status is MemberStatus.pending
    assert db.get(District, pd.id).member_seq == 0
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "member.approve")).all() == []


def test_bulk_reports_each_row(db, pii, places):
    pd, xh, _ = places
    first, second = make_user(db, "a@example.org"), make_user(db, "b@example.org")
    a, b, c = make_member(db, pii, pd, 1), make_member(db, pii, pd, 2), make_member(db, pii, xh, 3)
    roster.approve(db, None, b.id, by=first, now=utcnow())
    results = roster.decide_many(db, [pd.id], [a.id, b.id, c.id, 999], by=second, approve_all=True, now=utcnow())
    assert [r.outcome for r in results] == ["approved", "already_decided", "not_found", "not_found"]
    assert results[1].by_email == "a@example.org"
    assert results[0].member.member_number == "PD-000002"


def test_two_officials_at_once_decide_exactly_once(app, pii, places):
    pd, _, _ = places
    engine = app.extensions["db_engine"].execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as setup:
        users = [make_user(setup, f"u{i}@example.org") for i in range(2)]
        member_id = make_member(setup, pii, pd, 1).id
        setup.commit()
    barrier, outcomes = threading.Barrier(2), []

    def click(user: User) -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                roster.approve(session, None, member_id, by=user, now=utcnow())
                session.commit()
                outcomes.append("won")
            except roster.AlreadyDecided:
                session.rollback()
                outcomes.append("lost")

    threads = [threading.Thread(target=click, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost", "won"]
    with Session(engine) as check:
        events = check.exec(select(AuditEvent).where(AuditEvent.action == "member.approve")).all()
        assert len(events) == 1
        assert check.get(District, pd.id).member_seq == 1


def test_changes_since_sees_decisions_in_scope_only(db, pii, places):
    pd, xh, _ = places
    user = make_user(db)
    a, b = make_member(db, pii, pd, 1), make_member(db, pii, xh, 2)
    marker = roster.current_marker(db)
    assert not roster.changes_since(db, [pd.id], marker).changed
    roster.approve(db, None, b.id, by=user, now=utcnow())
    later = roster.changes_since(db, [pd.id], marker)
    assert not later.changed and later.marker != marker
    roster.approve(db, None, a.id, by=user, now=utcnow())
    assert roster.changes_since(db, [pd.id], later.marker).member_ids == [a.id]


def test_failed_notices_names_the_rows_whose_latest_decisions_notice_failed(db, app):
    from types import SimpleNamespace

    from app.services import tasks

    now = utcnow()
    for member_id, at in ((1, now), (2, now - timedelta(days=2))):  # audit rows are append-only: `at` set once
        failed = {"reason": "rejected"}
        db.add(
            AuditEvent(
                at=at, action=tasks.NOTICE_FAILED, target_type="member", target_id=str(member_id), details=failed
            )
        )
    audit.record(db, "member.approve", target_type="member", target_id=3)
    db.flush()
    rows = [
        SimpleNamespace(id=1, decided_at=now - timedelta(minutes=1)),  # its notice failed after it: flagged
        SimpleNamespace(id=2, decided_at=now - timedelta(days=1)),  # failed for an earlier decision
        SimpleNamespace(id=3, decided_at=now),  # another event, not a failed notice
        SimpleNamespace(id=4, decided_at=None),  # pending
    ]
    assert roster.failed_notices(db, rows) == {1}
    assert roster.failed_notices(db, []) == set()
