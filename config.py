"""Settings, read from the environment (and an optional `.env`) when the app is created.

Nothing here runs at import time: `load_config()` builds a config object from a mapping of
environment variables, so tests pass their own mapping instead of patching `os.environ`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from limits import parse_many

ROOT = Path(__file__).resolve().parent
DEFAULT_INSTANCE = ROOT / "instance"

# Secrets that must come from the environment in production. Development writes any missing
# one to instance/secrets.json once (mode 0600) so restarts keep sessions and posters valid.
SECRET_SETTINGS = ("SECRET_KEY", "QR_SECRET", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "CARD_SIGNING_KEY")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _endpoint_ok(value: str) -> bool:
    """A provider endpoint: a bare host[:port], or http(s)://host[:port] with nothing after it."""
    if "://" not in value:
        return bool(value) and "/" not in value and " " not in value
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.path.strip("/") and not parts.query


def _new_secret(name: str) -> str:
    if name == "CARD_SIGNING_KEY":
        return new_card_key()
    return Fernet.generate_key().decode() if name == "PII_ENCRYPTION_KEY" else secrets.token_urlsafe(48)


def new_card_key() -> str:
    """A new Ed25519 card-signing key: base64 of its 32 raw bytes."""
    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def _raw_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return raw


def card_private_key(text: str) -> Ed25519PrivateKey:
    """CARD_SIGNING_KEY: base64 of 32 raw bytes, or PEM (PKCS#8); ValueError otherwise."""
    if text.strip().startswith("-----BEGIN"):
        key = load_pem_private_key(text.strip().encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw_key(text))


def card_public_key(text: str) -> Ed25519PublicKey:
    """One of CARD_PUBLIC_KEYS: base64 of 32 raw bytes, or PEM; ValueError otherwise."""
    if text.strip().startswith("-----BEGIN"):
        key = load_pem_public_key(text.strip().encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_raw_key(text))


class Config:
    """Settings shared by every environment. Each attribute is documented in README.md."""

    ENV_NAME = "base"
    DEBUG = False
    TESTING = False

    def __init__(self, env: Mapping[str, str]) -> None:
        self.INSTANCE_PATH = str(Path(env.get("INSTANCE_PATH", DEFAULT_INSTANCE)).resolve())
        instance = Path(self.INSTANCE_PATH)
        self.SECRET_KEY = env.get("SECRET_KEY", "")
        self.QR_SECRETS = _split(env.get("QR_SECRET", ""))
        self.PII_ENCRYPTION_KEYS = _split(env.get("PII_ENCRYPTION_KEY", ""))
        self.PII_INDEX_KEY = env.get("PII_INDEX_KEY", "")
        self.PUBLIC_BASE_URL = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
        self.DATABASE_URL = env.get("DATABASE_URL", f"sqlite:///{instance / 'scanjoin.db'}")
        self.SMS_BACKEND = env.get("SMS_BACKEND", "console")
        self.SMS_FALLBACK_BACKEND = env.get("SMS_FALLBACK_BACKEND", "")
        self.SMS_OUTBOX = env.get("SMS_OUTBOX", str(instance / "sms-outbox.jsonl"))
        self.TWILIO_ACCOUNT_SID = env.get("TWILIO_ACCOUNT_SID", "")
        self.TWILIO_AUTH_TOKEN = env.get("TWILIO_AUTH_TOKEN", "")
        self.TWILIO_VERIFY_SERVICE_SID = env.get("TWILIO_VERIFY_SERVICE_SID", "")
        self.TWILIO_FROM = env.get("TWILIO_FROM", "")
        self.TWILIO_TIMEOUT = float(env.get("TWILIO_TIMEOUT", "10"))
        # Only for tests against a local mock of Twilio's API; empty means Twilio itself.
        self.TWILIO_API_BASE_URL = env.get("TWILIO_API_BASE_URL", "")
        self.TWILIO_VERIFY_BASE_URL = env.get("TWILIO_VERIFY_BASE_URL", "")
        # Mainland China providers (template-only): Alibaba Cloud SMS and Tencent Cloud SMS.
        self.ALIYUN_ACCESS_KEY_ID = env.get("ALIYUN_ACCESS_KEY_ID", "")
        self.ALIYUN_ACCESS_KEY_SECRET = env.get("ALIYUN_ACCESS_KEY_SECRET", "")
        self.ALIYUN_SMS_SIGN_NAME = env.get("ALIYUN_SMS_SIGN_NAME", "")
        self.ALIYUN_SMS_CODE_TEMPLATE = env.get("ALIYUN_SMS_CODE_TEMPLATE", "")
        self.ALIYUN_SMS_NOTICE_TEMPLATE = env.get("ALIYUN_SMS_NOTICE_TEMPLATE", "")
        self.ALIYUN_SMS_ENDPOINT = env.get("ALIYUN_SMS_ENDPOINT", "dysmsapi.aliyuncs.com")
        self.ALIYUN_SMS_TIMEOUT = float(env.get("ALIYUN_SMS_TIMEOUT", "10"))
        # Alibaba Cloud voice (dyvmsapi SingleCallByTts): the code read out after a failed or slow SMS.
        self.ALIYUN_VOICE_TTS_CODE = env.get("ALIYUN_VOICE_TTS_CODE", "")  # empty: no voice call
        self.ALIYUN_VOICE_SHOW_NUMBER = env.get("ALIYUN_VOICE_SHOW_NUMBER", "")  # empty: the common mode's
        self.ALIYUN_VOICE_ENDPOINT = env.get("ALIYUN_VOICE_ENDPOINT", "dyvmsapi.aliyuncs.com")
        self.TENCENT_SECRET_ID = env.get("TENCENT_SECRET_ID", "")
        self.TENCENT_SECRET_KEY = env.get("TENCENT_SECRET_KEY", "")
        self.TENCENT_SMS_SDK_APP_ID = env.get("TENCENT_SMS_SDK_APP_ID", "")
        self.TENCENT_SMS_SIGN_NAME = env.get("TENCENT_SMS_SIGN_NAME", "")
        self.TENCENT_SMS_CODE_TEMPLATE_ID = env.get("TENCENT_SMS_CODE_TEMPLATE_ID", "")
        self.TENCENT_SMS_NOTICE_TEMPLATE_ID = env.get("TENCENT_SMS_NOTICE_TEMPLATE_ID", "")
        self.TENCENT_SMS_REGION = env.get("TENCENT_SMS_REGION", "ap-guangzhou")
        self.TENCENT_SMS_ENDPOINT = env.get("TENCENT_SMS_ENDPOINT", "sms.tencentcloudapi.com")
        self.TENCENT_SMS_TIMEOUT = float(env.get("TENCENT_SMS_TIMEOUT", "10"))
        self.ALLOWED_REGIONS = [r.upper() for r in _split(env.get("ALLOWED_REGIONS", "CN"))]
        self.QR_MAX_AGE_DAYS = int(env.get("QR_MAX_AGE_DAYS", "365"))
        self.CODE_TTL_SECONDS = int(env.get("CODE_TTL_SECONDS", "600"))
        self.CODE_MAX_TRIES = int(env.get("CODE_MAX_TRIES", "5"))
        self.RESEND_COOLDOWN_SECONDS = int(env.get("RESEND_COOLDOWN_SECONDS", "60"))
        self.UNION_NAME = env.get("UNION_NAME", "")
        self.POSTER_FONT = env.get("POSTER_FONT", "")
        self.POSTER_TEMPLATES = env.get("POSTER_TEMPLATES", str(ROOT / "qr_templates"))
        self.POSTER_CACHE = env.get("POSTER_CACHE", str(instance / "poster-cache"))
        # A decision is due within this many mainland working days (holidays and 调休 counted, see
        # app/services/deadlines.py); later, the roster flags the application overdue. The old name
        # ROSTER_OVERDUE_DAYS is read when the new one is not set, and both keys hold the value.
        self.APPROVAL_WORKING_DAYS = int(env.get("APPROVAL_WORKING_DAYS", env.get("ROSTER_OVERDUE_DAYS", "15")))
        self.ROSTER_OVERDUE_DAYS = self.APPROVAL_WORKING_DAYS
        self.REMINDER_HOUR_UTC = int(env.get("REMINDER_HOUR_UTC", "1"))  # officials' daily reminder (09:00 Beijing)
        # Member e-cards (app/services/cards.py): the Ed25519 private key that signs new cards
        # (base64 of 32 bytes, or PEM), the older public keys whose cards stay valid until they
        # expire (comma-separated base64), and how long a card is valid.
        self.CARD_SIGNING_KEY = env.get("CARD_SIGNING_KEY", "")
        self.CARD_PUBLIC_KEYS = _split(env.get("CARD_PUBLIC_KEYS", ""))
        self.CARD_VALID_DAYS = int(env.get("CARD_VALID_DAYS", "365"))
        self.MAX_CONTENT_LENGTH = int(env.get("MAX_CONTENT_LENGTH", str(64 * 1024)))
        # How long a staff set-up link (an admin sends it to a new account) stays usable, in seconds.
        self.STAFF_SETUP_MAX_AGE_SECONDS = int(env.get("STAFF_SETUP_MAX_AGE_SECONDS", str(72 * 3600)))
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO").upper()
        # json: one JSON object a line (for a log collector); text: for a person at a terminal.
        self.LOG_FORMAT = "text" if env.get("LOG_FORMAT", "json").lower() == "text" else "json"
        # Funnel counts (scans, forms, codes, joins) are written in batches this often; 0 writes
        # at the end of each request. A killed process loses at most this many seconds of counts.
        self.FUNNEL_FLUSH_SECONDS = float(env.get("FUNNEL_FLUSH_SECONDS", "5"))
        # The durable queue of SMS tasks (app/services/tasks.py), run by `flask --app wsgi worker`:
        # sqlite:///path (one machine), redis://… (several machines) or immediate (tests only).
        self.TASK_QUEUE = env.get("TASK_QUEUE", f"sqlite:///{instance / 'tasks.db'}")
        # The key of /sms/<aliyun|tencent>/receipts?key=…, where the mainland providers push
        # delivery reports and replies (empty: the path answers 404).
        self.SMS_RECEIPT_SECRET = env.get("SMS_RECEIPT_SECRET", "")
        self.TASK_QUEUE_NAME = env.get("TASK_QUEUE_NAME", "scanjoin")  # Redis: one name per deployment
        # Webhooks (app/services/webhooks/): loopback, private and link-local addresses are refused
        # unless WEBHOOK_ALLOW_PRIVATE=1 (tests, internal systems); each try waits this long to
        # connect and to read; a failed try is retried after WEBHOOK_RETRY_BASE_SECONDS, then twice as
        # long each time (at most an hour apart), for WEBHOOK_RETRY_HOURS after the event.
        self.WEBHOOK_ALLOW_PRIVATE = _bool(env.get("WEBHOOK_ALLOW_PRIVATE", "0"))
        self.WEBHOOK_TIMEOUT_SECONDS = float(env.get("WEBHOOK_TIMEOUT_SECONDS", "10"))
        self.WEBHOOK_RETRY_BASE_SECONDS = float(env.get("WEBHOOK_RETRY_BASE_SECONDS", "60"))
        self.WEBHOOK_RETRY_HOURS = float(env.get("WEBHOOK_RETRY_HOURS", "24"))
        # Threads of the consumer: each waits on the provider, so a slow one holds these only.
        self.TASK_WORKERS = int(env.get("TASK_WORKERS", "8"))
        # A poster's rendered page is reused this long per process (0: render every time); a
        # change made on another server shows here within this many seconds.
        self.SCAN_PAGE_CACHE_SECONDS = float(env.get("SCAN_PAGE_CACHE_SECONDS", "10"))
        # redis://, rediss://, redis+sentinel://[:password@]host:port[,host:port]/service_name or
        # redis+cluster://host:port[,host:port] (the `limits` library's schemes).
        self.REDIS_URL = env.get("REDIS_URL", "")
        # /metrics answers only with this bearer token (404 without one: use METRICS_BIND).
        self.METRICS_TOKEN = env.get("METRICS_TOKEN", "")
        self.RATELIMIT_STORAGE_URI = env.get("RATELIMIT_STORAGE_URI", self.REDIS_URL or "swept-memory://")
        self.RATELIMIT_STRATEGY = "moving-window"
        self.RATELIMIT_HEADERS_ENABLED = True
        # /api/v1 (project choice): calls per bearer token (per user for cookie calls, per IP without
        # credentials), and refused calls (no or bad token) per client IP, which stops token guessing.
        self.API_RATE_LIMIT = env.get("API_RATE_LIMIT", "300 per minute")
        self.API_AUTH_FAILURE_LIMIT = env.get("API_AUTH_FAILURE_LIMIT", "20 per minute")
        # Most SMS per rolling day for the whole service (SMS pumping: docs/security.md B4).
        self.SMS_DAILY_BUDGET = int(env.get("SMS_DAILY_BUDGET", "2000"))
        # B6: alert when fewer than CONVERSION_MIN_PERCENT % of at least CONVERSION_MIN_SENDS codes
        # sent in the moving window were verified (overall or for one 7-digit prefix).
        self.CONVERSION_MIN_SENDS = int(env.get("CONVERSION_MIN_SENDS", "20"))
        self.CONVERSION_MIN_PERCENT = int(env.get("CONVERSION_MIN_PERCENT", "50"))
        self.CONVERSION_WINDOW_SECONDS = int(env.get("CONVERSION_WINDOW_SECONDS", "3600"))
        # Sends this recent are not judged yet: a crowd at a poster would read as pumping until
        # its codes come back (the tests judge at once, as docs/security.md's scenario 17 does).
        self.CONVERSION_GRACE_SECONDS = int(env.get("CONVERSION_GRACE_SECONDS", "180"))
        # B5: a picture of digits before the send while such an alert holds, or once this share
        # of the client's IP or the poster's limits is used (100 or more: never on that ground).
        self.CHALLENGE_NEAR_LIMIT_PERCENT = int(env.get("CHALLENGE_NEAR_LIMIT_PERCENT", "80"))
        # A picture is answered once, within this time (at most an hour: see limits.CHALLENGE_ANSWER).
        self.CHALLENGE_TTL_SECONDS = min(int(env.get("CHALLENGE_TTL_SECONDS", "300")), 3600)
        self.RETENTION_DRAFT_HOURS = int(env.get("RETENTION_DRAFT_HOURS", "24"))
        self.RETENTION_REJECTED_DAYS = int(env.get("RETENTION_REJECTED_DAYS", "30"))
        # Roster exports (app/services/export_jobs.py): files prepared by `flask worker` are kept
        # this long under INSTANCE_PATH/exports, then deleted; their download links live as long.
        self.EXPORT_RETENTION_HOURS = int(env.get("EXPORT_RETENTION_HOURS", "24"))
        # Where the consumer writes export files and the app servers read them: one folder both
        # see (the same disk, or a shared mount when the consumer runs on another machine).
        self.EXPORT_FOLDER = str(Path(env.get("EXPORT_FOLDER", str(instance / "exports"))).resolve())
        # A filter of at most this many rows may still stream straight from /roster/export.<fmt> and
        # the API; a larger one is prepared as a job (0: every export is a job).
        self.EXPORT_STREAM_MAX_ROWS = int(env.get("EXPORT_STREAM_MAX_ROWS", "10000"))
        self.PROXY_FIX_X_FOR = int(env.get("PROXY_FIX_X_FOR", "0"))
        self.TRUSTED_HOSTS = _split(env.get("TRUSTED_HOSTS", "")) or None
        self.SESSION_COOKIE_SECURE = _bool(env.get("SESSION_COOKIE_SECURE", "false"))
        # __Host- cookies must be Secure, host-only and on "/": browsers refuse them otherwise.
        self.SESSION_COOKIE_NAME = "__Host-session" if self.SESSION_COOKIE_SECURE else "session"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.PERMANENT_SESSION_LIFETIME = 24 * 3600
        # Staff sessions (docs/security.md D5): ended after this long idle, and this long after sign-in.
        self.SESSION_IDLE_SECONDS = int(env.get("SESSION_IDLE_SECONDS", "3600"))
        self.SESSION_MAX_SECONDS = int(env.get("SESSION_MAX_SECONDS", str(24 * 3600)))
        # Slow typists on weak networks: a join form stays valid for two hours (docs/security.md E4).
        self.WTF_CSRF_TIME_LIMIT = 2 * 3600
        self.BABEL_DEFAULT_LOCALE = "zh_Hans_CN"
        self.BABEL_SUPPORTED_LOCALES = ["zh_Hans_CN", "en"]
        self.BABEL_DEFAULT_TIMEZONE = env.get("TIMEZONE", "Asia/Shanghai")

    def check(self) -> None:
        """Raise ConfigError when a setting cannot work."""
        missing = [name for name in SECRET_SETTINGS if not self._secret_value(name)]
        if missing:
            raise ConfigError(f"missing required settings: {', '.join(missing)}")
        for key in self.PII_ENCRYPTION_KEYS:
            try:
                Fernet(key)
            except ValueError as exc:
                raise ConfigError("PII_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes)") from exc
        self._check_card_keys()
        # A webhook try connects, then reads, each within the timeout: both must end inside the
        # outbox's 30 s lease (app/services/tasks.py), or a second consumer would try it meanwhile.
        if not 0 < self.WEBHOOK_TIMEOUT_SECONDS <= 14:
            raise ConfigError("WEBHOOK_TIMEOUT_SECONDS must be more than 0 and at most 14")
        if self.WEBHOOK_RETRY_BASE_SECONDS <= 0 or self.WEBHOOK_RETRY_HOURS <= 0:
            raise ConfigError("WEBHOOK_RETRY_BASE_SECONDS and WEBHOOK_RETRY_HOURS must be more than 0")
        for name in ("API_RATE_LIMIT", "API_AUTH_FAILURE_LIMIT"):
            try:
                parse_many(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"{name} must be a rate such as '300 per minute'") from exc
        from app.services.sms import backends  # the one registry of backend names (no imports of its own)

        if backends.lookup(self.SMS_BACKEND) is None:
            raise ConfigError(f"SMS_BACKEND must be {backends.spoken(backends.names())}, not {self.SMS_BACKEND!r}")
        fallback_problem = backends.fallback_problem(self.SMS_BACKEND, self.SMS_FALLBACK_BACKEND)
        if fallback_problem:
            raise ConfigError(fallback_problem)
        for name in ("ALIYUN_SMS_ENDPOINT", "ALIYUN_VOICE_ENDPOINT", "TENCENT_SMS_ENDPOINT"):
            if not _endpoint_ok(getattr(self, name)):
                raise ConfigError(f"{name} must be a host name or http(s)://host[:port], with no path")
        for name in ("ALIYUN_SMS_TIMEOUT", "TENCENT_SMS_TIMEOUT"):
            if not 0 < getattr(self, name) <= 60:
                raise ConfigError(f"{name} must be more than 0 and at most 60 seconds")

    def _check_card_keys(self) -> None:
        try:
            card_private_key(self.CARD_SIGNING_KEY)
        except ValueError as exc:
            raise ConfigError("CARD_SIGNING_KEY must be an Ed25519 private key (base64 of 32 bytes, or PEM)") from exc
        for key in self.CARD_PUBLIC_KEYS:
            try:
                card_public_key(key)
            except ValueError as exc:
                raise ConfigError("CARD_PUBLIC_KEYS must be Ed25519 public keys (base64 of 32 bytes)") from exc

    def _secret_value(self, name: str) -> str | Sequence[str]:
        return {
            "SECRET_KEY": self.SECRET_KEY,
            "QR_SECRET": self.QR_SECRETS,
            "PII_ENCRYPTION_KEY": self.PII_ENCRYPTION_KEYS,
            "PII_INDEX_KEY": self.PII_INDEX_KEY,
            "CARD_SIGNING_KEY": self.CARD_SIGNING_KEY,
        }[name]

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k.isupper()}


class DevelopmentConfig(Config):
    """The default: SQLite under instance/, console SMS, secrets generated once."""

    ENV_NAME = "development"

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__({**self._stored_secrets(env), **env})

    @staticmethod
    def _stored_secrets(env: Mapping[str, str]) -> dict[str, str]:
        instance = Path(env.get("INSTANCE_PATH", DEFAULT_INSTANCE))
        path = instance / "secrets.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in SECRET_SETTINGS if not env.get(name) and not stored.get(name)]
        if missing:
            stored.update({name: _new_secret(name) for name in missing})
            instance.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(json.dumps(stored, indent=2))
        return stored


class TestingConfig(Config):
    """Used by the test suite: an explicit mapping, memory SMS backend, no CSRF unless asked."""

    ENV_NAME = "testing"
    TESTING = True

    def __init__(self, env: Mapping[str, str]) -> None:
        defaults = {
            "SMS_BACKEND": "memory",
            "PUBLIC_BASE_URL": "https://join.example.org",
            "FUNNEL_FLUSH_SECONDS": "0",
            "TASK_QUEUE": "immediate",
            "CONVERSION_GRACE_SECONDS": "0",
            # A key of its own per test app when a test gives none (random, never one in the source).
            "CARD_SIGNING_KEY": env.get("CARD_SIGNING_KEY") or new_card_key(),
        }
        super().__init__({**defaults, **env})


class ProductionConfig(Config):
    """Refuses to start without its secrets and a real SMS provider."""

    ENV_NAME = "production"

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.SESSION_COOKIE_SECURE = True
        self.SESSION_COOKIE_NAME = "__Host-session"

    def check(self) -> None:
        super().check()
        from app.services.sms import backends

        backend = backends.lookup(self.SMS_BACKEND)
        if backend is None or not backend.production:
            raise ConfigError(f"production needs SMS_BACKEND={backends.spoken(backends.names(production=True))}")
        problem = backends.fallback_problem(self.SMS_BACKEND, self.SMS_FALLBACK_BACKEND, production=True)
        if problem:
            raise ConfigError(problem)
        fallback = backends.lookup(self.SMS_FALLBACK_BACKEND) if self.SMS_FALLBACK_BACKEND else None
        needed = [*backend.settings, *(fallback.settings if fallback else ())]
        missing = [name for name in dict.fromkeys(needed) if not getattr(self, name)]
        if missing:
            raise ConfigError(f"missing required settings: {', '.join(missing)}")
        if self.RATELIMIT_STORAGE_URI.split("://", 1)[0] in ("memory", "swept-memory"):
            raise ConfigError("production needs REDIS_URL (limits must be shared by every worker, not in memory)")
        if not self.TASK_QUEUE.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
            raise ConfigError("production needs TASK_QUEUE=sqlite:///path or redis://… (codes must survive a restart)")
        if self.QR_SECRETS[0] == self.SECRET_KEY or self.PII_INDEX_KEY in (self.SECRET_KEY, *self.QR_SECRETS):
            raise ConfigError("SECRET_KEY, QR_SECRET and PII_INDEX_KEY must be different keys")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build the config named by APP_ENV (default development) from `env` or os.environ."""
    if env is None:
        from dotenv import dotenv_values

        env = {**{k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None}, **os.environ}
    name = env.get("APP_ENV", "development")
    if name not in CONFIGS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(CONFIGS)}, not {name!r}")
    config = CONFIGS[name](env)
    config.check()
    return config
