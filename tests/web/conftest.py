"""Fixtures shared by the web tests: one district with one station, and its join path."""

from __future__ import annotations

import pytest

from tests import factories


@pytest.fixture
def station(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    workplace = factories.workplace(db, district)
    db.commit()
    return workplace


@pytest.fixture
def path(app, station) -> str:  # type: ignore[no-untyped-def]
    return factories.join_path(app, station)
