"""The transfer errors."""

from __future__ import annotations

from datetime import datetime

from app.models import Transfer


class TransferError(Exception):
    """Base of the transfer errors."""


class TransferNotFound(TransferError):
    """No such transfer among those the caller's districts receive (or no such member in scope)."""


class NotTransferable(TransferError):
    """Only an approved member can move (`why`: "not_approved", "same_district")."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class BadTarget(TransferError):
    """The receiving district or station does not exist (or the station is of another district)."""

    def __init__(self, field_name: str) -> None:
        super().__init__(f"bad value for {field_name}")
        self.field = field_name


class BadReason(TransferError):
    """A reason longer than 500 characters."""


class AlreadyPending(TransferError):
    """The member already has a pending transfer (on `transfer`)."""

    def __init__(self, transfer: Transfer) -> None:
        super().__init__("a transfer is already pending")
        self.transfer = transfer


class AlreadyDecided(TransferError):
    """Someone decided first: by whom, when and how."""

    def __init__(self, by_email: str | None, at: datetime | None, status: str) -> None:
        super().__init__(f"already {status} by {by_email} at {at}")
        self.by_email, self.at, self.status = by_email, at, status


class MemberMoved(TransferError):
    """The member is no longer an approved member of the sending district (nothing was changed)."""
