"""Small builders for test data."""

from __future__ import annotations

from flask import Flask
from sqlmodel import Session

from app.models import District, Workplace, WorkplaceKind, utcnow
from app.services import places


def district(db: Session, code: str = "PD", name: str = "浦东新区总工会") -> District:
    row = District(code=code, name=name, qr_issued_at=utcnow())
    db.add(row)
    db.flush()
    return row


def workplace(db: Session, parent: District, code: str = "PD-ZJ01", name: str = "张江美团骑手站") -> Workplace:
    row = Workplace(
        code=code, name=name, district_id=parent.id or 0, kind=WorkplaceKind.delivery_station, qr_issued_at=utcnow()
    )
    db.add(row)
    db.flush()
    return row


def join_path(app: Flask, place: District | Workplace) -> str:
    """The path part of the place's join URL."""
    url = places.join_url(app.config["PUBLIC_BASE_URL"], app.extensions["qr_signer"], place)
    return "/" + url.rsplit("/", 1)[1]


def phone(n: int = 1) -> str:
    """A well-formed mainland mobile number built at run time (170 is a virtual-operator block)."""
    return f"+86170{n:08d}"
