"""How the app talks to Twilio: one time budget per call, safe retries, a windowed breaker count.

docs/security.md H1-H3. A retry is only made where it cannot send a second SMS: when the
connection failed before the request left, or when Twilio answered 429 / 20429 ("not
processed, safe to retry"), or 503 on a call that sends nothing. A read timeout is never
retried: Twilio may have taken the request, and China's carriers drop a number that gets
the same text three times a day (B3).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pybreaker
import requests
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)

RETRYABLE_429_CODE = 20429
# Paths of calls that make Twilio send an SMS (Messages create, Verify start).
SENDING_PATHS = ("/Messages.json", "/Verifications")
# A retry needs time to be worth it; below this much budget left, give up instead.
MIN_ATTEMPT_SECONDS = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """H2: at most 2 retries, capped exponential backoff (0.5 s base, 4 s cap), full jitter."""

    retries: int = 2
    base: float = 0.5
    cap: float = 4.0

    def ceiling(self, retry: int) -> float:
        return min(self.cap, self.base * 2**retry)


class ResilientHttpClient(TwilioHttpClient):
    """Twilio's HTTP client where `timeout` is the budget of a whole call, retries included."""

    def __init__(
        self,
        timeout: float,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        super().__init__(timeout=timeout)
        self.policy = policy or RetryPolicy()
        self._sleep, self._clock, self._jitter = sleep, clock, jitter

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        deadline = self._clock() + (timeout or self.timeout or 10.0)
        retry = 0
        while True:
            outcome = self._attempt(method, url, params, data, headers, auth, deadline, allow_redirects)
            delay = self._delay(retry, deadline) if safe_to_retry(method, url, outcome) else None
            if delay is None:
                break
            log.info("twilio call retried in %.2f s (%s)", delay, _describe(outcome))
            self._sleep(delay)
            retry += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _attempt(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None,
        data: dict[str, object] | None,
        headers: dict[str, str] | None,
        auth: tuple[str, str] | None,
        deadline: float,
        allow_redirects: bool,
    ) -> Response | requests.RequestException:
        remaining = max(deadline - self._clock(), 0.001)
        try:
            return super().request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=remaining,
                allow_redirects=allow_redirects,
            )
        except requests.RequestException as exc:
            return exc

    def _delay(self, retry: int, deadline: float) -> float | None:
        """The jittered wait before the next try, or None when retries or time are used up."""
        if retry >= self.policy.retries:
            return None
        delay = self._jitter(0, self.policy.ceiling(retry))
        if self._clock() + delay + MIN_ATTEMPT_SECONDS > deadline:
            return None
        return delay


def safe_to_retry(method: str, url: str, outcome: Response | requests.RequestException) -> bool:
    """Whether repeating this call can neither send a second SMS nor repeat a processed request."""
    if isinstance(outcome, requests.RequestException):
        return never_sent(outcome)
    if outcome.status_code == 429:
        return _error_code(outcome) == RETRYABLE_429_CODE
    return outcome.status_code == 503 and not sends_sms(method, url)


def never_sent(exc: requests.RequestException) -> bool:
    """True when the connection failed before any byte of the request left this machine."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def sends_sms(method: str, url: str) -> bool:
    return method.upper() == "POST" and urlparse(url).path.endswith(SENDING_PATHS)


def _error_code(response: Response) -> int | None:
    try:
        code = json.loads(response.text).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def _describe(outcome: Response | requests.RequestException) -> str:
    return type(outcome).__name__ if isinstance(outcome, Exception) else f"http {outcome.status_code}"


class RecentFailures(pybreaker.CircuitMemoryStorage):
    """The breaker's failure count, limited to consecutive failures of the last `window` seconds.

    pybreaker counts consecutive failures however far apart; H3 wants "5 within 60 s", so a
    failure older than the window no longer counts.
    """

    def __init__(self, window: float) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self.window = timedelta(seconds=window)
        self._failures: deque[datetime] = deque()

    def increment_counter(self) -> None:
        now = datetime.now(UTC)  # pybreaker's own clock for opened_at
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.window:
            self._failures.popleft()

    def reset_counter(self) -> None:
        self._failures.clear()

    @property
    def counter(self) -> int:
        return len(self._failures)


class BreakerLog(pybreaker.CircuitBreakerListener):
    """Says when the circuit opens or closes: an open circuit means no worker gets a code (page ops)."""

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object) -> None:
        old = getattr(old_state, "name", old_state)
        new = getattr(new_state, "name", new_state)
        level = logging.ERROR if new == pybreaker.STATE_OPEN else logging.WARNING
        log.log(level, "sms provider circuit %s: %s -> %s", cb.name, old, new)
