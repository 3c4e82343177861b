"""JSON API for integrations at /api/v1: bearer tokens, district scope, JSON errors only.

A request with `Authorization: Bearer …` is judged by its token alone and is exempt from CSRF (a
browser never adds that header by itself). Without the header, a signed-in staff cookie works too,
but then every state-changing call must pass the CSRF check like any form (docs/security.md E4).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context
from flask_limiter import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from limits.errors import StorageError
from sqlmodel import select
from werkzeug.exceptions import HTTPException

from app import security
from app.db import close_session, get_session, session_scope
from app.extensions import client_address_key, csrf, limiter
from app.models import District, Member, Role, User, Workplace, WorkplaceKind, utcnow
from app.security import action_limit
from app.services import api_tokens, audit, cards, decisions, export, places, roster, users
from app.web import openapi

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer requests only: cookie requests are checked in `authenticate` below

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CURSOR_RE = re.compile(openapi.CURSOR_PATTERN)
MEMBER_ROLES = (Role.admin, Role.official)
PLACE_WRITERS = (Role.admin, Role.organizer)
# Present but empty is an error here (the roster pages read it as "any", the API is strict).
NON_EMPTY = ("status", "workplace", "platform", "since", "cursor", "limit", "format")


class ApiError(Exception):
    """An error answered as JSON: status, a short code and a message."""

    def __init__(self, http_status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.http_status, self.error, self.message, self.extra = http_status, error, message, extra


def error_response(http_status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": error, "message": message, **extra})
    response.status_code = http_status
    if http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def http_error_response(exc: HTTPException) -> Response:
    """A werkzeug error (404 route, 405 method, 413 body…) as JSON, keeping headers such as Allow."""
    response = error_response(
        exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name or "error"
    )
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _caller_key() -> str:
    """The bucket of API_RATE_LIMIT: the bearer token (by its hash), else the signed-in user, else the IP."""
    header = request.headers.get("Authorization")
    if header is not None:
        return "api-token:" + api_tokens.digest(header.partition(" ")[2].strip())
    if current_user.is_authenticated:
        return f"api-user:{current_user.user.id}"
    return _address_key()


def _address_key() -> str:
    return "api-ip:" + client_address_key()


def _refused(response: Response) -> bool:
    return response.status_code == 401


# Checked before the token is looked up: a made-up token costs no database query once the
# address is over its limit. Both limits are shared by every endpoint of the blueprint.
limiter.shared_limit(lambda: current_app.config["API_RATE_LIMIT"], "api", key_func=_caller_key)(bp)
limiter.shared_limit(
    lambda: current_app.config["API_AUTH_FAILURE_LIMIT"], "api-refused", key_func=_address_key, deduct_when=_refused
)(bp)


@bp.errorhandler(RateLimitExceeded)
def _too_many(_exc: RateLimitExceeded) -> Response:
    # The limiter adds Retry-After (seconds) to this response as to any other of a limited route.
    log.warning("api rate limit reached: %s %s", request.method, request.endpoint)
    return error_response(429, "rate_limited", "too many requests: wait the seconds in Retry-After, then retry")


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error_response(exc.http_status, exc.error, exc.message, **exc.extra)


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> Response:
    _log_denial("csrf")
    return error_response(403, "csrf", "a cookie-authenticated request needs a valid CSRF token")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return http_error_response(exc)


@bp.errorhandler(StorageError)
@bp.errorhandler(redis.RedisError)
def _limits_down(_exc: Exception) -> Response:
    """A limit that cannot be counted is not passed (fail closed): 503, as the pages answer.
    Registered for these classes so the blueprint-wide handler below does not take them."""
    close_session()
    log.error("api: the limit store is unreachable (%s)", type(_exc).__name__)
    return error_response(503, "unavailable", "temporarily unavailable: retry in a few minutes")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    close_session()
    log.error("unhandled %s in the API", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal", "something went wrong on our side")


def _log_denial(why: str) -> None:
    user = g.get("api_user")
    log.warning("api denied %s: %s %s by user %s", why, request.method, request.endpoint, user and user.id)


@bp.before_request
def authenticate() -> None:
    """Set g.api_user from the bearer token, else from the staff cookie (with CSRF on writes)."""
    if request.endpoint == "api.openapi_json":
        return
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, raw = header.partition(" ")
        db = get_session()
        user = api_tokens.authenticate(db, raw.strip(), now=utcnow()) if scheme.lower() == "bearer" else None
        db.commit()
        if user is None:
            _log_denial("token")
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
        g.api_user = user
        return
    if not current_user.is_authenticated:
        _log_denial("no credentials")
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    if request.method not in SAFE_METHODS:
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            _log_denial("cross-site")
            raise ApiError(403, "cross_site", "cross-site requests are refused")
        csrf.protect()
    g.api_user = current_user.user


@bp.before_request
def refuse_unclean_text() -> None:
    """After authentication, text the boundary would change is refused, not cleaned: the caller is told."""
    fields = security.unclean_fields(request.query_string, request.get_data(cache=True) if request.is_json else b"")
    if fields:
        raise ApiError(400, "invalid_text", "control, format or unassigned characters in: " + ", ".join(fields))


def caller() -> User:
    return g.api_user


def require(*roles: Role) -> None:
    if caller().role not in roles:
        _log_denial("role")
        raise ApiError(403, "forbidden", "your role may not do this")


def scope() -> list[int] | None:
    return users.district_ids(get_session(), caller())


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi.document())


# --- members ---------------------------------------------------------------------------------


def _filter() -> roster.RosterFilter:
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
    if not raw.isdigit() or not 1 <= int(raw) <= openapi.MAX_PAGE:
        raise ApiError(400, "bad_limit", f"limit must be a whole number from 1 to {openapi.MAX_PAGE}")
    return int(raw)


@bp.get("/members")
def list_members() -> Response:
    require(*MEMBER_ROLES)
    flt, limit = _filter(), _limit()
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
        _log_denial("not found or out of scope")
        raise ApiError(404, "not_found", "no such member") from None
    return member_json(view)


@bp.get("/members/<int:member_id>")
def get_member(member_id: int) -> Response:
    require(*MEMBER_ROLES)
    return jsonify(_member_view(member_id))


@bp.get("/members/<int:member_id>/card")
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


@bp.post("/members/<int:member_id>/approve")
def approve(member_id: int) -> Response:
    require(*MEMBER_ROLES)
    return _decide(member_id, approve=True)


@bp.post("/members/<int:member_id>/reject")
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
        _log_denial("not found or out of scope")
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


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.get("/members/export")
@action_limit("export", lambda: caller().id or 0)
def export_members() -> Response:
    """The filtered roster as a streamed file; the audit event is written when the stream ends."""
    require(*MEMBER_ROLES)
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise ApiError(400, "bad_format", "format must be csv or xlsx")
    flt, user, ids = _filter(), caller(), scope()

    def finish(rows: int, complete: bool) -> None:
        with session_scope() as own:
            export.record(own, by=user, fmt=fmt, flt=flt, rows=rows, complete=complete)

    make = export.csv_stream if fmt == "csv" else export.xlsx_stream
    chunks = make(get_session(), current_app.extensions["pii"], ids, flt, finish=finish)
    mimetype = "text/csv; charset=utf-8" if fmt == "csv" else XLSX
    name = f"members-{utcnow():%Y%m%d-%H%M}.{fmt}"
    return Response(
        stream_with_context(chunks),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- places ----------------------------------------------------------------------------------


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


@bp.get("/places")
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


@bp.post("/places")
def upsert_place() -> Response:
    require(*PLACE_WRITERS)
    body, db = _place_input(), get_session()
    district = db.exec(select(District).where(District.code == body["district_code"])).first()
    allowed = scope()
    if allowed is not None and (district is None or district.id not in allowed):
        _log_denial("district out of scope")
        raise ApiError(404, "not_found", "no such district")
    if allowed is not None and "workplace_code" not in body:
        raise ApiError(403, "forbidden", "only admins create or rename districts")
    if allowed is not None and _held_elsewhere(db, body["workplace_code"], allowed):
        # Codes are unique across districts: one taken outside the caller's districts cannot be
        # theirs, and the answer is the same 404 as for any record out of scope (no oracle).
        _log_denial("place code out of scope")
        raise ApiError(404, "not_found", "no such workplace")
    if "workplace_code" in body and "kind" not in body:
        existing = db.exec(select(Workplace).where(Workplace.code == body["workplace_code"])).first()
        body["kind"] = existing.kind.value if existing else WorkplaceKind.other.value
    name = body.get("district_name", "").strip() if allowed is None else district.name  # type: ignore[union-attr]
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
