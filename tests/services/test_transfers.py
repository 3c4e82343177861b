"""Transfer rules: scope, one pending per member, decided exactly once (also under real concurrency)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from app.models import AuditEvent, District, Member, MemberStatus, Transfer, TransferStatus, User, utcnow
from app.services import events, roster, transfers
from tests.services.test_roster import make_member, make_user, pii, places  # noqa: F401  (fixtures)


def approved_member(db, pii, district, n: int = 1) -> Member:  # type: ignore[no-untyped-def]  # noqa: F811
    member = make_member(db, pii, district, n)
    roster.approve(db, None, member.id, by=make_user(db, f"approver{n}@example.org"), now=utcnow())
    return member


def test_request_is_scoped_to_the_members_district_and_needs_an_approved_member(db, pii, places):  # noqa: F811
    pd, xh, _ = places
    official = make_user(db)
    pending = make_member(db, pii, pd, 1)
    with pytest.raises(transfers.NotTransferable):
        transfers.request_by_official(db, [pd.id], pending.id, to_district="XH", reason=None, by=official, now=utcnow())
    member = approved_member(db, pii, pd, 2)
    with pytest.raises(transfers.TransferNotFound):
        transfers.request_by_official(db, [xh.id], member.id, to_district="XH", reason=None, by=official, now=utcnow())
    with pytest.raises(transfers.NotTransferable):
        transfers.request_by_official(db, [pd.id], member.id, to_district="PD", reason=None, by=official, now=utcnow())
    with pytest.raises(transfers.BadTarget):
        transfers.request_by_official(db, [pd.id], member.id, to_district="ZZ", reason=None, by=official, now=utcnow())
    with pytest.raises(transfers.BadTarget):  # a station of the sending district
        transfers.request_by_official(
            db, [pd.id], member.id, to_district="XH", reason=None, by=official, now=utcnow(), to_workplace="PD-ZJ01"
        )
    with pytest.raises(transfers.BadReason):
        transfers.request_by_official(
            db, [pd.id], member.id, to_district="XH", reason="x" * 501, by=official, now=utcnow()
        )
    first = transfers.request_by_official(
        db, [pd.id], member.id, to_district="XH", reason=" ", by=official, now=utcnow()
    )
    assert first.reason is None and first.status is TransferStatus.pending and first.from_member_number == "PD-000001"
    with pytest.raises(transfers.AlreadyPending) as exc:
        transfers.request_by_official(db, [pd.id], member.id, to_district="XH", reason=None, by=official, now=utcnow())
    assert exc.value.transfer.id == first.id


def test_approval_moves_the_member_and_a_rejection_does_not(db, pii, places):  # noqa: F811
    pd, xh, _ = places
    official = make_user(db)
    member = approved_member(db, pii, pd)
    joined, decided = member.created_at, member.decided_at
    asked = transfers.request_by_official(db, None, member.id, to_district="XH", reason=None, by=official, now=utcnow())
    with pytest.raises(transfers.TransferNotFound):
        transfers.approve(db, [pd.id], asked.id, by=official, now=utcnow())
    rejected = transfers.reject(db, [xh.id], asked.id, by=official, reason="不在本区", now=utcnow())
    assert rejected.status is TransferStatus.rejected and rejected.open_member_id is None
    with pytest.raises(transfers.AlreadyDecided) as exc:
        transfers.approve(db, [xh.id], asked.id, by=official, now=utcnow())
    assert exc.value.status == "rejected" and exc.value.by_email == "official@example.org"
    again = transfers.request_by_official(db, None, member.id, to_district="XH", reason=None, by=official, now=utcnow())
    done = transfers.approve(db, [xh.id], again.id, by=official, now=utcnow())
    moved = db.exec(select(Member).where(Member.id == member.id).execution_options(populate_existing=True)).one()
    assert (moved.district_id, moved.member_number, moved.workplace_id) == (xh.id, "XH-000001", None)
    assert (moved.created_at, moved.decided_at, moved.status) == (joined, decided, MemberStatus.approved)
    assert (done.from_member_number, done.to_member_number) == ("PD-000001", "XH-000001")
    stays = transfers.history(moved, "XH", transfers.of_member(db, member.id))
    assert [(s.district, s.member_number) for s in stays] == [("PD", "PD-000001"), ("XH", "XH-000001")]
    assert stays[0].until == stays[1].since == done.decided_at
    assert transfers.counts_by_district(db, [pd.id, xh.id], joined) == {pd.id: (1, 0), xh.id: (0, 1)}


def test_a_member_withdrawn_meanwhile_is_not_moved(db, pii, places):  # noqa: F811
    pd, xh, _ = places
    official = make_user(db)
    member = approved_member(db, pii, pd)
    asked = transfers.request_by_official(db, None, member.id, to_district="XH", reason=None, by=official, now=utcnow())
    member.status = MemberStatus.rejected  # an appeal overturned the approval meanwhile
    db.add(member)
    db.flush()
    with pytest.raises(transfers.MemberMoved):
        transfers.approve(db, None, asked.id, by=official, now=utcnow())


def test_the_worker_hears_of_a_move_and_of_a_refusal_of_their_own_request():
    moved = events.TransferDecided(1, 1, 1, 2, approved=True, started_by="official")
    refused_official = events.TransferDecided(1, 1, 1, 2, approved=False, started_by="official")
    refused_worker = events.TransferDecided(1, 1, 1, 2, approved=False, started_by="worker")
    assert [transfers.tells_worker(e) for e in (moved, refused_official, refused_worker)] == [True, False, True]


def race(engine, workers: list[Callable[[Session], object]]) -> list[str]:  # type: ignore[no-untyped-def]
    """Run each callable in its own thread and session at the same moment; "won" or the error's name."""
    barrier, outcomes = threading.Barrier(len(workers)), []

    def run(work: Callable[[Session], object]) -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                work(session)
                session.commit()
                outcomes.append("won")
            except transfers.TransferError as exc:
                session.rollback()
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def test_two_officials_approving_at_once_decide_exactly_once(app, pii, places):  # noqa: F811
    pd, xh, _ = places
    engine = app.extensions["db_engine"].execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as setup:
        officials = [make_user(setup, f"xh{i}@example.org") for i in range(2)]
        member = approved_member(setup, pii, pd)
        asked = transfers.request_by_official(setup, None, member.id, to_district="XH", reason=None,
                                              by=officials[0], now=utcnow())  # fmt: skip
        setup.commit()

    def approve(user: User) -> Callable[[Session], object]:
        return lambda session: transfers.approve(session, [xh.id], asked.id or 0, by=user, now=utcnow())

    assert race(engine, [approve(u) for u in officials]) == ["AlreadyDecided", "won"]
    with Session(engine) as check:
        assert len(check.exec(select(AuditEvent).where(AuditEvent.action == "transfer.approve")).all()) == 1
        assert check.get(District, xh.id).member_seq == 1, "one number drawn"
        assert check.get(Member, member.id).member_number == "XH-000001"


def test_two_requests_at_once_leave_one_pending(app, pii, places):  # noqa: F811
    pd, _, _ = places
    engine = app.extensions["db_engine"].execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as setup:
        officials = [make_user(setup, f"pd{i}@example.org") for i in range(2)]
        member_id = approved_member(setup, pii, pd).id or 0
        setup.commit()

    def ask(user: User) -> Callable[[Session], object]:
        return lambda session: transfers.request_by_official(
            session, [pd.id], member_id, to_district="XH", reason=None, by=user, now=utcnow()
        )

    assert race(engine, [ask(u) for u in officials]) == ["AlreadyPending", "won"]
    with Session(engine) as check:
        assert len(check.exec(select(Transfer)).all()) == 1
