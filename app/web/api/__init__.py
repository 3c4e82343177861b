"""JSON API for integrations at /api/v1: bearer tokens, district scope, JSON errors only.

core.py holds the blueprint, authentication and the JSON errors; members.py, exports.py,
places.py and transfers.py the endpoints, registered on it when imported here.
"""

from __future__ import annotations

from app.web.api import exports, members, places, transfers
from app.web.api.core import ApiError, blueprint, error_response, http_error_response

bp = blueprint

__all__ = ["ApiError", "bp", "error_response", "exports", "http_error_response", "members", "places", "transfers"]
