"""The admin blueprint: admins only, a limit on changes per admin, shared helpers of its pages."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from flask_login import current_user

from app.extensions import limiter, login_manager
from app.models import Role
from app.web.access import deny

# Named `blueprint`, not `bp`: only the package (app/web/admin/__init__.py) may have a `bp`.
blueprint = Blueprint("admin", "app.web.admin", url_prefix="/admin")

# Project choice: an admin clicking through pages never comes near it; a script or a stolen
# session changing accounts or places in bulk is slowed (keyed by account, then by address).
CHANGE_LIMIT = "60 per minute"


def _admin_key() -> str:
    return f"admin:{current_user.user.id}" if current_user.is_authenticated else "admin-anonymous"


limiter.shared_limit(CHANGE_LIMIT, "admin-changes", key_func=_admin_key, methods=["POST"])(blueprint)


@blueprint.before_request
def admins_only() -> ResponseReturnValue | None:
    """Signed in (both steps) as an admin, else the sign-in page or 403."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.user.role is not Role.admin:
        deny(403, "role")
    return None


def setup_max_age() -> int:
    return int(current_app.config["STAFF_SETUP_MAX_AGE_SECONDS"])
