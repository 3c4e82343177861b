"""The OpenAPI description of the transfer endpoints (app/web/api/transfers.py), merged by openapi.document()."""

from __future__ import annotations

from app.models import TransferStatus
from app.web.openapi import CODE_PATTERN, ERRORS, MAX_ID, MEMBER_ID, Schema, _json, _nullable, _query, _ref

TRANSFER_ID = {
    "name": "transfer_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
_TIME = {"type": "string", "format": "date-time"}

TRANSFER: Schema = {
    "type": "object",
    "required": [
        "id",
        "member_id",
        "from_district",
        "to_district",
        "to_workplace",
        "status",
        "started_by",
        "reason",
        "created_at",
        "decided_at",
        "decided_by",
        "reject_reason",
        "from_member_number",
        "to_member_number",
    ],
    "properties": {
        "id": {"type": "integer"},
        "member_id": {"type": "integer"},
        "from_district": {"type": "string", "description": "the sending district's code"},
        "to_district": {"type": "string", "description": "the receiving district's code"},
        "to_workplace": _nullable({"type": "string", "description": "the station in the receiving district"}),
        "status": {"type": "string", "enum": [s.value for s in TransferStatus]},
        "started_by": {"type": "string", "enum": ["worker", "official"]},
        "reason": _nullable({"type": "string"}),
        "created_at": _TIME,
        "decided_at": _nullable(_TIME),
        "decided_by": _nullable({"type": "string", "description": "email of the deciding official"}),
        "reject_reason": _nullable({"type": "string"}),
        "from_member_number": _nullable({"type": "string"}),
        "to_member_number": _nullable({"type": "string", "description": "given on approval"}),
    },
}

STAY: Schema = {
    "type": "object",
    "required": ["district", "member_number", "since", "until"],
    "properties": {
        "district": {"type": "string"},
        "member_number": _nullable({"type": "string"}),
        "since": _nullable(_TIME),
        "until": _nullable({**_TIME, "description": "null: the current district"}),
    },
}

SCHEMAS: Schema = {
    "Transfer": TRANSFER,
    "TransferList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref("Transfer")}},
    },
    "MemberTransfers": {
        "type": "object",
        "required": ["items", "history"],
        "properties": {
            "items": {"type": "array", "items": _ref("Transfer")},
            "history": {"type": "array", "items": _ref("Stay"), "description": "each district, oldest first"},
        },
    },
    "Stay": STAY,
    "TransferInput": {
        "type": "object",
        "required": ["to_district"],
        "additionalProperties": False,
        "properties": {
            "to_district": {"type": "string", "pattern": CODE_PATTERN, "description": "the receiving district's code"},
            "to_workplace": {"type": "string", "pattern": CODE_PATTERN, "description": "a station of that district"},
            "reason": {"type": "string", "maxLength": 500},
        },
    },
}


def _errors(*codes: str) -> dict[str, Schema]:
    return {code: ERRORS[code] for code in codes}


def paths() -> Schema:
    decided = _json(_ref("Error"), "Already decided (by whom, when and how), or the member moved meanwhile")
    reject_input = {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": r"\S"}},
    }
    return {
        "/members/{member_id}/transfers": {
            "get": {
                "operationId": "getMemberTransfers",
                "summary": "The member's transfers and the districts of its history",
                "parameters": [MEMBER_ID],
                "responses": {
                    "200": _json(_ref("MemberTransfers"), "Transfers (oldest first) and history"),
                    **_errors("400", "401", "403", "404"),
                },
            },
            "post": {
                "operationId": "requestTransfer",
                "summary": "Ask another district to take an approved member of the caller's district",
                "parameters": [MEMBER_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("TransferInput")}}},
                "responses": {
                    "201": _json(_ref("Transfer"), "Pending at the receiving district"),
                    "409": _json(_ref("Error"), "The member is not approved, or a transfer is already pending"),
                    **_errors("400", "401", "403", "404", "422"),
                },
            },
        },
        "/transfers": {
            "get": {
                "operationId": "listTransfers",
                "summary": "Transfers into the caller's districts, newest first (at most 200)",
                "parameters": [
                    _query("status", {"type": "string", "enum": [s.value for s in TransferStatus]}, "Only this status")
                ],
                "responses": {"200": _json(_ref("TransferList"), "Incoming transfers"), **_errors("400", "401", "403")},
            }
        },
        "/transfers/{transfer_id}/approve": {
            "post": {
                "operationId": "approveTransfer",
                "summary": "Approve an incoming transfer: the member moves here with a new member number",
                "parameters": [TRANSFER_ID],
                "responses": {
                    "200": _json(_ref("Transfer"), "Approved"),
                    "409": decided,
                    **_errors("400", "401", "403", "404"),
                },
            }
        },
        "/transfers/{transfer_id}/reject": {
            "post": {
                "operationId": "rejectTransfer",
                "summary": "Reject an incoming transfer with a reason; the member stays where they are",
                "parameters": [TRANSFER_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": reject_input}}},
                "responses": {
                    "200": _json(_ref("Transfer"), "Rejected"),
                    "409": decided,
                    **_errors("400", "401", "403", "404", "422"),
                },
            }
        },
    }
