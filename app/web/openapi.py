"""The OpenAPI 3.1 description of /api/v1 (served at /api/v1/openapi.json; the tests hold every response to it)."""

from __future__ import annotations

from typing import Any

from app.models import MemberStatus, Platform, WorkplaceKind
from app.web import MAX_DB_ID

Schema = dict[str, Any]

MAX_PAGE = 200
MAX_ID = MAX_DB_ID  # what an integer column holds on SQLite and PostgreSQL alike
DEFAULT_PAGE = 50
CODE_PATTERN = "^[A-Za-z0-9_-]{1,32}$"
CURSOR_PATTERN = "^[A-Za-z0-9_-]{1,512}$"  # unpadded base64url, as the API writes next_cursor


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS: dict[str, Schema] = {
    "400": _json(
        _ref("Error"),
        "Malformed request (bad query value, cursor or JSON; text with control, format or unassigned characters)",
    ),
    "401": {
        **_json(_ref("Error"), "No token, or a bad, revoked, expired or inactive one"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": _json(_ref("Error"), "The role may not do this (or a cookie request failed its CSRF check)"),
    "404": _json(_ref("Error"), "No such record in the caller's districts"),
    "422": _json(_ref("Error"), "Well-formed but invalid input"),
}


TOO_MANY: Schema = {
    **_json(
        _ref("Error"),
        "Too many calls for this token (API_RATE_LIMIT), or too many refused calls from this "
        "address (API_AUTH_FAILURE_LIMIT); wait Retry-After seconds",
    ),
    "headers": {
        "Retry-After": {
            "required": True,
            "description": "Seconds to wait before the next call",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def _errors(*codes: str) -> dict[str, Schema]:
    return {code: ERRORS[code] for code in codes}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


FILTERS = [
    _query("status", {"type": "string", "enum": [s.value for s in MemberStatus]}, "Only this status"),
    _query("workplace", {"type": "string", "pattern": CODE_PATTERN}, "Only this workplace (its code)"),
    _query("platform", {"type": "string", "enum": [p.value for p in Platform]}, "Only this platform"),
    _query(
        "q",
        {"type": "string", "maxLength": 100},
        "Search: a whole name (spaces and case ignored; no partial names), the phone's last four digits "
        "or a whole phone number",
    ),
    _query("since", {"type": "string", "format": "date-time"}, "Applied at or after this time (with offset)"),
]
MEMBER_ID = {
    "name": "member_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}

MEMBER: Schema = {
    "type": "object",
    "required": [
        "id",
        "name",
        "phone",
        "platform",
        "workplace",
        "workplace_name",
        "district",
        "status",
        "member_number",
        "created_at",
        "decided_at",
        "decided_by",
        "reject_reason",
        "age_days",
        "overdue",
    ],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "phone": {"type": "string", "description": "E.164"},
        "platform": {"type": "string", "enum": [p.value for p in Platform]},
        "workplace": _nullable({"type": "string"}),
        "workplace_name": _nullable({"type": "string"}),
        "district": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in MemberStatus]},
        "member_number": _nullable({"type": "string"}),
        "created_at": {"type": "string", "format": "date-time"},
        "decided_at": _nullable({"type": "string", "format": "date-time"}),
        "decided_by": _nullable({"type": "string", "description": "email of the deciding official"}),
        "reject_reason": _nullable({"type": "string"}),
        "age_days": {"type": "integer", "minimum": 0},
        "overdue": {"type": "boolean"},
    },
}

PLACE: Schema = {
    "type": "object",
    "required": ["code", "name", "kind", "workplace_kind", "district", "join_url", "qr_version"],
    "properties": {
        "code": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["district", "workplace"]},
        "workplace_kind": _nullable({"type": "string", "enum": [k.value for k in WorkplaceKind]}),
        "district": {"type": "string", "description": "the district's code (its own for a district)"},
        "join_url": {"type": "string"},
        "qr_version": {"type": "integer"},
    },
}

PLACE_INPUT: Schema = {
    "type": "object",
    "description": "A district (district_code, district_name) or a workplace in it (district_code, "
    "workplace_code, workplace_name, kind). district_name is required when the district does not "
    "exist yet (422 without it); workplace_name when the workplace is new or renamed (422 without it).",
    "required": ["district_code"],
    "properties": {
        "district_code": {"type": "string", "pattern": CODE_PATTERN},
        "district_name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": r"\S",
            "description": "required for a new district (admins only; 422 without it): the "
            "schema cannot say which districts exist",
        },
        "workplace_code": {"type": "string", "pattern": CODE_PATTERN},
        "workplace_name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
        "kind": {"type": "string", "enum": [k.value for k in WorkplaceKind]},
    },
    "additionalProperties": False,
    "dependentRequired": {"workplace_code": ["workplace_name"], "kind": ["workplace_code"]},
}

COMPONENTS: Schema = {
    "securitySchemes": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `flask --app wsgi users token EMAIL`",
        },
    },
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
        },
        "Conflict": {
            "type": "object",
            "required": ["error", "message", "decided_by", "decided_at", "status"],
            "properties": {
                "error": {"const": "already_decided"},
                "message": {"type": "string"},
                "decided_by": _nullable({"type": "string"}),
                "decided_at": _nullable({"type": "string", "format": "date-time"}),
                "status": _nullable({"type": "string", "enum": [s.value for s in MemberStatus]}),
            },
        },
        "Member": MEMBER,
        "Card": {
            "type": "object",
            "required": ["url", "member_number", "masked_name", "district", "valid_until"],
            "properties": {
                "url": {"type": "string", "format": "uri", "description": "PUBLIC_BASE_URL/C/<signed token>"},
                "member_number": {"type": "string"},
                "masked_name": {"type": "string", "description": "First and last character only, e.g. 陈*明"},
                "district": {"type": "string"},
                "valid_until": {"type": "string", "format": "date"},
            },
        },
        "MemberPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref("Member")},
                "next_cursor": _nullable({"type": "string"}),
            },
        },
        "Place": PLACE,
        "PlaceList": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": _ref("Place")}},
        },
        "PlaceInput": PLACE_INPUT,
        "RejectInput": {
            "type": "object",
            "required": ["reason"],
            "additionalProperties": False,
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": r"\S"}},
        },
    },
}


# Stateful clients (and schemathesis's stateful run) go from a page to its members and on.
_FIRST_ID = {"member_id": "$response.body#/items/0/id"}
PAGE_LINKS: Schema = {
    "GetFirstMember": {"operationId": "getMember", "parameters": _FIRST_ID},
    "ApproveFirstMember": {"operationId": "approveMember", "parameters": _FIRST_ID},
    "RejectFirstMember": {"operationId": "rejectMember", "parameters": _FIRST_ID},
    "NextPage": {"operationId": "listMembers", "parameters": {"cursor": "$response.body#/next_cursor"}},
}


def _members_paths() -> Schema:
    page_params = [
        _query(
            "cursor",
            {"type": "string", "pattern": CURSOR_PATTERN},
            "Opaque: the next_cursor of the previous page, as it came. Any other value answers 400 "
            "bad_cursor, even one of the right shape",
        ),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}, "Page size"),
    ]
    decided = {"409": _json(_ref("Conflict"), "Already decided: by whom and when")}
    return {
        "/members": {
            "get": {
                "operationId": "listMembers",
                "summary": "The roster, newest application first, keyset-paged",
                "parameters": FILTERS + page_params,
                "responses": {
                    "200": {**_json(_ref("MemberPage"), "One page"), "links": PAGE_LINKS},
                    **_errors("400", "401", "403"),
                },
            }
        },
        "/members/export": {
            "get": {
                "operationId": "exportMembers",
                "summary": "The filtered roster as CSV or Excel (streamed; audited); a filter of more than "
                "EXPORT_STREAM_MAX_ROWS rows is 422 export_too_large (prepared as a job on /roster/exports/)",
                "parameters": [
                    _query("format", {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"}, "File format"),
                    *FILTERS,
                ],
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    **_errors("400", "401", "403", "422"),
                },
            }
        },
        "/members/{member_id}": {
            "get": {
                "operationId": "getMember",
                "summary": "One member",
                "parameters": [MEMBER_ID],
                "responses": {"200": _json(_ref("Member"), "The member"), **_errors("400", "401", "403", "404")},
            }
        },
        "/members/{member_id}/approve": {
            "post": {
                "operationId": "approveMember",
                "summary": "Approve a pending application (assigns the member number)",
                "parameters": [MEMBER_ID],
                "responses": {
                    "200": _json(_ref("Member"), "Approved"),
                    **decided,
                    **_errors("400", "401", "403", "404"),
                },
            }
        },
        "/members/{member_id}/card": {
            "get": {
                "operationId": "getMemberCard",
                "summary": "The approved member's current e-card: its URL (for the QR) and what it shows",
                "parameters": [MEMBER_ID],
                "responses": {
                    "200": _json(_ref("Card"), "The current card"),
                    "409": _json(_ref("Error"), "The member is not approved, so has no card"),
                    **_errors("400", "401", "403", "404"),
                },
            }
        },
        "/members/{member_id}/reject": {
            "post": {
                "operationId": "rejectMember",
                "summary": "Reject a pending application with a reason",
                "parameters": [MEMBER_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RejectInput")}}},
                "responses": {
                    "200": _json(_ref("Member"), "Rejected"),
                    **decided,
                    **_errors("400", "401", "403", "404", "422"),
                },
            }
        },
    }


def _places_paths() -> Schema:
    return {
        "/places": {
            "get": {
                "operationId": "listPlaces",
                "summary": "Districts and workplaces in the caller's districts",
                "parameters": [_query("district", {"type": "string", "pattern": CODE_PATTERN}, "Only this district")],
                "responses": {"200": _json(_ref("PlaceList"), "Every place in scope"), **_errors("400", "401")},
            },
            "post": {
                "operationId": "upsertPlace",
                "summary": "Create or update a district (admins) or a workplace (admins, organizers of the district)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("PlaceInput")}}},
                "responses": {
                    "200": _json(_ref("Place"), "Updated"),
                    "201": _json(_ref("Place"), "Created"),
                    **_errors("400", "401", "403", "404", "422"),
                },
            },
        }
    }


UNAVAILABLE: Schema = _json(_ref("Error"), "The limit store (Redis) cannot be reached: limits fail closed; retry later")


def _rate_limited(paths: Schema) -> Schema:
    """Every operation may answer 429 (the limits count per token and per address, not per path)
    and 503 (a limit that cannot be counted is not passed)."""
    for operations in paths.values():
        for operation in operations.values():
            operation["responses"]["429"] = TOO_MANY
            operation["responses"]["503"] = UNAVAILABLE
    return paths


def document() -> Schema:
    """The whole description; paths are relative to the server URL /api/v1."""
    from app.web import (
        openapi_exports,  # it builds on this module's pieces
        openapi_transfers,  # it builds on this module's helpers
    )

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ScanJoin API",
            "version": "1.0.0",
            "description": "Roster and places for integrations. Every call needs a bearer token; "
            "records outside the token owner's districts answer 404.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": _rate_limited(
            {**_members_paths(), **openapi_exports.paths(), **_places_paths(), **openapi_transfers.paths()}
        ),
        "components": {
            **COMPONENTS,
            "schemas": {**COMPONENTS["schemas"], **openapi_transfers.SCHEMAS, **openapi_exports.SCHEMAS},
        },
    }
