"""Search without decrypting, and tab counts without counting: the name index and the counters.

Every test runs on SQLite and, with TEST_DATABASE=postgres, on PostgreSQL (the counters are kept by
triggers of each database's own dialect, migration 0013)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.models import DistrictCount, Member, MemberStatus, utcnow
from app.services import district_counts, names, retention, roster
from tests import factories
from tests.services.test_member_import import HEADER, national
from tests.services.test_member_import import run as run_import
from tests.services.test_roster import make_member, make_user
from tests.web.test_join import code_from, members, send_code, submit


def found(db: Session, pii, q: str, scope: list[int] | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    page = roster.list_members(db, pii, scope, roster.RosterFilter(q=q), cursor=None, limit=50)
    return [v.id for v in page.items]


def tabs(db: Session, scope: list[int] | None = None, **kw) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return roster.counts(db, scope, roster.RosterFilter(**kw))


@pytest.fixture
def pii(app):  # type: ignore[no-untyped-def]
    return app.extensions["pii"]


@pytest.fixture
def two(db: Session):  # type: ignore[no-untyped-def]
    pd, xh = factories.district(db, "PD", "浦东"), factories.district(db, "XH", "徐汇")
    db.commit()
    return pd, xh


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("王小明", "王小明"),
        (" 王 小明 ", "王小明"),
        ("王\u3000小明", "王小明"),  # an ideographic space
        ("阿依古丽·买买提", "阿依古丽・买买提"),  # middle dot or katakana middle dot
        ("阿依古丽．买买提", "阿依古丽 买买提"),  # a full-width full stop (NFKC) or a space
        ("CHAN Tai Man", "chan taiman"),
        ("ＷＡＮＧ", "wang"),  # full-width Latin letters
    ],
)
def test_a_name_typed_differently_has_the_same_index(pii, typed, stored):
    assert names.index(pii, typed) == names.index(pii, stored) is not None


def test_the_index_is_keyed_and_apart_from_the_phones(pii):
    assert names.index(pii, "王小明") != names.index(pii, "王小") != pii.index("王小明")
    assert "王小明" not in (names.index(pii, "王小明") or "") and names.index(pii, " · ") is None


def test_search_by_full_name_finds_the_member_and_another_name_does_not(db, pii, two):
    pd, xh = two
    wang = make_member(db, pii, pd, 1, name="王小明")
    other = make_member(db, pii, xh, 2, name="王小明")
    make_member(db, pii, pd, 3, name="王小红")
    db.commit()
    assert found(db, pii, "王小明") == [other.id, wang.id]
    assert found(db, pii, "王 小明", [pd.id]) == [wang.id]
    assert found(db, pii, "王小明", [pd.id, xh.id]) == [other.id, wang.id]
    assert found(db, pii, "王小") == found(db, pii, "王小明明") == found(db, pii, "李小明") == []
    assert roster.counts(db, None, roster.RosterFilter(q="王小明"), pii=pii) == {
        "pending": 2,
        "approved": 0,
        "rejected": 0,
    }


def test_a_joined_member_is_indexed_in_the_join_and_found(app, client, path, sms, db, pii):
    submit(client, path, name="赵 雷")
    send_code(client, code_from(sms))
    [member] = members(db)
    assert member.name_index == names.index(pii, "赵雷")
    assert found(db, pii, "赵雷") == [member.id]
    assert tabs(db) == {"pending": 1, "approved": 0, "rejected": 0}


def test_an_applicant_who_applies_again_under_another_name_is_found_by_the_new_one(app, path, sms, db, pii):
    first = app.test_client()
    submit(first, path, name="钱一")
    send_code(first, code_from(sms))
    [member] = members(db)
    db.execute(update(Member).values(status=MemberStatus.rejected, decided_at=utcnow(), reject_reason="x"))
    db.commit()
    assert tabs(db) == {"pending": 0, "approved": 0, "rejected": 1}
    second = app.test_client()
    submit(second, path, name="钱二")
    send_code(second, code_from(sms))
    members(db)
    assert found(db, pii, "钱二") == [member.id] and found(db, pii, "钱一") == []
    assert tabs(db) == {"pending": 1, "approved": 0, "rejected": 0}


def test_imported_members_are_indexed_and_counted(app, db, pii):
    district = factories.district(db)
    factories.workplace(db, district)
    db.commit()
    run_import(
        app, db, HEADER + f"孙 悟空,{national(1)},PD,,meituan,2024-03-01,\n李四,{national(2)},PD,,,2024-03-01,\n"
    )
    assert len(found(db, pii, "孙悟空")) == 1
    assert tabs(db) == {"pending": 0, "approved": 2, "rejected": 0}
    assert district_counts.check(db) == []


def test_counts_follow_decisions_transfers_withdrawals_and_retention(db, pii, two):
    pd, xh = two
    user = make_user(db)
    made = [make_member(db, pii, pd, n) for n in range(1, 7)]
    assert tabs(db) == {"pending": 6, "approved": 0, "rejected": 0}
    roster.approve(db, None, made[0].id, by=user, now=utcnow())
    roster.reject(db, None, made[1].id, by=user, reason="不符合", now=utcnow())
    roster.decide_many(db, None, [made[2].id, made[0].id], by=user, approve_all=True, now=utcnow())
    assert tabs(db) == {"pending": 3, "approved": 2, "rejected": 1}
    assert tabs(db, [pd.id]) == tabs(db, district="PD") == tabs(db)
    # A transfer is an UPDATE of district_id, whoever writes it (branch transfers): the counts follow.
    db.execute(update(Member).where(col(Member.id) == made[0].id).values(district_id=xh.id))
    assert tabs(db, [xh.id]) == tabs(db, district="XH") == {"pending": 0, "approved": 1, "rejected": 0}
    assert tabs(db, [pd.id]) == {"pending": 3, "approved": 1, "rejected": 1}
    assert tabs(db, [pd.id, xh.id]) == tabs(db) == {"pending": 3, "approved": 2, "rejected": 1}
    db.execute(delete(Member).where(col(Member.id) == made[3].id))  # a withdrawal
    retention.purge(db, now=utcnow() + timedelta(days=400), draft_hours=24, rejected_days=30)  # the rejected one goes
    db.commit()
    assert tabs(db) == {"pending": 2, "approved": 2, "rejected": 0}
    assert district_counts.check(db) == []


def test_filters_other_than_districts_count_rows(db, pii, two):
    pd, _ = two
    make_member(db, pii, pd, 1, age_days=30)
    make_member(db, pii, pd, 2)
    assert tabs(db, recent_days=7) == {"pending": 1, "approved": 0, "rejected": 0}
    assert tabs(db, district="nowhere") == {"pending": 0, "approved": 0, "rejected": 0}


def test_two_decisions_at_once_keep_the_counts_right(app, pii, two):
    """Eight officials decide eight applications of one district at the same moment, and eight more
    join it: every counter ends equal to the rows."""
    pd, _ = two
    engine = app.extensions["db_engine"].execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as setup:
        users = [make_user(setup, f"u{i}@example.org") for i in range(8)]
        ids = [make_member(setup, pii, pd, n).id for n in range(1, 9)]
        setup.commit()
    barrier, errors = threading.Barrier(16), []

    def decide(i: int) -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                if i % 2:
                    roster.approve(session, None, ids[i], by=users[i], now=utcnow())
                else:
                    roster.reject(session, None, ids[i], by=users[i], reason="x", now=utcnow())
                session.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    def join(n: int) -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                make_member(session, pii, pd, 100 + n)
                session.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=join, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as check:
        assert tabs(check) == {"pending": 8, "approved": 4, "rejected": 4}
        assert district_counts.check(check) == []


def test_reindex_fills_names_from_before_the_index_and_is_resumable(app, db, pii, two):
    pd, _ = two
    old = [make_member(db, pii, pd, n, name=f"周{n}") for n in range(1, 6)]
    db.execute(update(Member).values(name_index=None))
    db.commit()
    assert found(db, pii, "周1") == [] and names.missing(db) == 5
    runner = app.test_cli_runner()
    result = runner.invoke(args=["members", "reindex", "--batch", "2"])
    assert result.exit_code == 0 and "names indexed: 5; still without an index: 0" in result.output
    db.commit()  # end the test's read snapshot: see what the command wrote
    assert found(db, pii, "周3") == [old[2].id]
    again = runner.invoke(args=["members", "reindex", "--all", "--batch", "4"])
    assert "names indexed: 5" in again.output and found(db, pii, "周3") == [old[2].id]


def test_counts_check_and_rebuild_repair_a_wrong_counter(app, db, pii, two):
    pd, _ = two
    for n in range(1, 4):
        make_member(db, pii, pd, n)
    db.execute(update(DistrictCount).values(n=99))
    db.commit()
    runner = app.test_cli_runner()
    check = runner.invoke(args=["counts", "check"])
    assert check.exit_code == 1 and f"district {pd.id} pending: stored 99, members 3" in check.output
    rebuilt = runner.invoke(args=["counts", "rebuild"])
    assert rebuilt.exit_code == 0 and "1 were wrong" in rebuilt.output
    assert runner.invoke(args=["counts", "check"]).exit_code == 0
    db.commit()
    assert tabs(db) == {"pending": 3, "approved": 0, "rejected": 0}
    assert db.exec(select(DistrictCount)).all()


def test_transfers_in_opposite_directions_at_once_neither_deadlock_nor_miscount(app, pii, two):
    """Counter rows are locked in (district, status) order whichever way a member moves."""
    pd, xh = two
    engine = app.extensions["db_engine"].execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as setup:
        moves = [(make_member(setup, pii, (pd, xh)[n % 2], n).id, (xh, pd)[n % 2].id) for n in range(1, 11)]
        setup.commit()
    barrier, errors = threading.Barrier(len(moves)), []

    def move(member_id: int, to: int) -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                session.execute(update(Member).where(col(Member.id) == member_id).values(district_id=to))
                session.execute(update(Member).where(col(Member.id) == member_id).values(status=MemberStatus.approved))
                session.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=move, args=m) for m in moves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as check:
        assert tabs(check, [pd.id]) == tabs(check, [xh.id]) == {"pending": 0, "approved": 5, "rejected": 0}
        assert district_counts.check(check) == []


def test_an_approved_transfer_moves_the_members_count_to_the_receiving_district(db, pii, two):
    """The transfers service only updates member.district_id; the counters follow by themselves."""
    from app.services import transfers

    pd, xh = two
    official = make_user(db)
    member = make_member(db, pii, pd, 1)
    roster.approve(db, None, member.id, by=official, now=utcnow())
    asked = transfers.request_by_official(db, None, member.id, to_district="XH", reason=None, by=official, now=utcnow())
    assert tabs(db, [xh.id]) == {"pending": 0, "approved": 0, "rejected": 0}
    transfers.approve(db, [xh.id], asked.id, by=official, now=utcnow())
    db.commit()
    assert tabs(db, [pd.id]) == {"pending": 0, "approved": 0, "rejected": 0}
    assert tabs(db, [xh.id]) == {"pending": 0, "approved": 1, "rejected": 0}
    assert found(db, pii, "王小明", [xh.id]) == [member.id] and district_counts.check(db) == []
