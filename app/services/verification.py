"""SMS codes for whatever proves a phone (`CodeState`: a join attempt, a status check): issue,
resend, check. Codes are kept only as an HMAC.

The owner's row holds the counters, so they survive across requests and processes; the view
commits after every check, right or wrong, so a wrong try is never forgotten.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from app.models import CodeState
from app.services import crypto, metrics, numbers
from app.services.limits import FAILURES, Limits, PhoneLocked
from app.services.sms import JOIN_CODE, Message, SmsError, SmsGateway, render

CODE_DIGITS = 6
# B3: a first code and one resend per join attempt (China's carriers hold a third text).
MAX_SENDS_PER_ATTEMPT = 2


class CodeError(Exception):
    """Base for every reason a code is not accepted."""


class CodeExpired(CodeError):
    """The code is older than its time to live, or none was sent."""


class CodeLocked(CodeError):
    """Too many wrong tries on this code: a new one is needed."""


class CodeWrong(CodeError):
    def __init__(self, tries_left: int) -> None:
        super().__init__(f"wrong code, {tries_left} tries left")
        self.tries_left = tries_left


class TooManySends(CodeError):
    """This attempt already had its code and its one resend."""


class ResendTooSoon(CodeError):
    def __init__(self, wait_seconds: int) -> None:
        super().__init__(f"wait {wait_seconds} s")
        self.wait_seconds = wait_seconds


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: str, attempt_id: str, code: str) -> str:
    return hmac.new(key.encode(), f"otp\x00{attempt_id}\x00{code}".encode(), hashlib.sha256).hexdigest()


def code_text(code: str, locale: str) -> str:
    """The SMS: neutral wording that names no union (the text lives in app/services/sms/messages.py)."""
    return render(Message(JOIN_CODE, {"code": code}, locale))


def issue(attempt: CodeState, *, gateway: SmsGateway, key: str, now: datetime, ttl: int) -> str | None:
    """Start a fresh code; return it for sending after the commit (None when the provider makes it).

    The phone's count of wrong codes lives in the limiter store and is not touched here: a new
    code never resets it (SP 800-63B-4 3.1.3.2).
    """
    if attempt.sends >= MAX_SENDS_PER_ATTEMPT:
        raise TooManySends()
    attempt.code_sent_at = now
    attempt.code_expires_at = now + timedelta(seconds=ttl)
    attempt.code_tries = 0
    attempt.sends += 1
    attempt.code_enc = None  # the caller seals the new code here (phone_proof.issue)
    if gateway.provides_codes:
        attempt.code_hash = None
        return None
    code = new_code()
    attempt.code_hash = code_hash(key, attempt.id, code)
    return code


def voice_code(attempt: CodeState, *, gateway: SmsGateway, now: datetime, slow: int) -> bool:
    """Whether the worker may ask for the current code again by voice call: the gateway has voice,
    the code is live and its owner may still have a send, and its SMS failed for a reason a call
    can help with, or did not bring the right code within `slow` seconds."""
    if not gateway.voice or attempt.verified_at is not None or attempt.sends >= MAX_SENDS_PER_ATTEMPT:
        return False
    if attempt.code_expires_at is None or attempt.code_expires_at <= now or attempt.code_sent_at is None:
        return False
    if not (attempt.code_enc if not gateway.provides_codes else attempt.code_hash is None):
        return False  # no code to read out (sealed under an older key, or a provider's code gone)
    if attempt.send_error is not None:
        return attempt.send_error in ("unavailable", "rate_limited")  # not a bad number, not an opt-out
    return now >= attempt.code_sent_at + timedelta(seconds=slow)


def resend_wait(attempt: CodeState, *, now: datetime, cooldown: int) -> int:
    """Seconds left before another code may be sent (0 when it may)."""
    if attempt.code_sent_at is None:
        return 0
    left = attempt.code_sent_at + timedelta(seconds=cooldown) - now
    return max(0, int(left.total_seconds() + 0.999))


def deliver(
    gateway: SmsGateway, *, to: str, code: str | None, locale: str, kind: str = JOIN_CODE, channel: str = "sms"
) -> None:
    """Send the code (after the commit) as a message of `kind` (a join or status-check code), by SMS
    or (`channel` "voice") read out in a call. Raises SmsError."""
    provider = type(gateway).__name__  # a class name: the metrics' provider label
    try:
        if gateway.provides_codes:
            language = "en" if locale.startswith("en") else "zh"
            gateway.start_verification(to, language, "call" if channel == "voice" else "sms")
        elif channel == "voice":
            assert code is not None
            gateway.call(to, Message(kind, {"code": code}, locale))
        else:
            assert code is not None
            gateway.send(to, Message(kind, {"code": code}, locale))
    except SmsError as exc:
        metrics.code_failed(provider, exc.kind)
        raise
    metrics.code_sent(provider)


def check(
    attempt: CodeState, code: str, *, phone: str, gateway: SmsGateway, key: str, now: datetime, max_tries: int
) -> None:
    """Accept the code once, or raise a CodeError. Counts the try before judging it."""
    if attempt.code_expires_at is None or now >= attempt.code_expires_at:
        raise CodeExpired()
    if attempt.code_tries >= max_tries:
        raise CodeLocked()
    attempt.code_tries += 1
    if not _matches(attempt, code, phone=phone, gateway=gateway, key=key):
        left = max_tries - attempt.code_tries
        if left <= 0:
            raise CodeLocked()
        raise CodeWrong(left)
    attempt.verified_at = now
    attempt.code_hash = None
    attempt.code_enc = None
    attempt.code_expires_at = None


def check_guarded(
    attempt: CodeState,
    code: str,
    *,
    guard: Limits,
    phone: str,
    gateway: SmsGateway,
    key: str,
    now: datetime,
    max_tries: int,
) -> None:
    """`check` behind the phone's lock and backoff; every wrong try counts against the phone.

    Raises PhoneLocked / CheckDelayed (nothing tried), a CodeError, or LimiterUnavailable.
    """
    guard.ensure_may_check(attempt.phone_index)
    tries = attempt.code_tries
    try:
        check(attempt, code, phone=phone, gateway=gateway, key=key, now=now, max_tries=max_tries)
    except (CodeWrong, CodeLocked):
        if attempt.code_tries > tries and guard.record_failure(attempt.phone_index) >= FAILURES.limit.amount:
            guard.ensure_not_locked(attempt.phone_index)
            raise PhoneLocked("phone", 24 * 3600) from None
        raise


def _matches(attempt: CodeState, code: str, *, phone: str, gateway: SmsGateway, key: str) -> bool:
    code = numbers.typed(code)  # "１２３４５６" from a full-width input method is 123456
    if len(code) != CODE_DIGITS or not numbers.digits(code):
        return False
    if gateway.provides_codes:
        return gateway.check_verification(phone, code)
    return attempt.code_hash is not None and crypto.equal(attempt.code_hash, code_hash(key, attempt.id, code))
