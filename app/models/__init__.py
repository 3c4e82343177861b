"""Tables and input models, one package (every name is importable from `app.models`).

Times are timezone-aware UTC (`utcnow()`); SQLModel's UTCDateTime keeps them so on SQLite too. Names and
phones are never stored in clear: `*_enc` columns hold AES-256-GCM ciphertext (app/services/crypto.py) and
`phone_index` an HMAC (blind index) used for lookups and uniqueness.

* `core`: places, members, join attempts, staff, audit, tokens, statistics, status checks.
* `outbox`: what the service owes others: the SMS outbox, webhooks, group robots.
* `lifecycle`: membership after the application: transfers, questions, appeals, send-backs.
* `counts`: counters the database keeps itself (triggers), read instead of counting rows.
"""

from __future__ import annotations

from app.models.core import (
    ApiToken,
    AuditEvent,
    CodeState,
    District,
    JoinAttempt,
    Member,
    MemberSource,
    MemberStatus,
    PlaceKind,
    PlaceStat,
    Platform,
    QrState,
    RecoveryCode,
    Role,
    SmsOptOut,
    StatusCheck,
    User,
    UserDistrict,
    Workplace,
    WorkplaceKind,
    enum_column,
    utcnow,
)
from app.models.counts import DistrictCount
from app.models.lifecycle import (
    Appeal,
    EscalationReturn,
    MemberQuestion,
    Transfer,
    TransferStatus,
)
from app.models.outbox import (
    ChatRobot,
    Delivery,
    ExportJob,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "ApiToken",
    "Appeal",
    "AuditEvent",
    "ChatRobot",
    "CodeState",
    "Delivery",
    "DistrictCount",
    "District",
    "EscalationReturn",
    "ExportJob",
    "JoinAttempt",
    "Member",
    "MemberQuestion",
    "MemberSource",
    "MemberStatus",
    "PlaceKind",
    "PlaceStat",
    "Platform",
    "QrState",
    "RecoveryCode",
    "Role",
    "SmsOptOut",
    "StatusCheck",
    "Transfer",
    "TransferStatus",
    "User",
    "UserDistrict",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workplace",
    "WorkplaceKind",
    "enum_column",
    "utcnow",
]
