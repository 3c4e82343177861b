"""An admin's changes to districts and workplaces: create, edit, retire (each in the audit log).

Codes follow the rules of the CSV import (app/services/places.py): letters, digits, - or _, and
unique across districts and workplaces, since a code names one place wherever it is typed.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from app.models import District, Workplace, WorkplaceKind
from app.services import audit
from app.services.places import CODE_RE, BadPlaceName, Place, clean_name, kind_of, workplaces_of


class PlaceError(ValueError):
    """A change that cannot be made; `reason` says why: code, code_taken, name, retired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _name(text: str) -> str:
    try:
        return clean_name(text)
    except BadPlaceName as exc:
        raise PlaceError("name") from exc


def _free_code(session: Session, code: str) -> str:
    code = code.strip()
    if not CODE_RE.match(code):
        raise PlaceError("code")
    taken = (
        session.exec(select(District.id).where(col(District.code) == code)).first()
        or session.exec(select(Workplace.id).where(col(Workplace.code) == code)).first()
    )
    if taken:
        raise PlaceError("code_taken")
    return code


def create_district(session: Session, code: str, name: str, *, now: datetime, actor_id: int | None) -> District:
    district = District(code=_free_code(session, code), name=_name(name), qr_issued_at=now, created_at=now)
    session.add(district)
    session.flush()
    _record(session, "place.create", district, actor_id)
    return district


def create_workplace(
    session: Session,
    district: District,
    code: str,
    name: str,
    kind: WorkplaceKind,
    *,
    now: datetime,
    actor_id: int | None,
) -> Workplace:
    if district.retired_at is not None:
        raise PlaceError("retired")
    code, name = _free_code(session, code), _name(name)
    workplace = Workplace(
        code=code, name=name, district_id=district.id or 0, kind=kind, qr_issued_at=now, created_at=now
    )
    session.add(workplace)
    session.flush()
    _record(session, "place.create", workplace, actor_id, district=district.code)
    return workplace


def edit(
    session: Session, place: Place, name: str, *, kind: WorkplaceKind | None = None, actor_id: int | None
) -> Place:
    """Rename a place (and set a workplace's kind); its poster and code stay the same."""
    place.name = _name(name)
    if isinstance(place, Workplace) and kind is not None:
        place.kind = kind
    session.add(place)
    session.flush()
    _record(session, "place.edit", place, actor_id)
    return place


def retire(session: Session, place: Place, *, now: datetime, actor_id: int | None) -> list[Place]:
    """Take a place out of use: its poster stops working at once; a district's workplaces retire with it.

    The rows stay (members and statistics point at them); returns the places retired now.
    """
    retired: list[Place] = []
    more: list[Place] = list(workplaces_of(session, place.id or 0)) if isinstance(place, District) else []
    for each in [place, *more]:
        if each.retired_at is None:
            each.retired_at = each.qr_revoked_at = now
            session.add(each)
            _record(session, "place.retire", each, actor_id)
            retired.append(each)
    session.flush()
    return retired


def _record(session: Session, action: str, place: Place, actor_id: int | None, **details: object) -> None:
    audit.record(session, action, target_type=kind_of(place).value, target_id=place.code, actor_id=actor_id, **details)
