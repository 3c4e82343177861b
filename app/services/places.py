"""Districts and workplaces: their signed join URLs, rotation, CSV import and listing."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session, col, select

from app.models import District, PlaceKind, Workplace, WorkplaceKind, utcnow
from app.services import audit
from app.services.tokens import QrSigner, TokenExpired, TokenInvalid

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
KIND_ALIASES = {
    "delivery_station": WorkplaceKind.delivery_station,
    "station": WorkplaceKind.delivery_station,
    "站点": WorkplaceKind.delivery_station,
    "rest_station": WorkplaceKind.rest_station,
    "驿站": WorkplaceKind.rest_station,
    "hub": WorkplaceKind.hub,
    "枢纽": WorkplaceKind.hub,
    "other": WorkplaceKind.other,
    "其他": WorkplaceKind.other,
    "": WorkplaceKind.other,
}

Place = District | Workplace
NAME_MAX = 200
# What a place name may hold: letters, marks, digits, punctuation, spaces, and the maths and
# currency signs. Not emoji and other pictographs (So), nor control, format, private-use or
# unassigned code points: they print as nothing or boxes, and hide text from people reading.
NAME_CATEGORIES = ("L", "M", "N", "P", "Zs", "Sm", "Sc", "Sk")


class BadPlaceName(ValueError):
    """A place name that cannot be stored; the message names the field and the character."""


def clean_name(text: str, field: str = "name") -> str:
    """The name as stored (NFC, spaces collapsed), or BadPlaceName saying what is wrong."""
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if not name:
        raise BadPlaceName(f"{field} is required")
    if len(name) > NAME_MAX:
        raise BadPlaceName(f"{field} has more than {NAME_MAX} characters")
    for ch in name:
        category = unicodedata.category(ch)
        if not category.startswith(NAME_CATEGORIES):
            raise BadPlaceName(
                f"{field} has a character that cannot be printed on a poster (U+{ord(ch):04X}): "
                "use letters, digits, spaces and punctuation"
            )
    return name


class PlaceNotFound(Exception):
    """No place answers to this token or code."""


class PlaceReplaced(Exception):
    """The token was real, but its poster was rotated, revoked or has expired."""


@dataclass(frozen=True)
class ResolvedPlace:
    district: District
    workplace: Workplace | None
    kind: PlaceKind
    qr_version: int


def kind_of(place: Place) -> PlaceKind:
    return PlaceKind.workplace if isinstance(place, Workplace) else PlaceKind.district


def token_for(signer: QrSigner, place: Place) -> str:
    assert place.id is not None
    return signer.dumps(kind_of(place), place.id, place.qr_version, place.qr_issued_at.date())


def join_url(base_url: str, signer: QrSigner, place: Place) -> str:
    """The URL printed for people to read: lower-case host, as typed."""
    return f"{base_url}/{token_for(signer, place)}"


def qr_payload(base_url: str, signer: QrSigner, place: Place) -> str:
    """The URL encoded in the QR: upper-case, so it fits the compact alphanumeric mode."""
    return join_url(base_url, signer, place).upper()


def expires_on(signer: QrSigner, place: Place) -> date:
    return signer.expires_on(place.qr_issued_at.date())


def resolve(session: Session, signer: QrSigner, token: str, today: date) -> ResolvedPlace:
    """Find the place a scanned token names; raise PlaceNotFound or PlaceReplaced."""
    try:
        ref = signer.loads(token, today)
    except TokenInvalid as exc:
        raise PlaceNotFound() from exc
    except TokenExpired as exc:
        raise PlaceReplaced() from exc
    if ref.kind is PlaceKind.workplace:  # the station and its district in one query
        found = session.exec(
            select(Workplace, District)
            .join(District, col(District.id) == col(Workplace.district_id))
            .where(Workplace.id == ref.place_id)
        ).first()
        workplace, district = found if found is not None else (None, None)
        place: Place | None = workplace
    else:
        place = district = session.get(District, ref.place_id)
        workplace = None
    if place is None or district is None:
        raise PlaceNotFound()
    current = place.qr_version % 64 == ref.version_mod and place.qr_issued_at.date() == ref.issued_on
    if not current or place.qr_revoked_at is not None or place.retired_at is not None:
        raise PlaceReplaced()
    return ResolvedPlace(district=district, workplace=workplace, kind=ref.kind, qr_version=place.qr_version)


def find_by_code(session: Session, code: str) -> Place:
    """A workplace or district by its code (workplaces first: their codes are the finer ones)."""
    workplace = session.exec(select(Workplace).where(col(Workplace.code) == code)).first()
    if workplace is not None:
        return workplace
    district = session.exec(select(District).where(col(District.code) == code)).first()
    if district is not None:
        return district
    raise PlaceNotFound(code)


def rotate(session: Session, place: Place, *, now: datetime, actor_id: int | None = None) -> Place:
    """Revoke the place's current code and issue the next one."""
    place.qr_version += 1
    place.qr_issued_at = now
    place.qr_revoked_at = None
    session.add(place)
    audit.record(
        session,
        "place.rotate",
        target_type=kind_of(place).value,
        target_id=place.code,
        actor_id=actor_id,
        qr_version=place.qr_version,
    )
    return place


def workplaces_of(session: Session, district_id: int, *, retired: bool = False) -> list[Workplace]:
    """The district's workplaces in use (with `retired`, those an admin retired too)."""
    query = select(Workplace).where(Workplace.district_id == district_id).order_by(Workplace.name)
    if not retired:
        query = query.where(col(Workplace.retired_at).is_(None))
    return list(session.exec(query))


def all_places(session: Session, district_code: str | None = None, *, retired: bool = False) -> list[Place]:
    """Every district in use, each followed by its workplaces in use (with `retired`, every one)."""
    query = select(District).order_by(District.code)
    if district_code:
        query = query.where(District.code == district_code)
    if not retired:
        query = query.where(col(District.retired_at).is_(None))
    places: list[Place] = []
    for district in session.exec(query):
        places.append(district)
        places.extend(sorted(workplaces_of(session, district.id or 0, retired=retired), key=lambda w: w.code))
    return places


@dataclass
class ImportReport:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)


def import_csv(session: Session, text: str, *, now: datetime | None = None) -> ImportReport:
    """Upsert places from `district_code,district_name,workplace_code,workplace_name[,kind]`."""
    report = ImportReport()
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    for line_no, row in enumerate(rows, start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if line_no == 1 and row[0].strip().lower() == "district_code":
            continue
        with session.begin_nested():
            try:
                created = _import_row(session, row, now or utcnow())
            except ValueError as exc:
                report.rejected.append((line_no, str(exc)))
                continue
        (report.created if created else report.updated).append(line_no)
    return report


def _import_row(session: Session, row: list[str], now: datetime) -> bool:
    cells = [cell.strip() for cell in row] + [""] * 5
    d_code, d_name, w_code, w_name, kind_text = cells[:5]
    if len(row) > 5:
        raise ValueError("too many columns (expected 4 or 5)")
    if not CODE_RE.match(d_code) or not d_name:
        raise ValueError("district_code (letters, digits, - or _) and district_name are required")
    if w_code and (not CODE_RE.match(w_code) or not w_name):
        raise ValueError("workplace_code must be letters, digits, - or _, with a workplace_name")
    kind = KIND_ALIASES.get(kind_text.lower() if kind_text.isascii() else kind_text)
    if kind is None:
        raise ValueError(f"unknown kind {kind_text!r} (delivery_station, rest_station, hub, other)")
    district = session.exec(select(District).where(District.code == d_code)).first()
    if district is None or d_name != district.name:  # a name stored before this check may stay
        d_name = clean_name(d_name, "district_name")
    if w_code:
        w_name = clean_name(w_name, "workplace_name")
    created = district is None
    if district is None:
        if session.exec(select(Workplace).where(Workplace.code == d_code)).first():
            raise ValueError(f"code {d_code} is already a workplace")
        district = District(code=d_code, name=d_name, qr_issued_at=now)
    district.name = d_name
    session.add(district)
    session.flush()
    if not w_code:
        return created
    return _upsert_workplace(session, district, w_code, w_name, kind, now)


def _upsert_workplace(
    session: Session, district: District, code: str, name: str, kind: WorkplaceKind, now: datetime
) -> bool:
    if session.exec(select(District).where(District.code == code)).first():
        raise ValueError(f"code {code} is already a district")
    workplace = session.exec(select(Workplace).where(Workplace.code == code)).first()
    created = workplace is None
    if workplace is None:
        workplace = Workplace(code=code, name=name, district_id=district.id or 0, kind=kind, qr_issued_at=now)
    elif workplace.district_id != district.id:
        raise ValueError(f"workplace {code} belongs to another district")
    workplace.name, workplace.kind = name, kind
    session.add(workplace)
    session.flush()
    return created
