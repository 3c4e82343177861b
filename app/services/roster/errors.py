"""The roster's domain errors."""

from __future__ import annotations

from datetime import datetime


class RosterError(Exception):
    """Base of the roster's domain errors."""


class BadCursor(RosterError):
    """The cursor is not one this service made (or was made for another sort)."""


class BadFilter(RosterError):
    def __init__(self, field_name: str) -> None:
        super().__init__(f"bad value for {field_name}")
        self.field = field_name


class MemberNotFound(RosterError):
    """No such member in the caller's scope."""


class ReasonRequired(RosterError):
    """A rejection needs a reason of 1 to 500 characters."""


class AlreadyDecided(RosterError):
    """Someone decided first; says who and when."""

    def __init__(self, by_email: str | None, at: datetime | None, status: str | None = None) -> None:
        super().__init__(f"already decided by {by_email} at {at}")
        self.by_email = by_email
        self.at = at
        self.status = status
