"""An admin's place changes: codes unique across kinds, retiring a district retires its stations."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.models import AuditEvent, WorkplaceKind, utcnow
from app.services import place_admin, places
from tests import factories


def test_codes_are_unique_across_districts_and_workplaces(db):
    district = factories.district(db)
    factories.workplace(db, district)
    with pytest.raises(place_admin.PlaceError) as taken:
        place_admin.create_district(db, "PD-ZJ01", "重复", now=utcnow(), actor_id=None)
    assert taken.value.reason == "code_taken"
    with pytest.raises(place_admin.PlaceError) as bad:
        place_admin.create_workplace(db, district, "a b", "站", WorkplaceKind.hub, now=utcnow(), actor_id=None)
    assert bad.value.reason == "code"


def test_retired_places_leave_every_list_and_their_posters_stop(app, db):
    district = factories.district(db)
    station = factories.workplace(db, district)
    other = factories.workplace(db, district, "PD-ZJ02", "张江饿了么站")
    signer, today = app.extensions["qr_signer"], utcnow().date()
    token = places.token_for(signer, station)
    assert [p.retired_at for p in place_admin.retire(db, station, now=utcnow(), actor_id=None)] != [None]
    assert places.workplaces_of(db, district.id or 0) == [other]  # the join form's station choices
    assert len(places.workplaces_of(db, district.id or 0, retired=True)) == 2
    with pytest.raises(places.PlaceReplaced):
        places.resolve(db, signer, token, today)
    places.rotate(db, station, now=utcnow())  # a new code for a retired place works no more
    with pytest.raises(places.PlaceReplaced):
        places.resolve(db, signer, places.token_for(signer, station), today)
    assert [p.code for p in place_admin.retire(db, district, now=utcnow(), actor_id=None)] == ["PD", "PD-ZJ02"]
    assert places.all_places(db) == [] and len(places.all_places(db, retired=True)) == 3
    with pytest.raises(place_admin.PlaceError):
        place_admin.create_workplace(db, district, "PD-NEW", "新站", WorkplaceKind.hub, now=utcnow(), actor_id=None)
    retired = db.exec(select(AuditEvent.target_id).where(AuditEvent.action == "place.retire")).all()
    assert retired == ["PD-ZJ01", "PD", "PD-ZJ02"]
