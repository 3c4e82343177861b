"""Conversion monitoring (docs/security.md B6): codes sent against codes verified, over a moving hour.

Pumping sends codes nobody enters, so a low share of verified codes is the tell. Both counts
live in the limiter's store (Redis with several app servers), overall and per 7-digit number
prefix, so every process reads the same figures; a prefix is its keyed hash
(`limits.prefix_key`), never digits. When verified/sent falls below the threshold over enough
sends, an alert is raised once per window per scope: a WARNING on `scanjoin.alerts` and an
audit event, both with counters and a short hash reference only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import RateLimitItemPerSecond
from sqlmodel import Session, col, select

from app.models import AuditEvent
from app.services import audit
from app.services.limits import Limits, Rule

alerts = logging.getLogger("scanjoin.alerts")

ALERT_ACTION = "sms.conversion_alert"
OVERALL = "all"
# A moving window keeps one entry per event; the cap bounds the store's memory and the count
# saturates there, which is far above any real hour (the daily SMS budget is 2000).
COUNT_CAP = 100_000


@dataclass(frozen=True)
class Thresholds:
    """Alert when fewer than `min_percent` % of at least `min_sends` codes were verified in the window."""

    min_sends: int = 20
    min_percent: int = 50
    window_seconds: int = 3600
    grace_seconds: int = 0  # sends younger than this are not judged yet (their codes may still come)


@dataclass(frozen=True)
class Figures:
    scope: str  # "all" or "prefix"
    key: str  # "all" or the prefix's keyed hash
    sent: int
    verified: int

    @property
    def ref(self) -> str:
        """A short reference for logs and audit: the hash's head (never the digits)."""
        return self.key if self.key == OVERALL else self.key[:12]

    def low(self, thresholds: Thresholds) -> bool:
        return self.sent >= thresholds.min_sends and self.verified * 100 < self.sent * thresholds.min_percent


class Monitor:
    """Counts sends and verifications in the limiter's store; says which scopes convert too little."""

    def __init__(self, guard: Limits, thresholds: Thresholds) -> None:
        self.guard = guard  # its store and its error handling: LimiterUnavailable when the store is down
        self.thresholds = thresholds
        window = RateLimitItemPerSecond(COUNT_CAP, thresholds.window_seconds)
        self.sent_rule, self.verified_rule = Rule("conv-sent", window), Rule("conv-verified", window)
        self.alert_rule = Rule("conv-alert", RateLimitItemPerSecond(1, thresholds.window_seconds))

    def note_sent(self, prefix: str) -> None:
        self._count(self.sent_rule, prefix)

    def note_verified(self, prefix: str) -> None:
        self._count(self.verified_rule, prefix)

    def figures(self, prefix: str) -> list[Figures]:
        """This hour's figures for the whole service and for this prefix (one store round trip).

        Codes sent in the last `grace_seconds` are not judged yet: people need a minute or two
        to type them, so a crowd arriving at once (a campaign's first hour) would otherwise
        read as pumping until their codes come back.
        """
        grace = self.thresholds.grace_seconds
        if grace:  # per scope: sent in the window, sent in the grace period, verified in the window
            checks = [
                (rule, key)
                for key in (OVERALL, prefix)
                for rule in (self.sent_rule, self.sent_rule, self.verified_rule)
            ]
            sent, lately, verified, p_sent, p_lately, p_verified = self.guard.used_many(checks, [None, grace, None] * 2)
        else:
            checks = [(rule, key) for key in (OVERALL, prefix) for rule in (self.sent_rule, self.verified_rule)]
            sent, verified, p_sent, p_verified = self.guard.used_many(checks)
            lately = p_lately = 0
        return [
            Figures("all", OVERALL, sent - lately, verified),
            Figures("prefix", prefix, p_sent - p_lately, p_verified),
        ]

    def low(self, prefix: str) -> list[Figures]:
        """The scopes (overall, this prefix) whose conversion is below the threshold now."""
        return [f for f in self.figures(prefix) if f.low(self.thresholds)]

    def raise_alerts(self, session: Session, figures: Iterable[Figures]) -> list[Figures]:
        """Alert for each low scope not yet alerted in this window; returns the new alerts."""
        raised = [f for f in figures if self.guard.count(self.alert_rule, f.key)]
        for f in raised:
            alerts.warning(
                "low SMS conversion (%s %s): %d codes sent, %d verified in the last %d s",
                f.scope,
                f.ref,
                f.sent,
                f.verified,
                self.thresholds.window_seconds,
            )
            audit.record(
                session,
                ALERT_ACTION,
                target_type=f.scope,
                target_id=f.ref,
                sent=f.sent,
                verified=f.verified,
                window_seconds=self.thresholds.window_seconds,
                min_sends=self.thresholds.min_sends,
                min_percent=self.thresholds.min_percent,
            )
        return raised

    def _count(self, rule: Rule, prefix: str) -> None:
        self.guard.count_many([(rule, OVERALL), (rule, prefix)])


def recent_alerts(session: Session, *, now: datetime, within: timedelta) -> list[AuditEvent]:
    """Conversion alerts raised since `now - within`, newest first (for the staff home page)."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.action == ALERT_ACTION, col(AuditEvent.at) >= now - within)
        .order_by(col(AuditEvent.at).desc())
    )
    return list(session.exec(query))
