"""The OpenAPI description of the export jobs (/api/v1/exports…), part of app/web/openapi.py's document."""

from __future__ import annotations

from app.web.openapi import FILTERS, MAX_ID, Schema, _errors, _json, _nullable, _query, _ref

SCHEMAS: dict[str, Schema] = {
    "ExportJob": {
        "type": "object",
        "required": [
            "id",
            "format",
            "status",
            "rows_done",
            "rows_total",
            "created_at",
            "finished_at",
            "download_url",
        ],
        "properties": {
            "id": {"type": "integer"},
            "format": {"type": "string", "enum": ["csv", "xlsx"]},
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "rows_done": {"type": "integer", "minimum": 0},
            "rows_total": _nullable({"type": "integer", "minimum": 0}),
            "created_at": {"type": "string", "format": "date-time"},
            "finished_at": _nullable({"type": "string", "format": "date-time"}),
            "download_url": _nullable(
                {"type": "string", "description": "Signed; expires with the file (EXPORT_RETENTION_HOURS)"}
            ),
        },
    }
}


def paths() -> Schema:
    file_types = {
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
            "schema": {"type": "string", "format": "binary"}
        },
    }
    return {
        "/exports": {
            "post": {
                "operationId": "startExport",
                "summary": "Start an export job of the filtered roster (any size; prepared by the consumer)",
                "parameters": [
                    _query("format", {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"}, "File format"),
                    *FILTERS,
                ],
                "responses": {
                    "202": {
                        **_json(_ref("ExportJob"), "The job, queued (or already done in a test setup)"),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    **_errors("400", "401", "403"),
                },
            }
        },
        "/exports/{job_id}": {
            "get": {
                "operationId": "getExport",
                "summary": "One of your export jobs: status, rows done of the total, the download link when done",
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    }
                ],
                "responses": {"200": _json(_ref("ExportJob"), "The job"), **_errors("400", "401", "403", "404")},
            }
        },
        "/exports/file/{token}": {
            "get": {
                "operationId": "downloadExport",
                "summary": "A finished job's file through its signed link (audited); 404 once expired or deleted",
                "parameters": [
                    {
                        "name": "token",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,200}$"},
                    }
                ],
                "responses": {
                    "200": {"description": "The file", "content": file_types},
                    **_errors("400", "401", "403", "404"),
                },
            }
        },
    }
