"""The funnel counters, and that the join flow feeds them."""

from __future__ import annotations

from sqlmodel import select

from app.models import PlaceKind, PlaceStat, utcnow
from app.services import stats
from tests import factories
from tests.web.test_join import code_from, send_code, submit


def test_bump_creates_then_increments_one_row(db):
    for step in ("scans", "scans", "forms"):
        stats.bump(db, kind=PlaceKind.workplace, place_id=7, qr_version=1, step=step, day=utcnow().date())
    [row] = db.exec(select(PlaceStat)).all()
    assert (row.scans, row.forms, row.verified, row.joins) == (2, 1, 0, 0)


def test_join_flow_counts_each_step_against_the_poster(app, client, db, sms):
    district = factories.district(db)
    station = factories.workplace(db, district)
    db.commit()
    path = factories.join_path(app, station)
    client.get(path)
    submit(client, path)  # a second scan, then the form
    send_code(client, code_from(sms))
    db.commit()
    [row] = db.exec(select(PlaceStat)).all()
    assert (row.place_kind, row.place_id, row.qr_version) == (PlaceKind.workplace, station.id, 1)
    assert (row.scans, row.forms, row.verified, row.joins) == (2, 1, 1, 1)


def _buffer(app, interval: float) -> stats.FunnelBuffer:  # type: ignore[no-untyped-def]
    from sqlmodel import Session

    return stats.FunnelBuffer(lambda: Session(app.extensions["db_engine"]), interval)


def test_buffer_writes_the_sums_in_one_go(app, db):
    buffer = _buffer(app, interval=3600)  # no flush unless asked
    today = utcnow().date()
    for step in ("scans", "scans", "scans", "forms"):
        buffer.add(PlaceKind.workplace, 7, 1, step, today)
    buffer.add(PlaceKind.district, 3, 2, "scans", today)
    assert db.exec(select(PlaceStat)).all() == []
    assert buffer.flush() == 5
    db.commit()  # end the test's read snapshot
    rows = {(r.place_kind, r.place_id): (r.scans, r.forms) for r in db.exec(select(PlaceStat)).all()}
    assert rows == {(PlaceKind.workplace, 7): (3, 1), (PlaceKind.district, 3): (1, 0)}
    assert buffer.flush() == 0


def test_a_failed_write_keeps_its_counts(app, db):
    buffer = _buffer(app, interval=3600)
    real_open = buffer.open_session

    def broken():  # type: ignore[no-untyped-def]
        raise OSError("database unreachable")

    buffer.open_session = broken
    buffer.add(PlaceKind.workplace, 7, 1, "scans", utcnow().date())
    assert buffer.flush() == 0
    buffer.open_session = real_open
    assert buffer.flush() == 1
    db.commit()
    [row] = db.exec(select(PlaceStat)).all()
    assert row.scans == 1


def test_the_flusher_thread_writes_without_a_request(app, db):
    import time

    buffer = _buffer(app, interval=0.05)
    buffer.add(PlaceKind.workplace, 9, 1, "scans", utcnow().date())
    for _ in range(200):  # up to 10 s on a busy machine; usually the first 50 ms
        db.commit()
        if db.exec(select(PlaceStat)).all():
            break
        time.sleep(0.05)
    [row] = db.exec(select(PlaceStat)).all()
    assert (row.place_id, row.scans) == (9, 1)


def test_unknown_steps_are_refused(app):
    import pytest

    with pytest.raises(ValueError):
        _buffer(app, 0).add(PlaceKind.workplace, 1, 1, "clicks", utcnow().date())
