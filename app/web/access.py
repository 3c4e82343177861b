"""Who may do what: role checks for views and the district scope every query filters by."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, request
from flask_login import current_user, login_required

from app.db import get_session
from app.models import Role, User
from app.services import users

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


def role_required(*roles: Role) -> Callable[[F], F]:
    """Signed in with one of `roles` (admin always passes), else 403."""

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.user.role is not Role.admin and current_user.user.role not in roles:
                deny(403, "role")
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def deny(status: int, why: str) -> None:
    """Log a refusal (ids only, no personal data) and abort with `status`."""
    user = current_user.user if current_user.is_authenticated else None
    log.warning(
        "denied %s: %s %s by user %s (%s)",
        why,
        request.method,
        request.endpoint,
        user and user.id,
        user and user.role.value,
    )
    abort(status)


def staff() -> User:
    """The signed-in staff user (call only behind role_required or login_required)."""
    return current_user.user


def scope() -> list[int] | None:
    """District ids the signed-in user may see; None means every district (admin)."""
    return users.district_ids(get_session(), staff())
