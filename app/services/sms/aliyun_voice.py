"""Alibaba Cloud voice (语音服务, Dyvmsapi 2017-05-25, SingleCallByTts) through the official SDK:
the join code read out in a call, after an SMS that failed or did not come.

`AliyunVoice.call(to_e164, code)` calls the number with the approved TTS template
`ALIYUN_VOICE_TTS_CODE` and returns the provider's CallId. The template's one variable is
`${code}`, given as text with the digits apart ("0，1，2，3，4，5"), so the voice reads them one by
one, not as a number; the template itself is neutral (it names no union, like the SMS). Like
SendSms, a refusal answers normally with a Code other than "OK": that is checked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pybreaker
from alibabacloud_dyvmsapi20170525.client import Client
from alibabacloud_dyvmsapi20170525.models import SingleCallByTtsRequest
from alibabacloud_tea_openapi.utils_models import Config as SdkConfig
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

from app.services import numbers
from app.services.sms.aliyun import OK, RULES, aliyun_phone
from app.services.sms.base import E164, SmsError
from app.services.sms.mainland import Retrier, Rules, guarded, parse_endpoint, provider_breaker, refusal

log = logging.getLogger(__name__)


class _DropCallUrls(logging.Filter):
    """SingleCallByTts puts the number and the code in the query: urllib3's request lines go."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "CalledNumber=" not in record.getMessage()


logging.getLogger("urllib3.connectionpool").addFilter(_DropCallUrls())

DEFAULT_ENDPOINT = "dyvmsapi.aliyuncs.com"
# SendSms's codes, and those of the voice API's error list (help.aliyun.com/document_detail/112502).
VOICE_RULES = Rules(
    rate_limited=RULES.rate_limited | {"isv.VOICE_LIMIT_CONTROL", "isv.CALLED_NUMBER_LIMIT"},
    rejected=RULES.rejected | {"isv.CALLED_NUMBER_ILLEGAL"},
    opted_out=frozenset({"isv.BLACK_NUMBER"}),
    setup=RULES.setup
    | {
        "isv.TTS_TEMPLATE_ILLEGAL",
        "isv.TTS_CODE_ILLEGAL",
        "isv.DISPLAY_NUMBER_ILLEGAL",
        "isv.CALLER_NUMBER_ILLEGAL",
        "isv.VOICE_PRODUCT_UN_SUBSCRIPT",
    },
    setup_prefixes=RULES.setup_prefixes,
)


def spaced(code: str) -> str:
    """The code's digits apart, so a text-to-speech voice reads them one by one."""
    if not numbers.digits(code):
        raise ValueError("a voice code is a string of digits")
    return "，".join(code)


class AliyunVoice:
    """Calls a number and reads the code out through SingleCallByTts; every failure is an SmsError."""

    def __init__(
        self,
        client: Client,
        tts_code: str,
        show_number: str,
        retrier: Retrier,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        self.client, self.tts_code, self.show_number = client, tts_code, show_number
        self.retrier = retrier
        self.breaker = breaker or provider_breaker("aliyun-voice")

    def call(self, to_e164: str, code: str) -> str:
        if not E164.match(to_e164):
            raise SmsError("rejected")
        request = SingleCallByTtsRequest(
            called_number=aliyun_phone(to_e164),
            called_show_number=self.show_number or None,  # none: the common mode's numbers
            tts_code=self.tts_code,
            tts_param=json.dumps({"code": spaced(code)}, ensure_ascii=False),
            play_times=2,
        )
        return guarded(self.breaker, "aliyun-voice", lambda: self._call(request))

    def _call(self, request: SingleCallByTtsRequest) -> str:
        try:
            response = self.retrier.run(self._attempt(request))
        except TeaException as exc:
            status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
            code = str(getattr(exc, "code", "") or "")
            if isinstance(status, int) and status < 500 and code and code != "None":
                raise refusal("aliyun-voice", code, VOICE_RULES) from None
            log.warning("voice provider aliyun unreachable: %s (http %s)", type(exc).__name__, status)
            raise SmsError("unavailable") from None
        except (OSError, ValueError) as exc:
            log.warning("voice provider aliyun unreachable: %s", type(exc).__name__)
            raise SmsError("unavailable") from None
        body: Any = getattr(response, "body", None)
        code = str(getattr(body, "code", "") or "")
        if code != OK:
            raise refusal("aliyun-voice", code or "no code", VOICE_RULES)
        return str(body.call_id or "")

    def _attempt(self, request: SingleCallByTtsRequest) -> Callable[[float], Any]:
        def attempt(seconds_left: float) -> Any:
            millis = max(int(seconds_left * 1000), 1)
            runtime = RuntimeOptions(read_timeout=millis, connect_timeout=millis, autoretry=False)
            return self.client.single_call_by_tts_with_options(request, runtime)

        return attempt


def aliyun_voice(config: dict[str, Any], retrier: Retrier | None = None) -> AliyunVoice | None:
    """The voice client from the ALIYUN_* settings, or None when ALIYUN_VOICE_TTS_CODE is empty."""
    if not config.get("ALIYUN_VOICE_TTS_CODE"):
        return None
    endpoint = parse_endpoint(config.get("ALIYUN_VOICE_ENDPOINT") or DEFAULT_ENDPOINT)
    timeout = float(config.get("ALIYUN_SMS_TIMEOUT", 10))
    millis = int(timeout * 1000)
    sdk_config = SdkConfig(
        access_key_id=config["ALIYUN_ACCESS_KEY_ID"],
        access_key_secret=config["ALIYUN_ACCESS_KEY_SECRET"],
        endpoint=endpoint.host,
        protocol=endpoint.protocol,
        read_timeout=millis,
        connect_timeout=millis,
    )
    return AliyunVoice(
        Client(sdk_config),
        tts_code=config["ALIYUN_VOICE_TTS_CODE"],
        show_number=config.get("ALIYUN_VOICE_SHOW_NUMBER") or "",
        retrier=retrier or Retrier(timeout),
    )
