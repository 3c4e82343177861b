"""The transfers endpoints: ask for a member's move, list incoming transfers, approve or reject one."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from app.db import get_session
from app.models import District, Member, TransferStatus, utcnow
from app.services import transfers
from app.web import openapi
from app.web.api.core import MEMBER_ROLES, ApiError, blueprint, caller, json_body, log_denial, require, scope

CODE_RE = re.compile(openapi.CODE_PATTERN)
REQUEST_KEYS = {"to_district", "to_workplace", "reason"}


def transfer_json(view: Any) -> dict[str, Any]:
    data = asdict(view)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


def _not_found(what: str = "transfer") -> ApiError:
    log_denial("not found or out of scope")
    return ApiError(404, "not_found", f"no such {what}")


def _request_body() -> tuple[str, str | None, str | None]:
    body = json_body()
    to_district, station, reason = body.get("to_district"), body.get("to_workplace"), body.get("reason")
    if set(body) - REQUEST_KEYS or not isinstance(to_district, str) or not CODE_RE.match(to_district):
        raise ApiError(422, "bad_transfer", "to_district must be a district code (and only to_workplace, reason)")
    if station is not None and (not isinstance(station, str) or not CODE_RE.match(station)):
        raise ApiError(422, "bad_transfer", "to_workplace must be a station code of the receiving district")
    if reason is not None and (not isinstance(reason, str) or len(reason) > transfers.MAX_REASON):
        raise ApiError(422, "bad_reason", "reason must be a text of at most 500 characters")
    return to_district, station, reason


# One rule for both methods: with two rules on this path, Werkzeug answers an id too large for the
# converter with 405 (the other method's rule) instead of 404.
@blueprint.route("/members/<int:member_id>/transfers", methods=["GET", "POST"])
def member_transfers(member_id: int) -> ResponseReturnValue:
    require(*MEMBER_ROLES)
    return _history(member_id) if request.method == "GET" else _request(member_id)


def _request(member_id: int) -> tuple[Response, int]:
    """An official of the member's district asks another district to take the member."""
    to_district, station, reason = _request_body()
    db = get_session()
    try:
        transfer = transfers.request_by_official(
            db, scope(), member_id, to_district=to_district, reason=reason, by=caller(), now=utcnow(),
            to_workplace=station,
        )  # fmt: skip
    except transfers.TransferNotFound:
        db.rollback()
        raise _not_found("member") from None
    except transfers.NotTransferable as exc:
        db.rollback()
        if exc.why == "same_district":
            raise ApiError(422, "same_district", "the member is already in that district") from None
        raise ApiError(409, "not_approved", "only an approved member can be transferred") from None
    except transfers.BadTarget as exc:
        db.rollback()
        raise ApiError(422, "bad_transfer", f"no such {exc.field}") from None
    except transfers.BadReason:
        db.rollback()
        raise ApiError(422, "bad_reason", "reason must be a text of at most 500 characters") from None
    except transfers.AlreadyPending as exc:
        db.rollback()
        raise ApiError(409, "already_pending", f"transfer {exc.transfer.id} is already pending") from None
    db.commit()
    return jsonify(transfer_json(transfers.get(db, None, transfer.id or 0))), 201


def _history(member_id: int) -> Response:
    """The member's transfers and district history (404 outside the caller's districts)."""
    db, ids = get_session(), scope()
    member = db.get(Member, member_id) if member_id <= openapi.MAX_ID else None
    if member is None or (ids is not None and member.district_id not in ids):
        raise _not_found("member")
    moves = transfers.of_member(db, member_id)
    district = db.get(District, member.district_id)
    stays = transfers.history(member, district.code if district else "", moves) if member.decided_at else []
    return jsonify(items=[transfer_json(m) for m in moves], history=[transfer_json(s) for s in stays])


@blueprint.get("/transfers")
def list_transfers() -> Response:
    """Transfers into the caller's districts, newest first (at most 200), optionally of one status."""
    require(*MEMBER_ROLES)
    raw = request.args.get("status")
    if raw is not None and raw not in TransferStatus.__members__:
        raise ApiError(400, "bad_filter", "bad value for status")
    wanted = TransferStatus(raw) if raw else None
    found = transfers.incoming(get_session(), scope(), status=wanted)
    return jsonify(items=[transfer_json(t) for t in found])


@blueprint.post("/transfers/<int:transfer_id>/approve")
def approve_transfer(transfer_id: int) -> Response:
    require(*MEMBER_ROLES)
    return _decide(transfer_id, approve=True)


@blueprint.post("/transfers/<int:transfer_id>/reject")
def reject_transfer(transfer_id: int) -> Response:
    require(*MEMBER_ROLES)
    body = json_body()
    reason = body.get("reason")
    if set(body) - {"reason"} or not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise ApiError(422, "bad_reason", "reason must be a text of 1 to 500 characters (and nothing else)")
    return _decide(transfer_id, approve=False, reason=reason)


def _decide(transfer_id: int, *, approve: bool, reason: str = "") -> Response:
    db, by, now = get_session(), caller(), utcnow()
    try:
        if approve:
            transfers.approve(db, scope(), transfer_id, by=by, now=now)
        else:
            transfers.reject(db, scope(), transfer_id, by=by, reason=reason, now=now)
    except transfers.TransferNotFound:
        db.rollback()
        raise _not_found() from None
    except transfers.AlreadyDecided as exc:
        db.rollback()
        at = exc.at.isoformat() if exc.at else None
        raise ApiError(
            409, "already_decided", f"already {exc.status} by {exc.by_email} at {at}",
            decided_by=exc.by_email, decided_at=at, status=exc.status,
        ) from None  # fmt: skip
    except transfers.MemberMoved:
        db.rollback()
        raise ApiError(409, "member_moved", "the member is no longer an approved member of that district") from None
    except transfers.BadReason:
        db.rollback()
        raise ApiError(422, "bad_reason", "reason must be a text of 1 to 500 characters") from None
    db.commit()  # the worker is told after the commit (app/services/events.py)
    return jsonify(transfer_json(transfers.get(db, None, transfer_id)))
