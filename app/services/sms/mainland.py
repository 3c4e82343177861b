"""What the Alibaba Cloud and Tencent Cloud SMS backends share (aliyun.py, tencent.py): endpoints,
retries, the breaker, refusals, and `TemplateGateway`, which maps a message kind to a template.

Both providers send only approved templates: a message is a kind and its parameters, never a
text. `code` and `status_code` use the code template (its one variable is the code), `notice`
the notice template. Each provider's refusals become the provider-neutral SmsError kinds of
app.services.sms; a call is retried only where the message provably did not leave (the
connection failed before any byte was sent: docs/security.md H2), never after a timeout, and runs
behind a circuit breaker like Twilio's (H3).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import pybreaker
import requests

from app.services import numbers
from app.services.sms.base import SmsError, SmsGateway
from app.services.sms.messages import DECISION, JOIN_CODE, STATUS_CODE, Message
from app.services.sms.twilio_common import BREAKER_FAILURES, BREAKER_RESET_SECONDS, BREAKER_WINDOW_SECONDS
from app.services.sms.twilio_transport import MIN_ATTEMPT_SECONDS, BreakerLog, RecentFailures, RetryPolicy, never_sent

log = logging.getLogger(__name__)
T = TypeVar("T")

CODE_KINDS = ("code", "status_code")
NOTICE_KIND = "notice"
KINDS = (*CODE_KINDS, NOTICE_KIND)
# A sign name (签名, shown as 【…】 before every text) with one of these names the union.
UNION_WORDS = ("工会",)


def template_for(kind: str, code_template: str, notice_template: str) -> str:
    """The template a kind of message uses; an unknown kind is a programming error."""
    if kind in CODE_KINDS:
        return code_template
    if kind == NOTICE_KIND:
        return notice_template
    raise ValueError(f"unknown SMS kind {kind!r}: one of {', '.join(KINDS)}")


def check_params(kind: str, params: dict[str, str]) -> None:
    """Every value is a string (a number would lose a code's leading zero); a code is digits."""
    if any(not isinstance(value, str) for value in params.values()):
        raise TypeError("SMS template parameters must be strings")
    if kind in CODE_KINDS and not numbers.digits(params.get("code", "")):
        raise ValueError(f"an SMS of kind {kind!r} needs params['code'], a string of digits")


@dataclass(frozen=True)
class Endpoint:
    """Where the SDK connects: `host` (with any port) and `protocol` (https or http)."""

    host: str
    protocol: str


def parse_endpoint(value: str) -> Endpoint:
    """`host` means HTTPS to it; `http://host:port` (tests, private gateways) plain HTTP.

    The SDKs sign the host they are given, so they get "host:port" and the protocol apart,
    never the whole URL.
    """
    value = value.strip()
    if "://" not in value:
        if not value or "/" in value:
            raise ValueError(f"not an endpoint host: {value!r}")
        return Endpoint(value, "https")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ValueError(f"an endpoint URL is http(s)://host[:port] with no path: {value!r}")
    return Endpoint(parts.netloc, parts.scheme)


def sign_name_problems(sign_name: str, union_name: str = "") -> list[str]:
    """Why a sign name would tell anyone who sees the text that its reader joined a union."""
    found = [f"contains {word}" for word in UNION_WORDS if word in sign_name]
    if union_name.strip() and union_name.strip() in sign_name:
        found.append("contains UNION_NAME")
    return found


def provider_breaker(name: str) -> pybreaker.CircuitBreaker:
    """One breaker per provider, as for Twilio: 5 outages within 60 s open it for 30 s."""
    return pybreaker.CircuitBreaker(
        fail_max=BREAKER_FAILURES,
        reset_timeout=BREAKER_RESET_SECONDS,
        exclude=[_provider_answered],
        state_storage=RecentFailures(BREAKER_WINDOW_SECONDS),
        listeners=[BreakerLog()],
        name=name,
    )


def _provider_answered(exc: BaseException) -> bool:
    # A refusal (bad number, rate limit, opt-out) proves the provider is up.
    return isinstance(exc, SmsError) and exc.kind != "unavailable"


def guarded(breaker: pybreaker.CircuitBreaker, provider: str, call: Callable[[], T]) -> T:
    """Run `call` (which raises only SmsError) behind the breaker; an open circuit fails fast."""
    try:
        with breaker.calling():
            return call()
    except pybreaker.CircuitBreakerError:
        log.warning("sms provider %s circuit open: failing fast", provider)
        raise SmsError("unavailable") from None


def left_unsent(exc: BaseException) -> bool:
    """Whether an SDK error comes from a connection that failed before the request left.

    Neither SDK keeps the transport error's type: Aliyun raises its own error from inside
    `except IOError`, and wraps that again; Tencent raises from inside `except Exception`.
    The original requests error is still on the chain (`__context__`, `inner_exception`).
    """
    return any(isinstance(e, requests.RequestException) and never_sent(e) for e in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = getattr(current, "inner_exception", None)
        todo += [current.__cause__, current.__context__, inner if isinstance(inner, BaseException) else None]


class Retrier:
    """Runs one provider call within `timeout` seconds, retrying only a connection never made.

    `attempt(seconds_left)` makes one request. H2: at most 2 retries, jittered backoff, and no
    retry that would not leave a useful time for the attempt.
    """

    def __init__(
        self,
        timeout: float,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self._sleep, self._clock, self._jitter = sleep, clock, jitter

    def run(self, attempt: Callable[[float], T]) -> T:
        deadline = self._clock() + self.timeout
        retry = 0
        while True:
            try:
                return attempt(max(deadline - self._clock(), 0.001))
            except Exception as exc:
                delay = self._delay(retry, deadline) if left_unsent(exc) else None
                if delay is None:
                    raise
                log.info("sms provider call retried in %.2f s (connection not made)", delay)
            self._sleep(delay)
            retry += 1

    def _delay(self, retry: int, deadline: float) -> float | None:
        if retry >= self.policy.retries:
            return None
        delay = self._jitter(0, self.policy.ceiling(retry))
        if self._clock() + delay + MIN_ATTEMPT_SECONDS > deadline:
            return None
        return delay


def refusal(provider: str, code: str, rules: Rules) -> SmsError:
    """The provider-neutral error for a provider's refusal code (logged; it holds nothing personal)."""
    kind = rules.kind(code)
    if code in rules.setup or code.startswith(rules.setup_prefixes):
        log.error("sms provider %s account needs attention: %s", provider, code)
    else:
        log.warning("sms provider %s refused: %s", provider, code)
    return SmsError(kind)


@dataclass(frozen=True)
class Rules:
    """A provider's refusal codes by kind; a code in none of them is `unavailable` (fail closed)."""

    rate_limited: frozenset[str]
    rejected: frozenset[str]
    opted_out: frozenset[str]
    setup: frozenset[str]  # the account, template or sign name is at fault: page ops
    rate_limited_prefixes: tuple[str, ...] = ()
    setup_prefixes: tuple[str, ...] = ()

    def kind(self, code: str) -> str:
        if code in self.opted_out:
            return "opted_out"
        if code in self.rate_limited or code.startswith(self.rate_limited_prefixes):
            return "rate_limited"
        if code in self.rejected:
            return "rejected"
        return "unavailable"


class TemplateClient(Protocol):
    def send(self, to_e164: str, kind: str, params: dict[str, str]) -> str: ...


# The app's message kinds as the mainland clients name their templates.
PROVIDER_KIND = {JOIN_CODE: "code", STATUS_CODE: "status_code", DECISION: NOTICE_KIND}


class VoiceClient(Protocol):
    def call(self, to_e164: str, code: str) -> str: ...


class TemplateGateway(SmsGateway):
    """A template-only provider as an SmsGateway: the message's kind picks the approved template.

    A code travels as the template's one parameter; a decision notice has none (its status link is
    part of the approved template text: neither provider accepts a link as a parameter).
    """

    def __init__(self, client: TemplateClient, voice_client: VoiceClient | None = None) -> None:
        self.client, self.voice_client = client, voice_client

    @property
    def voice(self) -> bool:  # type: ignore[override]
        return self.voice_client is not None

    def call(self, to: str, message: Message) -> None:
        """The code read out by the provider's voice service (its approved TTS template)."""
        if self.voice_client is None or message.kind not in (JOIN_CODE, STATUS_CODE):
            raise SmsError("unavailable")
        self.voice_client.call(to, message.params["code"])

    def send(self, to: str, message: Message) -> None:
        kind = PROVIDER_KIND.get(message.kind)
        if kind is None:
            raise ValueError(f"unknown message kind {message.kind!r}")
        params = {"code": message.params["code"]} if kind in CODE_KINDS else {}
        self.client.send(to, kind, params)

    def send_text(self, to: str, body: str) -> None:
        raise SmsError("unavailable")  # free text is never approved: every message goes by its kind
