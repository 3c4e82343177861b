"""Alibaba Cloud SMS (Dysmsapi 2017-05-25, SendSms) through the official SDK.

`AliyunSms.send(to_e164, kind, params)` sends one approved template and returns the provider's
message id (BizId). Template parameters go in TemplateParam as a JSON object of strings, so
the code template (`${code}`) gets {"code": "012345"}: a number would lose the leading zero and
is refused. Mainland numbers go without +86 (the API's own format, 1390000xxxx); other numbers
as country code and number without "+". SendSms answers a refusal normally, with a Code other
than "OK": that is checked, not only the SDK's exceptions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pybreaker
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_dysmsapi20170525.models import SendSmsRequest
from alibabacloud_tea_openapi.utils_models import Config as SdkConfig
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

from app.services.sms.base import E164, SmsError, SmsGateway
from app.services.sms.mainland import (
    Retrier,
    Rules,
    TemplateGateway,
    check_params,
    guarded,
    parse_endpoint,
    provider_breaker,
    refusal,
    template_for,
)

log = logging.getLogger(__name__)


class _DropSendSmsUrls(logging.Filter):
    """urllib3 logs each request line at DEBUG, and SendSms puts the number and the template
    parameters (the code, a name) in the query: those lines are dropped, not masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "PhoneNumbers=" not in record.getMessage()


logging.getLogger("urllib3.connectionpool").addFilter(_DropSendSmsUrls())

DEFAULT_ENDPOINT = "dysmsapi.aliyuncs.com"
OK = "OK"

# Codes from the API's error code list (help.aliyun.com/document_detail/101346).
RULES = Rules(
    # Per-number frequency control (1 a minute, 5 an hour, 10 a day for codes), API throttling.
    rate_limited=frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling.Api", "Throttling"}),
    rejected=frozenset(
        {"isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED"}
    ),
    opted_out=frozenset(),
    setup=frozenset(
        {
            "isv.AMOUNT_NOT_ENOUGH",
            "isv.OUT_OF_SERVICE",
            "isv.DAY_LIMIT_CONTROL",
            "isv.MONTH_LIMIT_CONTROL",
            "isv.PRODUCT_UN_SUBSCRIPT",
            "isv.PRODUCT_UNSUBSCRIBE",
            "isv.ACCOUNT_NOT_EXISTS",
            "isv.ACCOUNT_ABNORMAL",
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.SMS_SIGNATURE_ILLEGAL",
            "isv.SMS_SIGN_ILLEGAL",
            "isv.SIGN_STATE_ILLEGAL",
            "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "isv.TEMPLATE_PARAMS_ILLEGAL",
            "isv.INVALID_PARAMETERS",
            "isv.INVALID_JSON_PARAM",
            "isv.PARAM_LENGTH_LIMIT",
            "isv.PARAM_NOT_SUPPORT_URL",
            "isv.BLACK_KEY_CONTROL_LIMIT",
            "isv.SMS_CONTENT_ILLEGAL",
            "isv.DENY_IP_RANGE",
            "isv.EXTEND_CODE_ERROR",
            "isp.RAM_PERMISSION_DENY",
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "InvalidTimeStamp.Expired",
        }
    ),
    setup_prefixes=("InvalidAccessKeyId", "Forbidden"),
)


def aliyun_phone(to_e164: str) -> str:
    """The PhoneNumbers value: 11 digits for the mainland, else country code and number."""
    return to_e164[3:] if to_e164.startswith("+86") else to_e164[1:]


class AliyunSms:
    """Sends template messages through Dysmsapi; every failure is an SmsError."""

    def __init__(
        self,
        client: Client,
        sign_name: str,
        code_template: str,
        notice_template: str,
        retrier: Retrier,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        self.client = client
        self.sign_name = sign_name
        self.code_template, self.notice_template = code_template, notice_template
        self.retrier = retrier
        self.breaker = breaker or provider_breaker("aliyun")

    def send(self, to_e164: str, kind: str, params: dict[str, str]) -> str:
        template = template_for(kind, self.code_template, self.notice_template)
        check_params(kind, params)
        if not E164.match(to_e164):
            raise SmsError("rejected")
        request = SendSmsRequest(
            phone_numbers=aliyun_phone(to_e164),
            sign_name=self.sign_name,
            template_code=template,
            template_param=json.dumps(params, ensure_ascii=False) if params else None,
        )
        return guarded(self.breaker, "aliyun", lambda: self._send(request))

    def _send(self, request: SendSmsRequest) -> str:
        try:
            response = self.retrier.run(self._attempt(request))
        except TeaException as exc:
            raise self._from_exception(exc) from None
        except (OSError, ValueError) as exc:  # transport errors, an answer that is not JSON
            log.warning("sms provider aliyun unreachable: %s", type(exc).__name__)
            raise SmsError("unavailable") from None
        body: Any = getattr(response, "body", None)
        code = str(getattr(body, "code", "") or "")
        if code != OK:
            raise refusal("aliyun", code or "no code", RULES)
        return str(body.biz_id or "")

    def _attempt(self, request: SendSmsRequest) -> Callable[[float], Any]:
        def attempt(seconds_left: float) -> Any:
            millis = max(int(seconds_left * 1000), 1)
            runtime = RuntimeOptions(read_timeout=millis, connect_timeout=millis, autoretry=False)
            return self.client.send_sms_with_options(request, runtime)

        return attempt

    def _from_exception(self, exc: TeaException) -> SmsError:
        status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
        code = str(getattr(exc, "code", "") or "")
        if isinstance(status, int) and status < 500 and code and code != "None":
            return refusal("aliyun", code, RULES)  # a 4xx with the API's error body
        log.warning("sms provider aliyun unreachable: %s (http %s)", type(exc).__name__, status)
        return SmsError("unavailable")


def aliyun_sms(config: dict[str, Any], retrier: Retrier | None = None) -> AliyunSms:
    """The client for SMS_BACKEND=aliyun, from the ALIYUN_* settings."""
    endpoint = parse_endpoint(config.get("ALIYUN_SMS_ENDPOINT") or DEFAULT_ENDPOINT)
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
    return AliyunSms(
        Client(sdk_config),
        sign_name=config["ALIYUN_SMS_SIGN_NAME"],
        code_template=config["ALIYUN_SMS_CODE_TEMPLATE"],
        notice_template=config["ALIYUN_SMS_NOTICE_TEMPLATE"],
        retrier=retrier or Retrier(timeout),
    )


def build(config: dict[str, Any], http_client: object = None) -> SmsGateway:
    """SMS_BACKEND=aliyun: the app's messages through the approved templates; the code also by
    voice call when ALIYUN_VOICE_TTS_CODE is set (app/services/sms/aliyun_voice.py)."""
    from app.services.sms.aliyun_voice import aliyun_voice  # it reads this module's rules

    return TemplateGateway(aliyun_sms(config), aliyun_voice(config))
