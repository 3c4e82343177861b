"""The district roster: filtered, scoped, keyset-paged member lists and exactly-once decisions.

`filters` parses what a list asks for, `lists` reads members (pages, every row, live changes),
`tabs` counts them, `decisions` approves and rejects, `audit_log` reads the audit trail,
`notices` finds the rows whose decision notice finally failed. Callers import this package:
`roster.list_members(...)`, `roster.approve(...)`.
"""

from app.services.roster.audit_log import AuditFilter, AuditRow, list_audit
from app.services.roster.decisions import (
    MAX_REASON,
    RowResult,
    approve,
    decide_many,
    decision_text,
    member_number,
    reject,
)
from app.services.roster.errors import (
    AlreadyDecided,
    BadCursor,
    BadFilter,
    MemberNotFound,
    ReasonRequired,
    RosterError,
)
from app.services.roster.filters import (
    DEFAULT_OVERDUE_DAYS,
    SORTS,
    RosterFilter,
    decode_cursor,
    encode_cursor,
    filter_from_args,
)
from app.services.roster.lists import (
    MAX_LIMIT,
    Changes,
    MemberView,
    Page,
    changes_since,
    current_marker,
    get_member,
    iter_members,
    list_members,
)
from app.services.roster.notices import failed_notices
from app.services.roster.tabs import counts, overdue_count

__all__ = [
    "DEFAULT_OVERDUE_DAYS",
    "MAX_LIMIT",
    "MAX_REASON",
    "SORTS",
    "AlreadyDecided",
    "AuditFilter",
    "AuditRow",
    "BadCursor",
    "BadFilter",
    "Changes",
    "MemberNotFound",
    "MemberView",
    "Page",
    "ReasonRequired",
    "RosterError",
    "RosterFilter",
    "RowResult",
    "approve",
    "changes_since",
    "counts",
    "current_marker",
    "decide_many",
    "decision_text",
    "decode_cursor",
    "encode_cursor",
    "failed_notices",
    "filter_from_args",
    "get_member",
    "iter_members",
    "list_audit",
    "list_members",
    "member_number",
    "overdue_count",
    "reject",
]
