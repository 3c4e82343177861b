"""Where the limits are counted: moving windows in the limiter's store (Redis or in-process).

Every window is the `limits` library's own moving-window list, so Flask-Limiter and the
library read what the scripts below take. The name of each window is a keyed hash of what it
counts (a phone's index, an address, a poster token, a picture's nonce): Redis holds no
address, phone or token in clear (docs/security.md, "Limiter store"). When the store does not
answer, every call raises `LimiterUnavailable`: the caller refuses to send (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import MovingWindowSupport, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter, RateLimiter
from redis.commands.core import Script
from redis.exceptions import RedisClusterException, RedisError

_T = TypeVar("_T")
log = logging.getLogger(__name__)

# In braces: a Redis Cluster hash tag. Every window then lives in one slot, which the scripts
# need (one reserve tests and takes the phone, address, prefix, poster and global windows
# atomically, and a script may only touch keys of one slot); it puts them all on one node.
NAMESPACE = "{scanjoin}"
IN_PROCESS_SCHEMES = ("memory", "swept-memory")

# The key each store's window names are hashed under, set when the app is built; a store
# nobody keyed (a unit test's memory store) gets this process's random key.
_KEYS: weakref.WeakKeyDictionary[Storage, bytes] = weakref.WeakKeyDictionary()
_PROCESS_KEY = secrets.token_bytes(32)
_SCRIPTS: weakref.WeakKeyDictionary[Storage, dict[str, Any]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Rule:
    scope: str  # what is counted: phone, ip, prefix, poster, global
    limit: RateLimitItem


class LimiterUnavailable(Exception):
    """The limiter's store did not answer: nothing that costs money may go ahead."""


def protect_keys(storage: Storage, secret: str | bytes) -> None:
    """Name this store's windows by an HMAC under `secret` (every process of a deployment shares it)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    _KEYS[storage] = hmac.new(raw, b"scanjoin limiter keys", hashlib.sha256).digest()


def keyed(storage: Storage, scope: str, value: str) -> str:
    """The name stored for `value` counted under `scope`: 32 hex digits, never the value."""
    key = _KEYS.get(storage, _PROCESS_KEY)
    return hmac.new(key, f"{scope}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]


def in_process_store(uri: str) -> bool:
    """True for a limiter store that each process keeps for itself (not shared by workers)."""
    return uri.split("://", 1)[0] in IN_PROCESS_SCHEMES


class WindowStore:
    """Moving windows over one strategy: test, take and read them, on Redis in one round trip."""

    def __init__(self, strategy: RateLimiter, clock: Callable[[], float] = time.time) -> None:
        self.strategy = strategy
        self.clock = clock

    def ids(self, rule: Rule, key: str) -> tuple[str, str, str]:
        """The identifiers the `limits` library names this window by."""
        return NAMESPACE, rule.scope, keyed(self.strategy.storage, rule.scope, key)

    def hit(self, rule: Rule, key: str) -> bool:
        return bool(self.call(self.strategy.hit, rule.limit, *self.ids(rule, key)))

    def used(self, rule: Rule, key: str) -> int:
        stats = self.call(self.strategy.get_window_stats, rule.limit, *self.ids(rule, key))
        return rule.limit.amount - stats.remaining

    def wait(self, rule: Rule, key: str) -> int:
        """Seconds until `rule` has a unit left for `key` (0: it has one now)."""
        if self.call(self.strategy.test, rule.limit, *self.ids(rule, key)):
            return 0
        return self.retry_after(rule, key)

    def retry_after(self, rule: Rule, key: str) -> int:
        stats = self.call(self.strategy.get_window_stats, rule.limit, *self.ids(rule, key))
        return max(1, int(stats.reset_time - self.clock() + 0.999))

    def count_many(self, checks: list[tuple[Rule, str]]) -> list[bool]:
        script = _script(self.strategy, "count")
        if script is None:
            return [self.hit(rule, key) for rule, key in checks]
        return [bool(taken) for taken in self._run(script, checks)]

    def used_many(self, checks: list[tuple[Rule, str]], seconds: list[int | None] | None = None) -> list[int]:
        within = seconds or [None] * len(checks)
        script = _script(self.strategy, "used")
        if script is not None:
            return [int(n) for n in self._run(script, checks, within)]
        # The moving-window strategy checks that its store has moving windows, but types it as Storage.
        storage = cast(MovingWindowSupport, self.strategy.storage)
        return [
            self.used(rule, key)
            if limit is None
            else self.call(
                storage.get_moving_window, rule.limit.key_for(*self.ids(rule, key)), rule.limit.amount, limit
            )[1]
            for (rule, key), limit in zip(checks, within, strict=True)
        ]

    def reserve(self, checks: Iterable[tuple[Rule, str]], take: list[bool]) -> tuple[int, int] | None:
        """Test every window, then take from those marked in `take`: all or nothing.

        None when taken, else (index of the full window, seconds to wait). On Redis one atomic
        script; elsewhere the library's test, then hit.
        """
        checks = list(checks)
        script = _script(self.strategy, "reserve")
        if script is not None:
            refused, oldest = self._run(script, checks, take=take)
            if not refused:
                return None
            rule = checks[int(refused) - 1][0]
            wait = max(1, int(float(oldest) + rule.limit.get_expiry() - self.clock() + 0.999))
            return int(refused) - 1, wait
        for index, (rule, key) in enumerate(checks):
            wait = self.wait(rule, key)
            if wait:
                return index, wait
        for index, ((rule, key), taking) in enumerate(zip(checks, take, strict=True)):
            if taking and not self.hit(rule, key):
                return index, self.retry_after(rule, key)  # another worker took the last unit
        return None

    def _run(
        self,
        script: Any,
        checks: list[tuple[Rule, str]],
        seconds: list[int | None] | None = None,
        take: list[bool] | None = None,
    ) -> list[int | str | bytes]:
        """One script over the moving-window lists of `checks`. ARGV: now, then for each key its
        amount, its window in seconds (or `seconds`) and whether to take from it (the reserve)."""
        storage = self.strategy.storage
        if not isinstance(storage, RedisStorage):  # _script gives a script for Redis stores only
            raise TypeError("window scripts run on Redis only")
        keys = [storage.prefixed_key(rule.limit.key_for(*self.ids(rule, key))) for rule, key in checks]
        args: list[object] = [repr(self.clock())]
        for (rule, _key), limit, taking in zip(
            checks, seconds or [None] * len(checks), take or [True] * len(checks), strict=True
        ):
            args += [rule.limit.amount, rule.limit.get_expiry() if limit is None else limit, int(taking)]
        return list(self.call(script, keys, args))

    @staticmethod
    def call(function: Callable[..., _T], *args: Any) -> _T:
        try:
            return function(*args)
        except (StorageError, RedisError, RedisClusterException, ConnectionError, TimeoutError) as exc:
            log.error("rate limit store unavailable: %s", type(exc).__name__)
            raise LimiterUnavailable() from exc


# The Redis side of `WindowStore`: one script call for several moving windows. KEYS are the
# `limits` library's own moving-window lists (newest timestamp first, trimmed to the limit), so
# the library's reads see what these take. ARGV: now, then for each key its amount, its window
# in seconds and "1" to take from it (the reserve only tests the keys marked "0", as for a lock).

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


def _script(strategy: RateLimiter, name: str) -> Script | None:
    """The registered script `name` when the store is Redis with moving windows, else None."""
    storage = strategy.storage
    if not isinstance(strategy, MovingWindowRateLimiter) or not isinstance(storage, RedisStorage):
        return None
    scripts = _SCRIPTS.get(storage)
    if scripts is None:  # one set per store
        connection = storage.get_connection()
        scripts = _SCRIPTS[storage] = {
            key: connection.register_script(text)  # type: ignore[arg-type]  # limits types it bytes; redis-py takes str
            for key, text in SCRIPTS.items()
        }
    return scripts[name]
