"""Rate limits in the limiter's store (Redis in production): who may be sent a code, and how
long a phone that keeps guessing wrong must wait.

Every limit is a moving window on Flask-Limiter's strategy, so all workers share one count.
Keys never hold a raw phone number: a phone is its blind index (`PiiCipher.index`, the same
HMAC the database uses) and a number prefix is a keyed hash too. When the store cannot be
reached every call raises `LimiterUnavailable`: the caller refuses to send (fail closed).
The numbers are the project choices of SECURITY.md A6/A7/B3/B4.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter, RateLimiter
from redis.exceptions import RedisError

from app.services.crypto import PiiCipher

log = logging.getLogger(__name__)
alerts = logging.getLogger("scanjoin.alerts")

NAMESPACE = "scanjoin"
PREFIX_DIGITS = 4  # a prefix is the number without its last four digits: 7 digits for +86 (B4)


@dataclass(frozen=True)
class Rule:
    scope: str  # what is counted: phone, ip, prefix, poster, global
    limit: RateLimitItem


# B3: one code plus one resend per code lifetime (China's carriers reject a third identical
# text), at most 4 texts a day to any phone.
PHONE_SENDS = (Rule("phone", parse("2 per 10 minutes")), Rule("phone", parse("4 per day")))
# B4: loose on IPs, because Chinese mobile users often share one carrier NAT address.
IP_SENDS = (Rule("ip", parse("10 per hour")), Rule("ip", parse("30 per day")))
PREFIX_SENDS = (Rule("prefix", parse("20 per hour")),)
POSTER_STARTS = (Rule("poster", parse("50 per hour")),)
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


class LimiterUnavailable(Exception):
    """The limiter's store did not answer: nothing that costs money may go ahead."""


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
        self.budget = (Rule("global", parse(f"{daily_budget} per day")),)
        self.clock = clock

    def reserve_send(self, *, phone: str, prefix: str, ip: str) -> None:
        """Count one SMS against every limit, or raise LimitExceeded and count nothing."""
        try:
            self._reserve(self._send_checks(phone=phone, prefix=prefix, ip=ip), unless_locked=phone)
        except LimitExceeded as exc:
            if exc.scope == "global":
                self._budget_alert()
            raise

    def send_refused(self, *, phone: str, prefix: str, ip: str) -> bool:
        """Whether `reserve_send` would refuse now (nothing is counted; one read of every window)."""
        checks = [(LOCK, phone), *self._send_checks(phone=phone, prefix=prefix, ip=ip)]
        return any(n >= rule.limit.amount for n, (rule, _key) in zip(self.used_many(checks), checks, strict=True))

    def near_budget(self, *, ip: str, poster: str | None, percent: int) -> bool:
        """Whether `percent` % of an IP's send limits or a poster's join-start limit is used up."""
        checks = [*((r, ip) for r in IP_SENDS), *((r, poster) for r in POSTER_STARTS if poster)]
        used = self.used_many(checks)
        return any(n * 100 >= rule.limit.amount * percent for n, (rule, _key) in zip(used, checks, strict=True))

    def count(self, rule: Rule, key: str) -> bool:
        """Take one unit of `rule` for `key`; False when none was left (nothing taken)."""
        return self._hit(rule, key)

    def count_many(self, checks: list[tuple[Rule, str]]) -> list[bool]:
        """`count` for each (rule, key), independently; on Redis in one round trip."""
        script = _script(self.strategy, "count")
        if script is None:
            return [self.count(rule, key) for rule, key in checks]
        return [bool(taken) for taken in self._run(script, checks)]

    def used(self, rule: Rule, key: str) -> int:
        """How much of `rule` is used for `key` in its current window."""
        stats = self._call(self.strategy.get_window_stats, rule.limit, *_ids(rule, key))
        return rule.limit.amount - stats.remaining

    def used_many(self, checks: list[tuple[Rule, str]], seconds: list[int | None] | None = None) -> list[int]:
        """`used` for each (rule, key); on Redis in one round trip. `seconds`, when given, counts
        only the entries of each rule's window younger than that many seconds (None: the window)."""
        within = seconds or [None] * len(checks)
        script = _script(self.strategy, "used")
        if script is None:
            storage = self.strategy.storage
            return [
                self.used(rule, key)
                if limit is None
                else self._call(
                    storage.get_moving_window, rule.limit.key_for(*_ids(rule, key)), rule.limit.amount, limit
                )[1]
                for (rule, key), limit in zip(checks, within, strict=True)
            ]
        return [int(n) for n in self._run(script, checks, within)]

    def _run(
        self,
        script,
        checks: list[tuple[Rule, str]],
        seconds: list[int | None] | None = None,  # type: ignore[no-untyped-def]
        take: list[bool] | None = None,
    ) -> list[object]:
        """One script over the moving-window lists of `checks`. ARGV: now, then for each key its
        amount, its window in seconds (or `seconds`) and whether to take from it (the reserve)."""
        storage = self.strategy.storage
        keys = [storage.prefixed_key(rule.limit.key_for(*_ids(rule, key))) for rule, key in checks]
        args: list[object] = [repr(self.clock())]
        for (rule, _key), limit, taking in zip(
            checks, seconds or [None] * len(checks), take or [True] * len(checks), strict=True
        ):
            args += [rule.limit.amount, rule.limit.get_expiry() if limit is None else limit, int(taking)]
        return list(self._call(script, keys, args))

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
        """Test every limit first, then take from each: a refusal costs no other limit.

        On Redis this is one atomic script (one round trip, and no other worker can take the
        last unit between the test and the take); elsewhere the library's test, then hit.
        """
        checks = list(checks)
        script = _script(self.strategy, "reserve")
        if script is not None:
            self._reserve_in_redis(script, checks, unless_locked)
            return
        if unless_locked is not None:
            self.ensure_not_locked(unless_locked)
        for rule, key in checks:
            wait = self._wait(rule, key)
            if wait:
                raise LimitExceeded(rule.scope, wait)
        for rule, key in checks:
            if not self._call(self.strategy.hit, rule.limit, *_ids(rule, key)):
                # Another worker took the last unit between the test and the hit.
                raise LimitExceeded(rule.scope, self._retry_after(rule, key))

    def _reserve_in_redis(self, script, checks: list[tuple[Rule, str]], unless_locked: str | None) -> None:  # type: ignore[no-untyped-def]
        take = [True] * len(checks)
        if unless_locked is not None:  # the lock is only tested
            checks, take = [(LOCK, unless_locked), *checks], [False, *take]
        refused, oldest = self._run(script, checks, take=take)
        if not refused:
            return
        rule = checks[int(refused) - 1][0]
        wait = max(1, int(float(oldest) + rule.limit.get_expiry() - self.clock() + 0.999))  # type: ignore[arg-type]
        if rule is LOCK:
            raise PhoneLocked("phone", wait)
        raise LimitExceeded(rule.scope, wait)

    def _wait(self, rule: Rule, key: str) -> int:
        if self._call(self.strategy.test, rule.limit, *_ids(rule, key)):
            return 0
        return self._retry_after(rule, key)

    def _retry_after(self, rule: Rule, key: str) -> int:
        stats = self._call(self.strategy.get_window_stats, rule.limit, *_ids(rule, key))
        return max(1, int(stats.reset_time - self.clock() + 0.999))

    def _hit(self, rule: Rule, key: str) -> bool:
        return bool(self._call(self.strategy.hit, rule.limit, *_ids(rule, key)))

    def _budget_alert(self) -> None:
        # The daily SMS budget is spent: page the on-call (once an hour), keep refusing.
        try:
            if self._hit(BUDGET_ALERT, "all"):
                alerts.critical("global SMS budget exhausted: sending stopped until the window moves")
        except LimiterUnavailable:
            pass

    @staticmethod
    def _call(function, *args):  # type: ignore[no-untyped-def]
        try:
            return function(*args)
        except (StorageError, RedisError, ConnectionError, TimeoutError) as exc:
            log.error("rate limit store unavailable: %s", type(exc).__name__)
            raise LimiterUnavailable() from exc


class SweptMemoryStorage(MemoryStorage):
    """The `limits` library's in-process store, with its expired entries swept once a second.

    The library's store starts a timer thread 10 ms after a write, which walks every key it
    holds: under load that is a new thread and a walk of all keys a hundred times a second,
    taking the interpreter lock from the requests. Counting stays exact without those sweeps
    (a moving window only counts entries younger than the window, whatever is still stored);
    they only free memory, which once a second does as well. Setting: `swept-memory://`.
    """

    STORAGE_SCHEME = ["swept-memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: object) -> None:
        self._next_sweep = 0.0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def _MemoryStorage__schedule_expiry(self) -> None:  # the library's (private) hook, called on writes
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


def in_process_store(uri: str) -> bool:
    """True for a limiter store that each process keeps for itself (not shared by workers)."""
    return uri.split("://", 1)[0] in ("memory", "swept-memory")


# The Redis side of `Limits`: one script call for several moving windows. KEYS are the `limits`
# library's own moving-window lists (newest timestamp first, trimmed to the limit), so the
# library's reads see what these take. ARGV: now, then for each key its amount, its window in
# seconds and "1" to take from it (the reserve only tests the keys marked "0", as for a lock).

# Test every window, then take one unit from each, atomically: {0, ''} when all was taken,
# else {the 1-based index of the full window, its oldest counted timestamp}.
RESERVE_LUA = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local amount, seconds = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local oldest = redis.call('lindex', key, amount - 1)
  if oldest and tonumber(oldest) >= now - seconds then
    return {i, oldest}
  end
end
for i, key in ipairs(KEYS) do
  if ARGV[3 * i + 1] == '1' then
    redis.call('lpush', key, ARGV[1])
    redis.call('ltrim', key, 0, tonumber(ARGV[3 * i - 1]) - 1)
    redis.call('expire', key, tonumber(ARGV[3 * i]))
  end
end
return {0, ''}
"""

# How many entries of each list fall inside its window (a binary search: newest first).
USED_LUA = """
local now = tonumber(ARGV[1])
local counts = {}
for i, key in ipairs(KEYS) do
  local since = now - tonumber(ARGV[3 * i])
  local low, high, last = 0, redis.call('llen', key) - 1, -1
  while low <= high do
    local mid = math.floor((low + high) / 2)
    local stamp = tonumber(redis.call('lindex', key, mid))
    if stamp and stamp >= since then last = mid; low = mid + 1 else high = mid - 1 end
  end
  counts[i] = last + 1
end
return counts
"""

# One unit from each window that has one left, each on its own (not all or nothing): 1 or 0.
COUNT_LUA = """
local now = tonumber(ARGV[1])
local taken = {}
for i, key in ipairs(KEYS) do
  local amount, seconds = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local oldest = redis.call('lindex', key, amount - 1)
  if oldest and tonumber(oldest) >= now - seconds then
    taken[i] = 0
  else
    redis.call('lpush', key, ARGV[1])
    redis.call('ltrim', key, 0, amount - 1)
    redis.call('expire', key, seconds)
    taken[i] = 1
  end
end
return taken
"""

SCRIPTS = {"reserve": RESERVE_LUA, "used": USED_LUA, "count": COUNT_LUA}


def _script(strategy: RateLimiter, name: str):  # type: ignore[no-untyped-def]
    """The registered script `name` when the store is Redis with moving windows, else None."""
    storage = strategy.storage
    if not isinstance(strategy, MovingWindowRateLimiter) or not isinstance(storage, RedisStorage):
        return None
    scripts = getattr(storage, "_scanjoin_scripts", None)
    if scripts is None:
        connection = storage.get_connection()
        scripts = {key: connection.register_script(text) for key, text in SCRIPTS.items()}
        storage._scanjoin_scripts = scripts  # type: ignore[attr-defined]  # one set per store
    return scripts[name]


def _delay_rule(seconds: int) -> Rule:
    return Rule("delay", RateLimitItemPerSecond(1, seconds))


def _ids(rule: Rule, key: str) -> tuple[str, str, str]:
    return NAMESPACE, rule.scope, key
