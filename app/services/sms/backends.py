"""The one registry of SMS backend names: what `SMS_BACKEND` may say, and what each one needs.

Read by the settings' validation (config.py), `make_gateway`, `check-deploy` and its checklist.
A new provider (Aliyun, Tencent Cloud) is one module of this package and one entry here.
Kept free of imports so config.py can read it before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # app.services.sms.<module>, whose build(config, http_client) makes the gateway
    production: bool  # may serve the public
    settings: tuple[str, ...] = ()  # settings it cannot start without
    checklist: tuple[str, ...] = ()  # what check-deploy asks an operator to check by hand
    # The worker's number leaves mainland China (PIPL Art. 38-39): the join form asks a separate
    # consent to the transfer, naming the provider. Alibaba Cloud and Tencent Cloud send from within.
    abroad: bool = False
    makes_codes: bool = False  # the provider makes and checks the codes itself (Twilio Verify)


TWILIO_CHECKLIST = (
    "Twilio Verify Fraud Guard is set to Max (B1)",
    "Twilio Geo Permissions allow only the regions in ALLOWED_REGIONS (B2)",
)
TWILIO_ACCOUNT = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
# The mainland providers send approved templates only: the code template and the notice template.
MAINLAND_SETTINGS = {
    "aliyun": (
        "ALIYUN_ACCESS_KEY_ID",
        "ALIYUN_ACCESS_KEY_SECRET",
        "ALIYUN_SMS_SIGN_NAME",
        "ALIYUN_SMS_CODE_TEMPLATE",
        "ALIYUN_SMS_NOTICE_TEMPLATE",
    ),
    "tencent": (
        "TENCENT_SECRET_ID",
        "TENCENT_SECRET_KEY",
        "TENCENT_SMS_SDK_APP_ID",
        "TENCENT_SMS_SIGN_NAME",
        "TENCENT_SMS_CODE_TEMPLATE_ID",
        "TENCENT_SMS_NOTICE_TEMPLATE_ID",
    ),
}
MAINLAND_CHECKLIST = ("the sign name and both templates are approved by the provider (签名与模板已审核通过)",)

REGISTRY: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("console", "console", production=False),
        Backend(
            "twilio-verify",
            "twilio_verify",
            True,
            (*TWILIO_ACCOUNT, "TWILIO_VERIFY_SERVICE_SID"),
            TWILIO_CHECKLIST,
            abroad=True,
            makes_codes=True,
        ),
        Backend(
            "twilio-messaging",
            "twilio_messaging",
            True,
            (*TWILIO_ACCOUNT, "TWILIO_FROM"),
            TWILIO_CHECKLIST,
            abroad=True,
        ),
        Backend("aliyun", "aliyun", True, MAINLAND_SETTINGS["aliyun"], MAINLAND_CHECKLIST),
        Backend("tencent", "tencent", True, MAINLAND_SETTINGS["tencent"], MAINLAND_CHECKLIST),
    )
}
# Tests only: never named to operators, never in production.
TEST_ONLY = {"memory": Backend("memory", "console", production=False)}


def names(*, production: bool = False) -> tuple[str, ...]:
    """The backend names operators may set (only those that may serve the public, if asked)."""
    return tuple(name for name, backend in REGISTRY.items() if backend.production or not production)


def spoken(choices: tuple[str, ...]) -> str:
    """`a, b or c`, as the settings' error messages say it."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def lookup(name: str) -> Backend | None:
    return REGISTRY.get(name) or TEST_ONLY.get(name)


def fallback_problem(primary: str, fallback: str, *, production: bool = False) -> str | None:
    """Why SMS_FALLBACK_BACKEND cannot back SMS_BACKEND up, or None (also when it is not set)."""
    if not fallback:
        return None
    second, first = lookup(fallback), lookup(primary)
    if second is None or (production and not second.production):
        return f"SMS_FALLBACK_BACKEND must be {spoken(names(production=production))}, not {fallback!r}"
    if fallback == primary:
        return "SMS_FALLBACK_BACKEND must name another backend than SMS_BACKEND"
    if second.makes_codes or (first is not None and first.makes_codes):
        return "SMS_FALLBACK_BACKEND needs two backends that send the app's own code: not twilio-verify"
    return None


def providers(*names: str) -> tuple[str, ...]:
    """The providers the named backends send through, in order, once each (`twilio`, `aliyun`,
    `tencent`); the development and test backends send through none."""
    found: list[str] = []
    for name in names:
        backend = lookup(name) if name else None
        if backend is None or not backend.production:
            continue
        provider = name.split("-", 1)[0]
        if provider not in found:
            found.append(provider)
    return tuple(found)


def sends_abroad(*names: str) -> bool:
    """Whether any of the named backends sends the worker's number out of mainland China."""
    return any(backend.abroad for backend in (lookup(name) for name in names if name) if backend is not None)
