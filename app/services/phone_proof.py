"""Proving a phone by SMS code, for the join and the status flows alike (built once in create_app:
`app.extensions["phone_proof"]`).

* `challenge_needed`: whether the next send must wait for the human check (docs/security.md B5;
  `send` raises `NeedsHumanCheck`), from the conversion monitor (B6) and the limits.
* `reserve` counts one SMS against every limit (raises `Refused` with the reason and Retry-After);
  `issue` starts a code on the owner (a `CodeState`: JoinAttempt or StatusCheck) and records a
  `CodeRequested` event, so the code goes out only after the commit (app/services/events.py);
  `send` is both.
* The `CodeRequested` event's handler queues the code (app/services/tasks.py): the consumer sends
  it if it is still current, and writes a failure to a join attempt.
* `call` reads the owner's current code (the same one, kept sealed on the owner) out in a voice
  call, counted as a resend; `voice_offered` says when the code page offers it.
* `check` judges a code on either owner (raises like app/services/verification.py);
  `note_verified` counts a right code for the conversion monitor.

The one `Limits` object of the app is `proof.limits`. No Flask request here: views pass the
client's address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from app.models import CodeState, StatusCheck, utcnow
from app.services import conversion, events, limits, sms, status, verification
from app.services.crypto import PiiCipher

log = logging.getLogger(__name__)
VOICE_AFTER_SECONDS = 60  # an SMS that brought no right code this long after it went is "slow"


class Refused(Exception):
    """A limit stopped the send: `reason` (a limit's scope, "locked", "attempt" or "unavailable"),
    the HTTP status to answer and the Retry-After seconds."""

    def __init__(self, reason: str, status: int, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after


class NotOffered(Exception):
    """No voice call is offered now (see `PhoneProof.voice_offered`): nothing was counted or sent."""


class NeedsHumanCheck(Exception):
    """The send waits for the human check (nothing was counted or sent)."""


def refusal(exc: limits.LimitExceeded | limits.LimiterUnavailable) -> Refused:
    if isinstance(exc, limits.LimiterUnavailable):
        return Refused("unavailable", 503)
    return Refused("locked" if isinstance(exc, limits.PhoneLocked) else exc.scope, 429, exc.retry_after)


@dataclass(frozen=True)
class Settings:
    key: str
    ttl: int
    max_tries: int
    near_limit_percent: int
    thresholds: conversion.Thresholds


class PhoneProof:
    def __init__(
        self,
        guard: limits.Limits,
        pii: PiiCipher,
        gateway: Callable[[], sms.SmsGateway],
        settings: Settings,
    ) -> None:
        self.limits, self.pii = guard, pii
        self.settings, self._gateway = settings, gateway

    @property
    def gateway(self) -> sms.SmsGateway:
        """The app's SMS gateway (looked up each time: it may be replaced, e.g. in tests)."""
        return self._gateway()

    def monitor(self) -> conversion.Monitor:
        return conversion.Monitor(self.limits, self.settings.thresholds)

    # -- the human check (B5) ---------------------------------------------------------------

    def challenge_needed(self, db: Session, phone: str, *, ip: str, poster: str | None) -> bool:
        """Whether the next send to `phone` must wait for the human check.

        A send the limits refuse anyway is let through to be refused: no picture before a "no".
        False when the store does not answer: the send's own limits meet the same store and
        refuse it (503, fail closed).
        """
        try:
            return self._challenge_needed(db, phone, ip, poster)
        except limits.LimiterUnavailable:
            return False

    def _challenge_needed(self, db: Session, phone: str, ip: str, poster: str | None) -> bool:
        percent = self.settings.near_limit_percent
        prefix, watch = limits.prefix_key(self.pii, phone), self.monitor()
        low = watch.low(prefix)
        if not low and (percent >= 100 or not self.limits.near_budget(ip=ip, poster=poster, percent=percent)):
            return False  # the usual case: a few reads, nothing written
        if self.limits.send_refused(phone=limits.phone_key(self.pii, phone), prefix=prefix, ip=ip, poster=poster):
            return False
        watch.raise_alerts(db, low)  # usually raised already by note_sent; the caller commits
        return True

    # -- sending ----------------------------------------------------------------------------

    def send(self, db: Session, owner: CodeState, phone: str, *, flow: str, ip: str, poster: str | None = None) -> None:
        """The human check if needed (NeedsHumanCheck), then `reserve` and `issue`. Raises Refused."""
        if self.challenge_needed(db, phone, ip=ip, poster=poster):
            raise NeedsHumanCheck()
        self.reserve(db, phone, ip=ip, owner=owner, poster=poster)
        self.issue(db, owner, phone, flow=flow)

    def reserve(
        self, db: Session, phone: str, *, ip: str, owner: CodeState | None = None, poster: str | None = None
    ) -> None:
        """Count one SMS against the owner's, the phone's, the prefix's, the IP's, the poster's and
        the global limits (outstanding codes first: docs/security.md B4)."""
        if owner is not None and owner.sends >= verification.MAX_SENDS_PER_ATTEMPT:
            raise Refused("attempt", 429)
        try:
            self.limits.reserve_send(
                phone=limits.phone_key(self.pii, phone),
                prefix=limits.prefix_key(self.pii, phone),
                ip=ip,
                poster=poster,
            )
            self.note_sent(db, phone)  # before the owner changes: a refusal here leaves it as it was
        except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
            raise refusal(exc) from None

    def issue(self, db: Session, owner: CodeState, phone: str, *, flow: str) -> None:
        """A fresh code on `owner`; it goes out after the commit (a `CodeRequested` event)."""
        code = verification.issue(
            owner, gateway=self.gateway, key=self.settings.key, now=utcnow(), ttl=self.settings.ttl
        )
        owner.send_error = None  # this code's send reports for itself
        owner.code_enc = None if code is None else self.pii.encrypt(code)  # for a voice call
        db.add(owner)
        events.record(db, events.CodeRequested(flow, owner.id, phone, code, owner.locale))

    # -- the same code by voice call --------------------------------------------------------

    def voice_offered(self, owner: CodeState) -> bool:
        """Whether the code page offers to read the current code out in a call (its SMS failed, or
        no right code came back within VOICE_AFTER_SECONDS)."""
        return verification.voice_code(owner, gateway=self.gateway, now=utcnow(), slow=VOICE_AFTER_SECONDS)

    def call(self, db: Session, owner: CodeState, phone: str, *, flow: str, ip: str, poster: str | None = None) -> None:
        """The owner's current code, the same one, read out in a call after the commit. It counts as
        a resend against every limit (`reserve`: Refused); NotOffered when no call is offered now."""
        if not self.voice_offered(owner):
            raise NotOffered()
        code = None
        if owner.code_enc is not None:
            try:
                code = self.pii.decrypt(owner.code_enc)
            except ValueError:  # sealed under a key since removed
                raise NotOffered() from None
        self.reserve(db, phone, ip=ip, owner=owner, poster=poster)
        owner.sends += 1
        owner.code_sent_at = utcnow()  # the resend's wait counts from the call
        owner.send_error = None  # the call reports for itself
        db.add(owner)
        events.record(db, events.CodeRequested(flow, owner.id, phone, code, owner.locale, channel="voice"))

    def note_sent(self, db: Session, phone: str) -> None:
        """Count a code about to be sent (overall and for its prefix); alert if conversion is now low."""
        prefix = limits.prefix_key(self.pii, phone)
        watch = self.monitor()
        watch.note_sent(prefix)
        watch.raise_alerts(db, watch.low(prefix))

    def note_verified(self, proven: CodeState, *, ip: str, poster: str | None = None) -> None:
        """Count a right code: for the conversion monitor, and as the codes it took earned back by
        the address, poster and prefix (their outstanding codes). A store failure must not undo
        it: only logged (by Limits)."""
        try:
            prefix = limits.prefix_key(self.pii, self.pii.decrypt(proven.phone_enc))
            self.monitor().note_verified(prefix)
            self.limits.note_verified(ip=ip, poster=poster, prefix=prefix, sends=proven.sends)
        except limits.LimiterUnavailable:
            pass  # the figures will read low, which errs towards the check

    # -- checking ---------------------------------------------------------------------------

    def check(self, db: Session, owner: CodeState, code: str) -> None:
        """Accept the code once or raise (verification.CodeError, limits.LimitExceeded /
        CheckDelayed / LimiterUnavailable, SmsError). The try is counted on the owner either way
        (the caller commits), behind the phone's shared lock and backoff; a status check also
        behind its table's daily count of wrong codes."""
        phone, now, key, tries = self.pii.decrypt(owner.phone_enc), utcnow(), self.settings.key, self.settings.max_tries
        if isinstance(owner, StatusCheck):
            status.check_code(
                db, owner, code, guard=self.limits, phone=phone, gateway=self.gateway, key=key, now=now, max_tries=tries
            )
            return
        try:
            verification.check_guarded(
                owner, code, guard=self.limits, phone=phone, gateway=self.gateway, key=key, now=now, max_tries=tries
            )
        finally:
            db.add(owner)
