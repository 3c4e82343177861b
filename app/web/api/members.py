"""The members endpoints: the roster as pages of JSON, one member, their card, decisions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from flask import Response, current_app, jsonify, request

from app.db import get_session
from app.models import Member, utcnow
from app.services import cards, decisions, numbers, places, roster
from app.web import openapi
from app.web.api.core import (
    CURSOR_RE,
    MEMBER_ROLES,
    NON_EMPTY,
    ApiError,
    blueprint,
    caller,
    json_body,
    log_denial,
    require,
    scope,
)


def roster_filter() -> roster.RosterFilter:
    unknown = [name for name in ("recent", "recent_days", "sort", "overdue", "district") if name in request.args]
    try:
        if unknown:
            raise roster.BadFilter(unknown[0])
        empty = [name for name in NON_EMPTY if request.args.get(name) == ""]
        if empty:
            raise roster.BadFilter(empty[0])
        if not places.CODE_RE.match(request.args.get("workplace") or "-"):
            raise roster.BadFilter("workplace")
        return roster.filter_from_args(request.args, overdue_days=current_app.config["ROSTER_OVERDUE_DAYS"])
    except roster.BadFilter as exc:
        raise ApiError(400, "bad_filter", f"bad value for {exc.field}") from None


def member_json(view: Any) -> dict[str, Any]:
    data = asdict(view)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


def _limit() -> int:
    raw = request.args.get("limit", str(openapi.DEFAULT_PAGE))
    if not numbers.digits(raw) or not 1 <= int(raw) <= openapi.MAX_PAGE:
        raise ApiError(400, "bad_limit", f"limit must be a whole number from 1 to {openapi.MAX_PAGE}")
    return int(raw)


@blueprint.get("/members")
def list_members() -> Response:
    require(*MEMBER_ROLES)
    flt, limit = roster_filter(), _limit()
    cursor = request.args.get("cursor") or None
    if cursor is not None and not CURSOR_RE.match(cursor):
        raise ApiError(400, "bad_cursor", "this cursor is not one we made")
    try:
        page = roster.list_members(
            get_session(), current_app.extensions["pii"], scope(), flt, cursor=cursor, limit=limit
        )
    except roster.BadCursor:
        raise ApiError(400, "bad_cursor", "this cursor is not one we made") from None
    return jsonify({"items": [member_json(v) for v in page.items], "next_cursor": page.next_cursor})


def _known_id(member_id: int) -> int:
    """Ids beyond 2**53 exist nowhere (and overflow SQLite's integers): 404 without asking the database."""
    if member_id > openapi.MAX_ID:
        raise ApiError(404, "not_found", "no such member")
    return member_id


def _member_view(member_id: int) -> dict[str, Any]:
    _known_id(member_id)
    try:
        view = roster.get_member(get_session(), current_app.extensions["pii"], scope(), member_id)
    except roster.MemberNotFound:
        log_denial("not found or out of scope")
        raise ApiError(404, "not_found", "no such member") from None
    return member_json(view)


@blueprint.get("/members/<int:member_id>")
def get_member(member_id: int) -> Response:
    require(*MEMBER_ROLES)
    return jsonify(_member_view(member_id))


@blueprint.get("/members/<int:member_id>/card")
def get_member_card(member_id: int) -> Response:
    require(*MEMBER_ROLES)
    _member_view(member_id)  # 404 outside the caller's districts
    db, config = get_session(), current_app.config
    member = db.get(Member, member_id)
    card = member and cards.card_for(
        db,
        member,
        signer=current_app.extensions["card_signer"],
        name=current_app.extensions["pii"].decrypt(member.name_enc),
        base_url=config["PUBLIC_BASE_URL"],
        union_name=config["UNION_NAME"],
        now=utcnow(),
        valid_days=config["CARD_VALID_DAYS"],
    )
    if not card:
        raise ApiError(409, "no_card", "only an approved member has a card")
    return jsonify(
        url=card.url,
        member_number=card.member_number,
        masked_name=card.masked_name,
        district=card.district_name,
        valid_until=card.valid_until.isoformat(),
    )


@blueprint.post("/members/<int:member_id>/approve")
def approve(member_id: int) -> Response:
    require(*MEMBER_ROLES)
    return _decide(member_id, approve=True)


@blueprint.post("/members/<int:member_id>/reject")
def reject(member_id: int) -> Response:
    require(*MEMBER_ROLES)
    body = json_body()
    reason = body.get("reason")
    if set(body) - {"reason"} or not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise ApiError(422, "bad_reason", "reason must be a text of 1 to 500 characters (and nothing else)")
    return _decide(member_id, approve=False, reason=reason)


def _decide(member_id: int, *, approve: bool, reason: str = "") -> Response:
    db = get_session()
    _known_id(member_id)
    try:
        decisions.decide_one(db, scope(), member_id, by=caller(), approve=approve, reason=reason, now=utcnow())
    except roster.MemberNotFound:
        db.rollback()
        log_denial("not found or out of scope")
        raise ApiError(404, "not_found", "no such member") from None
    except roster.AlreadyDecided as exc:
        db.rollback()
        at = exc.at.isoformat() if exc.at else None
        raise ApiError(
            409,
            "already_decided",
            f"already {exc.status or 'decided'} by {exc.by_email} at {at}",
            decided_by=exc.by_email,
            decided_at=at,
            status=exc.status,
        ) from None
    except roster.ReasonRequired:
        db.rollback()
        raise ApiError(422, "bad_reason", "reason must be a text of 1 to 500 characters") from None
    db.commit()  # the worker is told after the commit, as from the roster (app/services/events.py)
    return jsonify(_member_view(member_id))
