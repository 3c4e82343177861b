"""The web admin at /admin (admins only): places, staff accounts and their API tokens.

core.py holds the blueprint and its guard; places.py, place_import.py, staff.py and tokens.py the pages, registered
on it when imported here. Every change goes through a service that writes the audit log.
"""

from __future__ import annotations

from app.web.admin import place_import, places, staff, tokens
from app.web.admin.core import blueprint

bp = blueprint

__all__ = ["bp", "place_import", "places", "staff", "tokens"]
