"""The limits' policy: which limits there are, their numbers, and the decisions on them.

Who may be sent a code, and how long a phone that keeps guessing wrong must wait. Every limit
is a moving window on Flask-Limiter's strategy (counted by `store.WindowStore`), so all
workers share one count. A phone is passed as its blind index (`PiiCipher.index`) and a number
prefix as a keyed hash; the store hashes every name again before it reaches Redis. When the
store cannot be reached every call raises `LimiterUnavailable` (fail closed). The numbers are
the project choices of docs/security.md A6/A7/B3/B4.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable

from limits import RateLimitItemPerSecond, parse
from limits.strategies import RateLimiter

from app.services import metrics
from app.services.crypto import PiiCipher
from app.services.limits.store import LimiterUnavailable, Rule, WindowStore

log = logging.getLogger(__name__)
alerts = logging.getLogger("scanjoin.alerts")

PREFIX_DIGITS = 4  # a prefix is the number without its last four digits: 7 digits for +86 (B4)


# B3: one code plus one resend per code lifetime (China's carriers reject a third identical
# text), at most 4 texts a day to any phone.
PHONE_SENDS = (Rule("phone", parse("2 per 10 minutes")), Rule("phone", parse("4 per day")))
# B4: a station's riders share one address (its Wi-Fi, or a carrier's NAT) and one poster, so
# what an address, a poster or a number prefix may have is *outstanding* codes: sends minus
# verified codes in the same moving hour (`OUTSTANDING`). A drive whose riders enter their codes
# earns its budget back; pumping (codes nobody enters) stops at the bound. The hard ceilings
# below only cap a busy hour.
IP_SENDS = (Rule("ip", parse("300 per hour")),)
PREFIX_SENDS = (Rule("prefix", parse("300 per hour")),)
POSTER_STARTS = (Rule("poster", parse("300 per hour")),)
# Sends not yet verified that one address, poster or number prefix may have at once (per hour).
OUTSTANDING = {"ip": 10, "poster": 20, "prefix": 20}
OUTSTANDING_WINDOW = 3600
_TALLY = RateLimitItemPerSecond(100_000, OUTSTANDING_WINDOW)  # a count, never full in an hour
SENT = {scope: Rule(f"{scope}-sent", _TALLY) for scope in OUTSTANDING}
VERIFIED = {scope: Rule(f"{scope}-verified", _TALLY) for scope in OUTSTANDING}
# C1/B4: tampered or made-up poster tokens from one address (enumeration).
BAD_TOKENS = Rule("bad-token", parse("20 per minute"))
# A6: 10 wrong codes per phone in a rolling day, then the phone is locked for a day.
FAILURES = Rule("failures", parse("10 per day"))
LOCK = Rule("lock", parse("1 per day"))
# A7: after 3 failures, wait 30 s before the next try, doubling up to an hour.
DELAY_AFTER, DELAY_FIRST, DELAY_CAP = 3, 30, 3600
BUDGET_ALERT = Rule("budget-alert", parse("1 per hour"))
# B5: the human check. Pictures drawn and wrong answers per client address; each picture may
# be answered once (its nonce is spent here, so a replay fails on every worker).
CHALLENGE_IMAGES = Rule("challenge-image", parse("60 per hour"))
CHALLENGE_FAILS = Rule("challenge-fail", parse("10 per hour"))
CHALLENGE_ANSWER = Rule("challenge-answer", parse("1 per hour"))


class LimitExceeded(Exception):
    """A limit is used up; `retry_after` is in whole seconds."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"{scope} limit reached, retry after {retry_after} s")
        self.scope = scope
        self.retry_after = retry_after


class PhoneLocked(LimitExceeded):
    """Too many wrong codes for this phone: no code is sent or checked until the lock ends."""


class CheckDelayed(LimitExceeded):
    """Recent wrong codes: the next try must wait."""


def phone_key(pii: PiiCipher, e164: str) -> str:
    return pii.index(e164)


def prefix_key(pii: PiiCipher, e164: str) -> str:
    return pii.index(e164[:-PREFIX_DIGITS], purpose="prefix")


@functools.lru_cache(maxsize=8192)  # parsing an IPv6 address costs tens of µs; a crowd repeats few
def ip_key(address: str | None) -> str:
    """An IPv4 address, or the /64 of an IPv6 one (one subscriber usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def poster_key(token: str) -> str:
    return token.upper()  # the route takes either case


def delay_after(failures: int) -> int:
    """Seconds to wait before the next try after `failures` wrong codes (0 below the threshold)."""
    if failures < DELAY_AFTER:
        return 0
    return min(DELAY_FIRST * 2 ** (failures - DELAY_AFTER), DELAY_CAP)


class Limits:
    """The app's limits over one strategy (pass Flask-Limiter's, so they share its store)."""

    def __init__(self, strategy: RateLimiter, *, daily_budget: int, clock: Callable[[], float] = time.time) -> None:
        self.strategy = strategy
        self.store = WindowStore(strategy, clock)
        self.budget = (Rule("global", parse(f"{daily_budget} per day")),)
        self.clock = clock

    def reserve_send(self, *, phone: str, prefix: str, ip: str, poster: str | None = None) -> None:
        """Count one SMS against every limit, or raise LimitExceeded and count nothing.

        First the outstanding codes (sends − verified, per address, poster and prefix: one read),
        then the windows and the tally of sends (one atomic reserve). Between the read and the
        tally a few concurrent sends may pass together: the bound is N plus the requests in
        flight at that instant."""
        keys = _outstanding_keys(ip=ip, poster=poster, prefix=prefix)
        for scope, (count, key) in self.outstanding(keys).items():
            if count >= OUTSTANDING[scope]:
                raise LimitExceeded(scope, self.store.retry_after(SENT[scope], key))
        tally = [(SENT[scope], key) for scope, key in keys.items()]  # never full: taken with the rest
        try:
            self._reserve([*self._send_checks(phone=phone, prefix=prefix, ip=ip), *tally], unless_locked=phone)
        except LimitExceeded as exc:
            if exc.scope == "global":
                self._budget_alert()
            raise

    def note_verified(self, *, ip: str, poster: str | None, prefix: str, sends: int = 1) -> None:
        """A right code earns back the `sends` codes it took, for its address, poster and prefix."""
        keys = _outstanding_keys(ip=ip, poster=poster, prefix=prefix)
        self.count_many([(VERIFIED[scope], key) for scope, key in keys.items()] * max(1, sends))

    def outstanding(self, keys: dict[str, str]) -> dict[str, tuple[int, str]]:
        """{scope: (sends − verified in the moving hour, key)} for the given scopes (one read)."""
        checks = [(rule[scope], key) for scope, key in keys.items() for rule in (SENT, VERIFIED)]
        used = self.used_many(checks)
        return {scope: (max(0, used[2 * i] - used[2 * i + 1]), key) for i, (scope, key) in enumerate(keys.items())}

    def send_refused(self, *, phone: str, prefix: str, ip: str, poster: str | None = None) -> bool:
        """Whether `reserve_send` would refuse now (nothing is counted; two reads)."""
        keys = _outstanding_keys(ip=ip, poster=poster, prefix=prefix)
        if any(n >= OUTSTANDING[scope] for scope, (n, _key) in self.outstanding(keys).items()):
            return True
        checks = [(LOCK, phone), *self._send_checks(phone=phone, prefix=prefix, ip=ip)]
        return any(n >= rule.limit.amount for n, (rule, _key) in zip(self.used_many(checks), checks, strict=True))

    def near_budget(self, *, ip: str, poster: str | None, percent: int) -> bool:
        """Whether `percent` % of the outstanding bound of the address or the poster is reached, or
        of their hourly ceilings (the human check comes before a refusal). A prefix is watched by
        its conversion instead (app/services/conversion.py), which alerts first."""
        keys = _outstanding_keys(ip=ip, poster=poster, prefix=None)
        if any(n * 100 >= OUTSTANDING[s] * percent for s, (n, _key) in self.outstanding(keys).items()):
            return True
        checks = [*((r, ip) for r in IP_SENDS), *((r, poster) for r in POSTER_STARTS if poster)]
        used = self.used_many(checks)
        return any(n * 100 >= rule.limit.amount * percent for n, (rule, _key) in zip(used, checks, strict=True))

    def count(self, rule: Rule, key: str) -> bool:
        """Take one unit of `rule` for `key`; False when none was left (nothing taken)."""
        return self.store.hit(rule, key)

    def count_many(self, checks: list[tuple[Rule, str]]) -> list[bool]:
        """`count` for each (rule, key), independently; on Redis in one round trip."""
        return self.store.count_many(checks)

    def used(self, rule: Rule, key: str) -> int:
        """How much of `rule` is used for `key` in its current window."""
        return self.store.used(rule, key)

    def used_many(self, checks: list[tuple[Rule, str]], seconds: list[int | None] | None = None) -> list[int]:
        """`used` for each (rule, key); on Redis in one round trip. `seconds`, when given, counts
        only the entries of each rule's window younger than that many seconds (None: the window)."""
        return self.store.used_many(checks, seconds)

    def _send_checks(self, *, phone: str, prefix: str, ip: str) -> list[tuple[Rule, str]]:
        return [
            *((r, phone) for r in PHONE_SENDS),
            *((r, ip) for r in IP_SENDS),
            *((r, prefix) for r in PREFIX_SENDS),
            *((r, "all") for r in self.budget),
        ]

    def reserve_join_start(self, poster: str) -> None:
        self._reserve([(rule, poster) for rule in POSTER_STARTS])

    def bad_tokens_blocked(self, ip: str) -> int:
        """Seconds this address must wait after too many bad tokens (0: not blocked)."""
        return self._wait(BAD_TOKENS, ip)

    def note_bad_token(self, ip: str) -> None:
        self._hit(BAD_TOKENS, ip)

    def draw_challenge(self, ip: str) -> None:
        """Count one picture for this address, or raise LimitExceeded."""
        self._reserve([(CHALLENGE_IMAGES, ip)])

    def challenge_blocked(self, ip: str) -> int:
        """Seconds this address must wait after too many wrong answers (0: it may answer)."""
        return self._wait(CHALLENGE_FAILS, ip)

    def challenge_failed(self, ip: str) -> None:
        self._hit(CHALLENGE_FAILS, ip)

    def spend_challenge(self, nonce: str) -> bool:
        """True the first time a picture is answered, False for any replay (pictures live < 1 h)."""
        return self._hit(CHALLENGE_ANSWER, nonce)

    def ensure_not_locked(self, phone: str) -> None:
        wait = self._wait(LOCK, phone)
        if wait:
            raise PhoneLocked("phone", wait)

    def ensure_may_check(self, phone: str) -> None:
        """Raise PhoneLocked or CheckDelayed when this phone may not try a code now."""
        locked, failures = self.used_many([(LOCK, phone), (FAILURES, phone)])  # one round trip
        if locked:
            self.ensure_not_locked(phone)  # raises, with the wait
        delay = delay_after(failures)
        if delay:
            wait = self._wait(_delay_rule(delay), phone)
            if wait:
                raise CheckDelayed("phone", wait)

    def record_failure(self, phone: str) -> int:
        """Count a wrong code; lock the phone at the limit. Returns the failures in the window."""
        self._hit(FAILURES, phone)
        failures = self.failures(phone)
        if failures >= FAILURES.limit.amount:
            self._hit(LOCK, phone)
            log.warning("phone locked after %d wrong codes", failures)
        elif delay_after(failures):
            self._hit(_delay_rule(delay_after(failures)), phone)
        return failures

    def failures(self, phone: str) -> int:
        return self.used(FAILURES, phone)

    def _reserve(self, checks: Iterable[tuple[Rule, str]], unless_locked: str | None = None) -> None:
        """Test every limit first, then take from each: a refusal costs no other limit (and on
        Redis no other worker can take the last unit between the test and the take)."""
        checks = list(checks)
        take = [True] * len(checks)
        if unless_locked is not None:  # the lock is only tested
            checks, take = [(LOCK, unless_locked), *checks], [False, *take]
        refused = self.store.reserve(checks, take)
        if refused is None:
            return
        index, wait = refused
        metrics.limit_refused(checks[index][0].scope)
        if checks[index][0] is LOCK:
            raise PhoneLocked("phone", wait)
        raise LimitExceeded(checks[index][0].scope, wait)

    def _wait(self, rule: Rule, key: str) -> int:
        return self.store.wait(rule, key)

    def _hit(self, rule: Rule, key: str) -> bool:
        return self.store.hit(rule, key)

    def _budget_alert(self) -> None:
        # The daily SMS budget is spent: page the on-call (once an hour), keep refusing.
        try:
            if self._hit(BUDGET_ALERT, "all"):
                alerts.critical("global SMS budget exhausted: sending stopped until the window moves")
        except LimiterUnavailable:
            pass


def _outstanding_keys(*, ip: str, poster: str | None, prefix: str | None) -> dict[str, str]:
    keys = {"ip": ip, "poster": poster, "prefix": prefix}
    return {scope: key for scope, key in keys.items() if key}


def _delay_rule(seconds: int) -> Rule:
    return Rule("delay", RateLimitItemPerSecond(1, seconds))
