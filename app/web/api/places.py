"""The places endpoints: districts and workplaces with their join links, and their upsert."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, current_app, jsonify, request
from sqlmodel import select

from app.db import get_session
from app.models import District, Workplace, WorkplaceKind, utcnow
from app.services import audit, places
from app.web.api.core import PLACE_WRITERS, ApiError, blueprint, caller, json_body, log_denial, require, scope


def place_json(place: District | Workplace, district_code: str) -> dict[str, Any]:
    signer, base = current_app.extensions["qr_signer"], current_app.config["PUBLIC_BASE_URL"]
    is_workplace = isinstance(place, Workplace)
    return {
        "code": place.code,
        "name": place.name,
        "kind": "workplace" if is_workplace else "district",
        "workplace_kind": place.kind.value if isinstance(place, Workplace) else None,
        "district": district_code,
        "join_url": places.join_url(base, signer, place),
        "qr_version": place.qr_version,
    }


@blueprint.get("/places")
def list_places() -> Response:
    district = request.args.get("district")
    if district is not None and not places.CODE_RE.match(district):
        raise ApiError(400, "bad_filter", "bad value for district")
    allowed = scope()
    items, code = [], ""
    for place in places.all_places(get_session(), district):
        if isinstance(place, District):
            code = place.code
        district_id = place.id if isinstance(place, District) else place.district_id
        if allowed is None or district_id in allowed:
            items.append(place_json(place, code))
    return jsonify({"items": items})


PLACE_FIELDS = {"district_code", "district_name", "workplace_code", "workplace_name", "kind"}


def _place_input() -> dict[str, str]:
    body = json_body()
    if set(body) - PLACE_FIELDS or not all(isinstance(v, str) for v in body.values()):
        raise ApiError(422, "bad_place", f"fields are text, only: {', '.join(sorted(PLACE_FIELDS))}")
    if not places.CODE_RE.match(body.get("district_code", "")):
        raise ApiError(422, "bad_place", "district_code is required: 1 to 32 letters, digits, - or _")
    if "workplace_code" in body and not places.CODE_RE.match(body["workplace_code"]):
        raise ApiError(422, "bad_place", "workplace_code: 1 to 32 letters, digits, - or _")
    if "workplace_code" in body and not body.get("workplace_name", "").strip():
        raise ApiError(422, "bad_place", "a workplace needs a workplace_name")
    if "kind" in body and "workplace_code" not in body:
        raise ApiError(422, "bad_place", "kind is a workplace's: it needs a workplace_code")
    if any(name in body and not body[name].strip() for name in ("district_name", "workplace_name")):
        raise ApiError(422, "bad_place", "a name, when given, is not empty")
    if "kind" in body and body["kind"] not in {k.value for k in WorkplaceKind}:
        raise ApiError(422, "bad_place", "kind must be delivery_station, rest_station, hub or other")
    if any(len(body.get(name, "")) > 200 for name in ("district_name", "workplace_name")):
        raise ApiError(422, "bad_place", "names have at most 200 characters")
    return body


@blueprint.post("/places")
def upsert_place() -> Response:
    require(*PLACE_WRITERS)
    body, db = _place_input(), get_session()
    district = db.exec(select(District).where(District.code == body["district_code"])).first()
    allowed = scope()
    if allowed is not None and (district is None or district.id not in allowed):
        log_denial("district out of scope")
        raise ApiError(404, "not_found", "no such district")
    if allowed is not None and "workplace_code" not in body:
        raise ApiError(403, "forbidden", "only admins create or rename districts")
    if allowed is not None and _held_elsewhere(db, body["workplace_code"], allowed):
        # Codes are unique across districts: one taken outside the caller's districts cannot be
        # theirs, and the answer is the same 404 as for any record out of scope (no oracle).
        log_denial("place code out of scope")
        raise ApiError(404, "not_found", "no such workplace")
    if "workplace_code" in body and "kind" not in body:
        existing = db.exec(select(Workplace).where(Workplace.code == body["workplace_code"])).first()
        body["kind"] = existing.kind.value if existing else WorkplaceKind.other.value
    # `district` is known here when `allowed` is set (out of scope or missing was refused above).
    name = body.get("district_name", "").strip() if allowed is None or district is None else district.name
    if not name:
        name = district.name if district else ""
    if not name:
        raise ApiError(422, "bad_place", "a new district needs a district_name")
    report = places.import_csv(db, _csv_row(body, name), now=utcnow())
    if report.rejected:
        db.rollback()
        raise ApiError(422, "bad_place", report.rejected[0][1])
    code = body.get("workplace_code") or body["district_code"]
    place = places.find_by_code(db, code)
    audit.record(
        db,
        "place.upsert",
        target_type=places.kind_of(place).value,
        target_id=place.code,
        actor_id=caller().id,
        created=bool(report.created),
    )
    db.commit()
    response = jsonify(place_json(place, body["district_code"]))
    response.status_code = 201 if report.created else 200
    return response


def _held_elsewhere(db: Any, code: str, allowed: list[int]) -> bool:
    """Whether `code` names a place (workplace or district) outside the districts `allowed`."""
    workplace = db.exec(select(Workplace).where(Workplace.code == code)).first()
    if workplace is not None:
        return workplace.district_id not in allowed
    district = db.exec(select(District).where(District.code == code)).first()
    return district is not None and district.id not in allowed


def _csv_row(body: dict[str, str], district_name: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["district_code", "district_name", "workplace_code", "workplace_name", "kind"])
    writer.writerow(
        [
            body["district_code"],
            district_name,
            body.get("workplace_code", ""),
            body.get("workplace_name", "").strip(),
            body.get("kind", ""),
        ]
    )
    return out.getvalue()
