"""Dashboard figures on small known data (run on SQLite and, with TEST_DATABASE=postgres, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session

from app.models import District, Member, MemberStatus, PlaceKind, Platform, Workplace
from app.services import dashboard, stats
from app.services.phones import last4
from tests import factories

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 20:00 in Beijing, Monday 30 November
COUNTER = iter(range(1, 10_000))


def add(
    db: Session,
    pii,  # type: ignore[no-untyped-def]
    district: District,
    at: datetime,
    *,
    station: Workplace | None = None,
    platform: Platform = Platform.meituan,
    status: MemberStatus = MemberStatus.pending,
    decided_after: timedelta | None = None,
) -> Member:
    phone = factories.phone(next(COUNTER))
    member = Member(
        district_id=district.id or 0,
        workplace_id=station.id if station else None,
        name_enc=pii.encrypt("测试"),
        phone_enc=pii.encrypt(phone),
        phone_index=pii.index(phone),
        phone_last4_index=pii.index(last4(phone), purpose="last4"),
        platform=platform,
        status=status,
        consent_version="test",
        consent_at=at,
        source_kind=PlaceKind.workplace if station else PlaceKind.district,
        source_qr_version=1,
        created_at=at,
        verified_at=at,
        decided_at=at + decided_after if decided_after is not None else None,
    )
    db.add(member)
    db.flush()
    return member


@pytest.fixture
def pii(app):  # type: ignore[no-untyped-def]
    return app.extensions["pii"]


@pytest.fixture
def places(db):  # type: ignore[no-untyped-def]
    pd, xh = factories.district(db, "PD", "浦东"), factories.district(db, "XH", "徐汇")
    zj = factories.workplace(db, pd, "PD-ZJ01", "张江站")
    lj = factories.workplace(db, pd, "PD-LJ01", "陆家嘴站")
    db.commit()
    return pd, xh, zj, lj


def test_window_is_local_days_ending_today():
    win = dashboard.window(NOW, 30)
    assert (win.first, win.last) == (date(2026, 11, 1), date(2026, 11, 30))
    assert win.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # midnight in Beijing
    with pytest.raises(dashboard.BadPeriod):
        dashboard.window(NOW, 7)


def test_joins_are_grouped_by_the_beijing_day(db, pii, places):
    pd, xh, zj, _lj = places
    add(db, pii, pd, datetime(2026, 11, 29, 15, 59, tzinfo=UTC), station=zj)  # 23:59 on the 29th in Beijing
    add(db, pii, pd, datetime(2026, 11, 29, 16, 1, tzinfo=UTC), station=zj)  # 00:01 on the 30th
    add(db, pii, pd, datetime(2026, 11, 30, 3, 0, tzinfo=UTC), platform=Platform.eleme)
    add(db, pii, xh, datetime(2026, 11, 30, 3, 0, tzinfo=UTC))
    add(db, pii, pd, datetime(2026, 10, 31, 15, 59, tzinfo=UTC))  # 23:59 on 31 October: outside 30 days
    db.commit()
    win = dashboard.window(NOW, 30)
    by_district = dashboard.joins(db, None, win, "district")
    assert by_district.daily == {
        (date(2026, 11, 29), pd.id): 1,
        (date(2026, 11, 30), pd.id): 2,
        (date(2026, 11, 30), xh.id): 1,
    }
    assert by_district.totals() == {pd.id: 3, xh.id: 1}
    assert dashboard.joins(db, [pd.id], win, "platform").totals() == {"eleme": 1, "meituan": 2}
    stations = dashboard.joins(db, [pd.id], win, "workplace").totals()
    assert stations == {(pd.id, zj.id): 2, (pd.id, None): 1}
    assert dashboard.joins(db, None, dashboard.window(NOW, 90), "district").totals() == {pd.id: 4, xh.id: 1}


def test_an_officials_scope_sees_only_its_districts(db, pii, places):
    pd, xh, _zj, _lj = places
    add(db, pii, pd, NOW - timedelta(days=1))
    add(db, pii, xh, NOW - timedelta(days=1), status=MemberStatus.approved, decided_after=timedelta(hours=5))
    db.commit()
    report = dashboard.report(db, [pd.id], dashboard.window(NOW, 30), members=True, working_days=15)
    assert [d.code for d in report.districts] == ["PD"]
    assert report.by_district is not None and report.by_district.totals() == {pd.id: 1}
    assert report.decisions[None].decided == 0


def test_time_to_decision_median_and_90th_percentile(db, pii, places):
    pd, *_ = places
    for hours in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10):
        add(db, pii, pd, NOW - timedelta(days=3), status=MemberStatus.approved, decided_after=timedelta(hours=hours))
    db.commit()
    figures = dashboard.decisions(db, [pd.id], dashboard.window(NOW, 30), 15)
    assert figures.decided == 10
    assert figures.median_hours == pytest.approx(5, abs=0.01)  # nearest rank: the 5th of 10
    assert figures.p90_hours == pytest.approx(9, abs=0.01)  # the 9th of 10


def test_overdue_counts_working_days_from_the_deadline_service(db, pii, places):
    pd, *_ = places
    # 15 working days before Monday 30 November 2026 (no holidays in between): Monday 9 November.
    add(db, pii, pd, datetime(2026, 11, 8, 3, 0, tzinfo=UTC))  # applied Sunday 8th: due Friday 27th, overdue
    add(db, pii, pd, datetime(2026, 11, 9, 3, 0, tzinfo=UTC))  # applied Monday 9th: due Monday 30th, not yet
    decided = {"status": MemberStatus.approved, "decided_after": timedelta(days=2)}
    add(db, pii, pd, datetime(2026, 11, 1, 3, 0, tzinfo=UTC), **decided)  # type: ignore[arg-type]
    db.commit()
    assert dashboard.decisions(db, None, dashboard.window(NOW, 30), 15).overdue == 1


def test_suppress_hides_one_to_four_and_a_complement():
    cells = {"a": 12, "b": 3, "c": 7, "d": 0}
    assert dashboard.suppress(cells, []) == {"a": 12, "b": "<5", "c": 7, "d": 0}
    # With the line's total published, "b" would be total - 12 - 7 - 0: the smallest other count goes too.
    assert dashboard.suppress(cells, [["a", "b", "c", "d"]]) == {"a": 12, "b": "<5", "c": "<5", "d": 0}
    assert dashboard.suppress({"a": 1, "b": 2, "c": 9}, [["a", "b", "c"]]) == {"a": "<5", "b": "<5", "c": 9}


def test_station_and_platform_counts_below_five_are_hidden(db, pii, places):
    pd, _xh, zj, lj = places
    for _ in range(6):
        add(db, pii, pd, NOW - timedelta(days=2), station=zj)
    for _ in range(2):
        add(db, pii, pd, NOW - timedelta(days=2), station=lj, platform=Platform.didi)
    db.commit()
    report = dashboard.report(db, [pd.id], dashboard.window(NOW, 30), members=True, working_days=15)
    totals = {key: report.by_station[None, key] for key in report.station_keys}
    # lj's 2 is hidden; the district's total (8) is shown, so zj's 6 is hidden as its complement.
    assert totals == {(pd.id, zj.id): "<5", (pd.id, lj.id): "<5"}
    platforms = {key: report.by_platform[None, key] for key in report.platform_keys}
    assert platforms == {"didi": "<5", "meituan": "<5"}
    day = date(2026, 11, 28)
    assert report.by_station[day, (pd.id, lj.id)] == "<5"
    assert report.by_district is not None and report.by_district.totals() == {pd.id: 8}  # districts in full


def test_funnel_per_poster_with_approved_members(db, pii, places):
    pd, xh, zj, _lj = places
    day = date(2026, 11, 29)
    for step, by in (("scans", 40), ("forms", 20), ("verified", 9)):
        stats.bump(db, kind=PlaceKind.workplace, place_id=zj.id, qr_version=1, step=step, day=day, by=by)
    stats.bump(db, kind=PlaceKind.district, place_id=xh.id, qr_version=1, step="scans", day=day, by=50)
    for n in range(7):
        status = MemberStatus.approved if n < 6 else MemberStatus.pending
        add(db, pii, pd, NOW - timedelta(days=1), station=zj, status=status, decided_after=timedelta(hours=1))
    db.commit()
    report = dashboard.report(db, [pd.id], dashboard.window(NOW, 30), members=False, working_days=15)
    assert len(report.funnels) == 1  # XH's poster is out of scope
    poster, shown = report.funnels[0]
    assert (poster.kind, poster.place_id, poster.qr_version) == (PlaceKind.workplace, zj.id, 1)
    assert shown == {"scans": 40, "forms": 20, "sent": None, "verified": 9, "approved": 6}
    assert report.by_district is None and report.decisions == {}  # no member figures for organizers


def test_decisions_per_district_and_together(db, pii, places):
    pd, xh, *_ = places
    decided = {"status": MemberStatus.approved}
    add(db, pii, pd, NOW - timedelta(days=2), decided_after=timedelta(hours=2), **decided)  # type: ignore[arg-type]
    add(db, pii, xh, NOW - timedelta(days=2), decided_after=timedelta(hours=30), **decided)  # type: ignore[arg-type]
    add(db, pii, xh, NOW - timedelta(days=40))  # pending and overdue
    db.commit()
    found = dashboard.decisions_by_district(db, [pd.id, xh.id], dashboard.window(NOW, 30), 15)
    assert (found[pd.id].decided, found[pd.id].median_hours, found[pd.id].overdue) == (1, 2, 0)
    assert (found[xh.id].decided, found[xh.id].median_hours, found[xh.id].overdue) == (1, 30, 1)
    assert (found[None].decided, found[None].median_hours, found[None].p90_hours, found[None].overdue) == (2, 2, 30, 1)
