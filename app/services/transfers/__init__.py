"""Transfers between districts (会员关系转接): asked once, decided exactly once by the receiving district.

An approved member asks by joining again at another district's poster (`request_by_worker`), or an
official of the member's district asks for them (`request_by_official`). Either makes one pending
`Transfer` at the receiving district; a member has at most one pending transfer (the unique
`open_member_id`). The receiving district's officials approve or reject it with a conditional
UPDATE (`status = pending` and the official's districts in its WHERE), so of two officials
deciding together exactly one wins; an official of any other district finds nothing (404).

On approval, in the same transaction, the member row keeps its id and join date and takes the new
district, station and the new district's next member number; the old number stays on the transfer
row (the history), so the old e-card is revoked (app/services/cards.py: its number belongs to no
member) and the new district's card is the member's card. A `TransferDecided` event tells the
worker after the commit (the neutral notice of app/services/tasks.py). Services flush, never commit.
"""

from app.services.transfers.errors import (
    AlreadyDecided,
    AlreadyPending,
    BadReason,
    BadTarget,
    MemberMoved,
    NotTransferable,
    TransferError,
    TransferNotFound,
)
from app.services.transfers.moves import (
    MAX_REASON,
    OFFICIAL,
    WORKER,
    approve,
    pending_of,
    reject,
    request_by_official,
    request_by_worker,
    tells_worker,
    worker_offer,
)
from app.services.transfers.views import (
    Stay,
    TransferView,
    counts_by_district,
    get,
    histories,
    history,
    incoming,
    of_member,
    pending_count,
)

__all__ = [
    "MAX_REASON",
    "OFFICIAL",
    "WORKER",
    "AlreadyDecided",
    "AlreadyPending",
    "BadReason",
    "BadTarget",
    "MemberMoved",
    "NotTransferable",
    "Stay",
    "TransferError",
    "TransferNotFound",
    "TransferView",
    "approve",
    "counts_by_district",
    "get",
    "histories",
    "history",
    "incoming",
    "of_member",
    "pending_count",
    "pending_of",
    "reject",
    "request_by_official",
    "request_by_worker",
    "tells_worker",
    "worker_offer",
]
