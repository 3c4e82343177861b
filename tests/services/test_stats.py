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
