"""Tencent Cloud SMS (API 2021-01-11, SendSms) through the official SDK.

`TencentSms.send(to_e164, kind, params)` sends one approved template and returns the provider's
message id (SerialNo). Tencent templates take positional parameters ({1}, {2}, …): the code
template's first is the code; the notice template's are the values of `params` in their order.
Numbers go in E.164 (+86…), as the API asks. SendSms answers a refusal of one number normally,
with SendStatusSet[i].Code other than "Ok": that is checked, not only the SDK's exceptions.
The SDK's own timeout (60 s by default) is set from TENCENT_SMS_TIMEOUT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pybreaker
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111.models import SendSmsRequest, SendSmsResponse
from tencentcloud.sms.v20210111.sms_client import SmsClient

from app.services.sms.base import E164, SmsError, SmsGateway
from app.services.sms.mainland import (
    CODE_KINDS,
    Endpoint,
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
# The SDK's DEBUG lines print whole requests (the phone and the code): keep them off.
logging.getLogger("tencentcloud_sdk_common").setLevel(logging.INFO)

DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
DEFAULT_REGION = "ap-guangzhou"
OK = "Ok"
# What the SDK calls its own failures to reach or read the API.
TRANSPORT_CODES = frozenset({"ClientNetworkError", "ServerNetworkError", "ClientError", "ClientParamsError"})

# Codes from the API's error code list (cloud.tencent.com/document/api/382/55981, 382/59177).
RULES = Rules(
    rate_limited=frozenset(
        {
            "LimitExceeded.PhoneNumberDailyLimit",
            "LimitExceeded.PhoneNumberOneHourLimit",
            "LimitExceeded.PhoneNumberThirtySecondLimit",
            "LimitExceeded.PhoneNumberSameContentDailyLimit",
            "LimitExceeded.DeliveryFrequencyLimit",
            "FailedOperation.PhoneNumberOnBlacklist",  # a carrier's blocklist after too many texts
        }
    ),
    rate_limited_prefixes=("RequestLimitExceeded",),
    rejected=frozenset(
        {
            "InvalidParameterValue.IncorrectPhoneNumber",
            "FailedOperation.PhoneNumberParseFail",
            "UnsupportedOperation.UnsupportedRegion",
            "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone",
            "UnsupportedOperation.GlobalTemplateToChineseMainlandPhone",
            "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
            "LimitExceeded.PhoneNumberCountLimit",
            "FailedOperation.MissingSignatureToModify",
        }
    ),
    # 免打扰名单: the phone unsubscribed (or is on a carrier's do-not-disturb list).
    opted_out=frozenset({"FailedOperation.PhoneNumberInBlacklist"}),
    setup=frozenset(
        {
            "FailedOperation.InsufficientBalanceInSmsPackage",
            "FailedOperation.SignatureIncorrectOrUnapproved",
            "FailedOperation.TemplateIncorrectOrUnapproved",
            "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
            "FailedOperation.TemplateUnapprovedOrNotExist",
            "FailedOperation.ContainSensitiveWord",
            "FailedOperation.JsonParseFail",
            "FailedOperation.FailResolvePacket",
            "InvalidParameterValue.SdkAppIdNotExist",
            "InvalidParameterValue.TemplateParameterFormatError",
            "InvalidParameterValue.TemplateParameterLengthLimit",
            "InvalidParameterValue.ContentLengthLimit",
            "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
            "InvalidParameterValue.IncorrectSignName",
            "LimitExceeded.AppDailyLimit",
            "LimitExceeded.AppGlobalDailyLimit",
            "LimitExceeded.AppMainlandChinaDailyLimit",
            "LimitExceeded.DailyLimit",
        }
    ),
    setup_prefixes=("AuthFailure", "UnauthorizedOperation", "InvalidParameter.", "MissingParameter"),
)


class TencentSms:
    """Sends template messages through Tencent Cloud SMS; every failure is an SmsError."""

    def __init__(
        self,
        credential: Credential,
        region: str,
        endpoint: Endpoint,
        sdk_app_id: str,
        sign_name: str,
        code_template_id: str,
        notice_template_id: str,
        retrier: Retrier,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        self.credential, self.region, self.endpoint = credential, region, endpoint
        self.sdk_app_id, self.sign_name = sdk_app_id, sign_name
        self.code_template_id, self.notice_template_id = code_template_id, notice_template_id
        self.retrier = retrier
        self.breaker = breaker or provider_breaker("tencent")

    def send(self, to_e164: str, kind: str, params: dict[str, str]) -> str:
        template = template_for(kind, self.code_template_id, self.notice_template_id)
        check_params(kind, params)
        if not E164.match(to_e164):
            raise SmsError("rejected")
        values = [params["code"]] if kind in CODE_KINDS else list(params.values())
        request = SendSmsRequest()
        request.PhoneNumberSet = [to_e164]
        request.SmsSdkAppId = self.sdk_app_id
        request.SignName = self.sign_name
        request.TemplateId = template
        request.TemplateParamSet = values
        return guarded(self.breaker, "tencent", lambda: self._send(request))

    def _send(self, request: SendSmsRequest) -> str:
        try:
            response: SendSmsResponse = self.retrier.run(self._attempt(request))
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "")
            if code in TRANSPORT_CODES or code.startswith("InternalError") or not code:
                log.warning("sms provider tencent unreachable: %s", code or type(exc).__name__)
                raise SmsError("unavailable") from None
            raise refusal("tencent", code, RULES) from None
        statuses = response.SendStatusSet or []
        if len(statuses) != 1:
            log.warning("sms provider tencent answered %d statuses for one number", len(statuses))
            raise SmsError("unavailable")
        status = statuses[0]
        if status.Code != OK:
            raise refusal("tencent", str(status.Code or "no code"), RULES)
        return str(status.SerialNo or "")

    def _attempt(self, request: SendSmsRequest) -> Callable[[float], SendSmsResponse]:
        def attempt(seconds_left: float) -> SendSmsResponse:
            # A client per attempt: the SDK keeps its timeout on the client, shared by threads.
            http = HttpProfile(endpoint=self.endpoint.host, protocol=self.endpoint.protocol, reqTimeout=seconds_left)
            client = SmsClient(self.credential, self.region, ClientProfile(httpProfile=http))
            return client.SendSms(request)

        return attempt


def tencent_sms(config: dict[str, Any], retrier: Retrier | None = None) -> TencentSms:
    """The client for SMS_BACKEND=tencent, from the TENCENT_* settings."""
    return TencentSms(
        Credential(config["TENCENT_SECRET_ID"], config["TENCENT_SECRET_KEY"]),
        region=config.get("TENCENT_SMS_REGION") or DEFAULT_REGION,
        endpoint=parse_endpoint(config.get("TENCENT_SMS_ENDPOINT") or DEFAULT_ENDPOINT),
        sdk_app_id=config["TENCENT_SMS_SDK_APP_ID"],
        sign_name=config["TENCENT_SMS_SIGN_NAME"],
        code_template_id=config["TENCENT_SMS_CODE_TEMPLATE_ID"],
        notice_template_id=config["TENCENT_SMS_NOTICE_TEMPLATE_ID"],
        retrier=retrier or Retrier(float(config.get("TENCENT_SMS_TIMEOUT", 10))),
    )


def build(config: dict[str, Any], http_client: object = None) -> SmsGateway:
    """SMS_BACKEND=tencent: the app's messages through the approved templates."""
    return TemplateGateway(tencent_sms(config))
