"""Per-poster funnel counters: scans → forms → verified codes → joins. No personal data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

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


@dataclass(frozen=True)
class Funnel:
    """One poster's counts (a place at one token version), summed over its days."""

    qr_version: int
    scans: int = 0
    forms: int = 0
    verified: int = 0
    joins: int = 0

    def rate(self) -> float | None:
        """Joins per scan, or None before the first scan."""
        return self.joins / self.scans if self.scans else None


def funnels(session: Session, kind: PlaceKind, place_ids: list[int]) -> dict[int, list[Funnel]]:
    """The funnel of each place per token version, newest version first."""
    if not place_ids:
        return {}
    sums = [func.sum(getattr(PlaceStat, step)) for step in STEPS]
    query = (select(PlaceStat.place_id, PlaceStat.qr_version, *sums)
             .where(PlaceStat.place_kind == kind, PlaceStat.place_id.in_(place_ids))  # type: ignore[attr-defined]
             .group_by(PlaceStat.place_id, PlaceStat.qr_version)
             .order_by(PlaceStat.place_id, PlaceStat.qr_version.desc()))  # type: ignore[attr-defined]
    found: dict[int, list[Funnel]] = {}
    for place_id, version, *counts in session.exec(query):
        found.setdefault(place_id, []).append(Funnel(version, *(int(c or 0) for c in counts)))
    return found
