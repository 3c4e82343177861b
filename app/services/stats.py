"""Per-poster funnel counters: scans → forms → verified codes → joins. No personal data."""

from __future__ import annotations

from datetime import date

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.models import PlaceKind, PlaceStat

STEPS = ("scans", "forms", "verified", "joins")


def bump(session: Session, *, kind: PlaceKind, place_id: int, qr_version: int, step: str, day: date) -> None:
    """Add one to a step of the poster's counter for the day (an atomic upsert)."""
    if step not in STEPS:
        raise ValueError(f"unknown funnel step {step}")
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    row = {
        "place_kind": kind,
        "place_id": place_id,
        "qr_version": qr_version,
        "day": day,
        **{name: int(name == step) for name in STEPS},
    }
    statement = insert(PlaceStat).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=["place_kind", "place_id", "qr_version", "day"],
        set_={step: getattr(PlaceStat, step) + 1},
    )
    session.execute(statement)
