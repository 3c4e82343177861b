"""Properties (hypothesis): phone normalisation, poster tokens, and the code state machine."""

from __future__ import annotations

import re
import string
from datetime import UTC, date, datetime, timedelta

import time_machine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.models import JoinAttempt, PlaceKind
from app.services import limits, verification
from app.services.phones import PhoneInvalid, normalize
from app.services.sms import MemoryGateway
from app.services.tokens import EPOCH, MAX_DAY, MAX_ID, QrSigner, TokenInvalid

CN_MOBILE = re.compile(r"^\+861[3-9]\d{9}$")
separators = st.sampled_from(["", " ", "-", "  ", "\u3000", "\t"])
cn_like = st.builds(
    lambda prefix, digits, sep: prefix + sep.join([digits[:3], digits[3:7], digits[7:]]),
    st.sampled_from(["", "+86", "+86 ", "0086", "86"]),
    st.from_regex(r"1[0-9]{10}", fullmatch=True),
    separators,
)
anything = st.one_of(st.text(max_size=40), st.from_regex(r"\+?[0-9 ()\-]{1,24}", fullmatch=True), cn_like)


@given(anything)
@settings(max_examples=400)
def test_any_input_is_a_chinese_mobile_in_e164_or_refused(raw):
    try:
        e164 = normalize(raw, ["CN"])
    except PhoneInvalid as exc:
        assert exc.reason in {"empty", "malformed", "region", "not_mobile"}
        return
    assert CN_MOBILE.match(e164), e164
    assert normalize(e164, ["CN"]) == e164, "idempotent"
    assert normalize(e164[3:], ["CN"]) == e164, "the national form gives the same number"


SIGNER = QrSigner(["property-key-" + "k" * 40, "older-key-" + "o" * 40], max_age_days=365)
places = st.tuples(
    st.sampled_from(list(PlaceKind)), st.integers(1, MAX_ID), st.integers(1, 10_000), st.integers(0, MAX_DAY - 400)
)
BASE32 = string.ascii_uppercase + "234567"


@given(places)
def test_token_round_trip(place):
    kind, place_id, version, day = place
    issued = EPOCH + timedelta(days=day)
    token = SIGNER.dumps(kind, place_id, version, issued)
    assert len(token) == 21 and set(token) <= set(BASE32)
    for spelling in (token, token.lower()):
        ref = SIGNER.loads(spelling, issued + timedelta(days=1))
        assert (ref.kind, ref.place_id, ref.version_mod, ref.issued_on) == (kind, place_id, version % 64, issued)


@given(places, st.integers(0, 20), st.sampled_from(BASE32))
@settings(max_examples=400)
def test_every_one_character_change_is_rejected(place, position, replacement):
    kind, place_id, version, day = place
    issued = EPOCH + timedelta(days=day)
    token = SIGNER.dumps(kind, place_id, version, issued)
    assume(token[position] != replacement)
    changed = token[:position] + replacement + token[position + 1 :]
    try:
        SIGNER.loads(changed, issued + timedelta(days=1))
    except TokenInvalid:
        return
    raise AssertionError(f"{changed} was accepted for {token}")


TTL, MAX_TRIES, KEY = 600, 5, "state-machine-key"
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class CodeMachine(RuleBasedStateMachine):
    """One phone against the real verification and limits services, with a model of time.

    Invariants: a code is never accepted after it expired or while the phone is locked, and
    the phone's failure count only moves with wrong codes and time, never with a new code.
    """

    @initialize()
    def start(self) -> None:
        self.travel = time_machine.travel(START, tick=False)
        self.traveller = self.travel.start()
        self.guard = limits.Limits(MovingWindowRateLimiter(MemoryStorage()), daily_budget=10**6)
        self.gateway = MemoryGateway()
        self.attempt: JoinAttempt | None = None
        self.code: str | None = None
        self.failures: list[datetime] = []
        self.locked_until: datetime | None = None
        self.serial = 0

    def teardown(self) -> None:
        if hasattr(self, "travel"):
            self.travel.stop()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def model_failures(self) -> int:
        return sum(1 for at in self.failures if self.now() - at < timedelta(days=1))

    def locked(self) -> bool:
        return self.locked_until is not None and self.now() < self.locked_until

    def _send(self, attempt: JoinAttempt) -> None:
        before = self.guard.failures("phone")
        try:
            self.guard.reserve_send(phone="phone", prefix="prefix", ip="ip")
            code = verification.issue(attempt, gateway=self.gateway, key=KEY, now=self.now(), ttl=TTL)
        except (limits.LimitExceeded, verification.TooManySends) as exc:
            if isinstance(exc, limits.PhoneLocked):
                assert self.locked()
            return
        assert not self.locked(), "a locked phone was sent a code"
        self.attempt, self.code = attempt, code
        assert self.guard.failures("phone") == before, "a new code never resets the failure count"

    @rule()
    def new_attempt(self) -> None:
        self.serial += 1
        self._send(JoinAttempt(id=f"{self.serial:032d}", phone_index="phone", code_tries=0, sends=0))

    @rule()
    def resend(self) -> None:
        if self.attempt is not None:
            self._send(self.attempt)

    @rule(right=st.booleans())
    def check(self, right: bool) -> None:
        if self.attempt is None or self.code is None:
            return
        code = self.code if right else ("000000" if self.code != "000000" else "111111")
        expired = self.attempt.code_expires_at is None or self.now() >= self.attempt.code_expires_at
        tries_before = self.attempt.code_tries
        try:
            verification.check_guarded(
                self.attempt,
                code,
                guard=self.guard,
                phone="+8617000000001",
                gateway=self.gateway,
                key=KEY,
                now=self.now(),
                max_tries=MAX_TRIES,
            )
        except limits.PhoneLocked:
            if self.attempt.code_tries > tries_before:  # this very try was the tenth failure
                self._failed()
            assert self.locked()
            return
        except limits.CheckDelayed:
            assert self.model_failures() >= limits.DELAY_AFTER, "no delay before three failures"
            return
        except (verification.CodeWrong, verification.CodeLocked, verification.CodeExpired):
            if self.attempt.code_tries > tries_before:
                self._failed()
            return
        assert right and not expired and not self.locked() and tries_before < MAX_TRIES
        self.attempt, self.code = None, None

    def _failed(self) -> None:
        self.failures.append(self.now())
        if self.model_failures() >= limits.FAILURES.limit.amount and not self.locked():
            self.locked_until = self.now() + timedelta(days=1)

    @rule(seconds=st.sampled_from([1, 29, 31, 61, 121, 599, 601, 3600, 3 * 3600, 86_400]))
    def wait(self, seconds: int) -> None:
        self.traveller.shift(timedelta(seconds=seconds))

    @invariant()
    def failure_count_matches_the_model(self) -> None:
        if hasattr(self, "guard"):
            assert self.guard.failures("phone") == self.model_failures()


TestCodeMachine = CodeMachine.TestCase
TestCodeMachine.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_today_is_inside_the_token_range():
    assert (date(2026, 11, 29) - EPOCH).days < MAX_DAY
