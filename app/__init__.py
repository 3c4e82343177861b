"""ScanJoin: scan a poster, join the union."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any

from babel import Locale
from flask import Flask, request, session
from flask import Request as FlaskRequest
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header
from werkzeug.middleware.proxy_fix import ProxyFix

from app.security import CleanJSONProvider, CleanMultiDict, CleanString
from app.sessions import CookieSessions

if TYPE_CHECKING:
    from babel import support


class ScanJoinFlask(Flask):
    """Flask with one change: `ensure_sync` remembers its answer per function.

    Flask asks it of every hook, view and error handler it calls, on every request (14 times for a
    poster page), and each time `inspect` unwraps the function to see whether it is a coroutine
    function (~1.5 µs apiece). Whether a function is one never changes, so plain functions and
    bound methods found not to be are remembered, weakly: a callable made per request (a
    class-based view's bound method, an `after_this_request` closure) leaves the set with its last
    reference. Coroutine functions and other callables are asked about every time, as in Flask.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_functions: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) not in (FunctionType, MethodType):
            return super().ensure_sync(func)
        if func in self._sync_functions:
            return func
        sync = super().ensure_sync(func)
        if sync is func:
            self._sync_functions.add(func)
        return sync


def create_app(config: Any | None = None, env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from a config object, or from `env` / the process environment."""
    from config import load_config

    config = config or load_config(env)
    app = ScanJoinFlask(__name__, instance_path=config.INSTANCE_PATH, instance_relative_config=False)
    app.request_class = Request
    app.session_interface = CookieSessions()
    app.json = CleanJSONProvider(app)
    app.url_map.converters["default"] = app.url_map.converters["string"] = CleanString
    app.config.update(config.as_dict())
    app.config["APP_ENV"] = config.ENV_NAME
    app.config["TESTING"] = config.TESTING
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_events(app)
    register_errorhandlers(app)
    register_commands(app)
    register_middleware(app, config.PROXY_FIX_X_FOR)
    return app


def register_middleware(app: Flask, proxies: int) -> None:
    """A poster's first visits answered before Flask's request cycle (app/web/worker/first_visit.py),
    then, outermost, the client's address and scheme as the trusted proxies give them."""
    from app.web.worker.first_visit import FirstVisits

    app.wsgi_app = FirstVisits(app, app.wsgi_app)  # type: ignore[method-assign]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=1)  # type: ignore[method-assign]


def configure_logging(app: Flask) -> None:
    from app.logs import install_redaction

    install_redaction(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def register_extensions(app: Flask) -> None:
    from app import db, security
    from app.extensions import babel, csrf, limiter, login_manager, skip_limiter_hook_where_free
    from app.services import limits
    from app.services.cards import CardSigner
    from app.services.crypto import PiiCipher
    from app.services.sms import make_gateway
    from app.services.tokens import QrSigner

    db.init_app(app)
    # CSRFProtect's own hook looks up exemptions (and builds a name from the view) before it looks
    # at the method, on every GET too; Flask-WTF's documented alternative is to turn the default
    # check off and call protect() where it applies: here, in the same place among the hooks,
    # for the methods it checks (POST, PUT, PATCH, DELETE) only.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    app.before_request(security.check_csrf)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    limiter.init_app(app)
    skip_limiter_hook_where_free(app)
    limits.protect_keys(limiter.storage, app.config["PII_INDEX_KEY"])  # no address or token in clear
    security.init_app(app)
    app.extensions["pii"] = PiiCipher(app.config["PII_ENCRYPTION_KEYS"], app.config["PII_INDEX_KEY"])
    app.extensions["qr_signer"] = QrSigner(app.config["QR_SECRETS"], app.config["QR_MAX_AGE_DAYS"])
    app.extensions["sms"] = make_gateway(app.config)
    app.extensions["card_signer"] = CardSigner.from_settings(
        app.config["CARD_SIGNING_KEY"], app.config["CARD_PUBLIC_KEYS"]
    )
    app.context_processor(template_globals)
    register_caches(app)


def register_caches(app: Flask) -> None:
    """Per-process caches and buffers that keep work off the request's path."""
    from sqlmodel import Session

    from app.db import writing
    from app.services import page_cache
    from app.services.stats import FunnelBuffer

    page_cache.watch_places()
    app.extensions["scan_pages"] = page_cache.PageCache(app.config["SCAN_PAGE_CACHE_SECONDS"])
    engine = app.extensions["db_engine"]
    funnel = FunnelBuffer(lambda: Session(writing(engine)), app.config["FUNNEL_FLUSH_SECONDS"])
    app.extensions["funnel"] = funnel
    # Last of the teardowns (Flask runs them in reverse): after the request's session is closed,
    # so on SQLite the write never waits on the request's own transaction.
    app.teardown_appcontext_funcs.insert(0, lambda _exc: funnel.flush_if_due())


def register_events(app: Flask) -> None:
    """The one channel for side effects after a commit (app/services/events.py) and its handlers."""
    from pathlib import Path

    from sqlmodel import Session

    from app.db import writing
    from app.extensions import limiter
    from app.services import conversion, events, export_jobs, limits, phone_proof, tasks

    events.install()
    bus = events.Bus()
    app.extensions["events"] = bus
    engine, config, pii = app.extensions["db_engine"], app.config, app.extensions["pii"]
    events.attach(engine, bus)

    def new_session() -> Session:  # handlers write in sessions of their own
        return Session(writing(engine), expire_on_commit=False)

    def gateway() -> Any:  # the app's SMS gateway, looked up when used (tests replace it)
        return app.extensions["sms"]

    proof = phone_proof.PhoneProof(
        limits.Limits(limiter.limiter, daily_budget=config["SMS_DAILY_BUDGET"]),  # the app's one Limits
        pii,
        gateway,
        phone_proof.Settings(
            key=config["SECRET_KEY"],
            ttl=config["CODE_TTL_SECONDS"],
            max_tries=config["CODE_MAX_TRIES"],
            near_limit_percent=config["CHALLENGE_NEAR_LIMIT_PERCENT"],
            thresholds=conversion.Thresholds(
                min_sends=config["CONVERSION_MIN_SENDS"],
                min_percent=config["CONVERSION_MIN_PERCENT"],
                window_seconds=config["CONVERSION_WINDOW_SECONDS"],
                grace_seconds=config["CONVERSION_GRACE_SECONDS"],
            ),
        ),
    )
    app.extensions["phone_proof"] = proof
    link = app.config["PUBLIC_BASE_URL"] + app.url_map.bind("localhost").build("status.start")
    # Every SMS a commit owes is an outbox row, sent by `flask worker` (app/services/tasks.py).
    deliveries = tasks.Deliveries(
        tasks.make_huey(config["TASK_QUEUE"], config["TASK_QUEUE_NAME"]),
        pii,
        gateway,
        new_session,
        tasks.Settings(config["SECRET_KEY"], link),
    )
    app.extensions["tasks"] = deliveries
    deliveries.subscribe(bus)
    # Roster exports are jobs on the same queue (app/services/export_jobs.py).
    exports = export_jobs.Exports(
        deliveries.huey,
        pii,
        new_session,
        engine,
        export_jobs.Settings(Path(config["EXPORT_FOLDER"]), config["EXPORT_RETENTION_HOURS"]),
    )
    app.extensions["exports"] = exports
    exports.subscribe(bus)
    register_integrations(app, deliveries)
    register_lifecycle(app, bus, deliveries, new_session)


def register_integrations(app: Flask, deliveries: Any) -> None:
    """Signed webhooks and district group robots: kinds of the outbox, sent by the consumer."""
    from app.services import robots, webhooks

    bus, config, pii = app.extensions["events"], app.config, app.extensions["pii"]
    settings = webhooks.Settings(
        allow_private=config["WEBHOOK_ALLOW_PRIVATE"],
        timeout=config["WEBHOOK_TIMEOUT_SECONDS"],
        retry_base=config["WEBHOOK_RETRY_BASE_SECONDS"],
        retry_hours=config["WEBHOOK_RETRY_HOURS"],
    )
    hooks = webhooks.Webhooks(deliveries, pii, settings)
    app.extensions["webhooks"] = hooks
    hooks.subscribe(bus)
    chat = robots.Robots(deliveries, pii, settings)
    app.extensions["robots"] = chat
    chat.subscribe(bus)


def register_lifecycle(app: Flask, bus: Any, deliveries: Any, new_session: Any) -> None:
    """A question to an applicant texts the same neutral status link; officials' daily reminder."""
    from huey import crontab
    from huey.exceptions import TaskLockedException

    from app.models import utcnow
    from app.services import lifecycle

    # the same outbox row and wake-up as a decision notice (app/services/tasks.py)
    bus.subscribe_in_transaction(lifecycle.QuestionAsked, deliveries.write_notice)
    bus.subscribe(lifecycle.QuestionAsked, deliveries.enqueue_notice)
    days = app.config["APPROVAL_WORKING_DAYS"]

    def daily_reminders() -> int:
        # Every consumer's scheduler runs this: one at a time (a lock in the queue's storage), and
        # each skips the districts the audit log says were reminded today, so a district hears once.
        try:
            with deliveries.huey.lock_task("daily_reminders"):
                with new_session() as db:
                    sent = lifecycle.send_reminders(db, now=utcnow(), days=days)
                    db.commit()
        except TaskLockedException:
            return 0
        return len(sent)

    # 01:00 UTC is 09:00 in Beijing; run by `flask worker` (its scheduler); once a day per district.
    every_morning = crontab(minute="0", hour=str(app.config["REMINDER_HOUR_UTC"]))
    app.extensions["reminders"] = deliveries.huey.periodic_task(every_morning, name="daily_reminders")(daily_reminders)


class WtformsTranslations:
    """WTForms' own messages in the request's language, each catalogue loaded once per process."""

    def ugettext(self, string: str) -> str:
        return _wtforms_catalogue(_locale()).ugettext(string)

    def ungettext(self, singular: str, plural: str, n: int) -> str:
        return _wtforms_catalogue(_locale()).ungettext(singular, plural, n)


class Request(FlaskRequest):
    # Every form and query value is cleaned as Werkzeug parses it (app/security.py clean_text):
    # no view, form or service sees a control, format or unassigned character (issue 12).
    parameter_storage_class = CleanMultiDict
    # Flask-WTF looks for WTForms' translations on the request before loading them from disk,
    # which it would otherwise do in every request: one object serves every request.
    wtforms_translations = WtformsTranslations()


def _locale() -> str:
    from flask_babel import get_locale

    return str(get_locale())


@functools.cache
def _wtforms_catalogue(locale: str) -> support.NullTranslations:
    from babel import support
    from wtforms.i18n import messages_path

    return support.Translations.load(messages_path(), [locale], domain="wtforms")


def template_globals() -> dict[str, object]:
    from flask_babel import get_locale

    return {"get_locale": get_locale}


def select_locale() -> Locale:
    """The worker's choice, else the browser's preference, else Chinese."""
    chosen = session.get("lang")
    if chosen in LOCALES:
        return LOCALES[chosen]
    return locale_for_header(request.environ.get("HTTP_ACCEPT_LANGUAGE", ""))


def locale_for_header(header: str) -> Locale:
    """What an Accept-Language header asks for (zh_Hans_CN when it asks for neither language)."""
    # Browsers send a few short headers; a long one (anyone can send anything) is not kept.
    return _preferred(header) if len(header) <= 200 else _preferred.__wrapped__(header)


# Parsed once: Flask-Babel would parse the name the selector returns on every request.
LOCALES = {name: Locale.parse(name) for name in ("zh_Hans_CN", "en")}
LOCALE_NAMES = {locale: name for name, locale in LOCALES.items()}  # str(locale), without rebuilding it


@functools.lru_cache(maxsize=512)
def _preferred(accept_language: str) -> Locale:
    """The locale an Accept-Language header asks for; the few headers browsers send are cached."""
    best = parse_accept_header(accept_language, LanguageAccept).best_match(["zh", "en"], default="zh")
    return LOCALES["en" if best == "en" else "zh_Hans_CN"]


def register_blueprints(app: Flask) -> None:
    """Register the `bp` of every module in app/web (a new audience is a new module)."""
    from app.web import DatabaseId, blueprint_modules
    from app.web.worker import poster

    app.url_map.converters["qrtoken"] = poster.QrTokenConverter
    app.url_map.converters["int"] = DatabaseId
    for module in blueprint_modules():
        app.register_blueprint(module.bp)


def register_errorhandlers(app: Flask) -> None:
    from app.web.errors import register

    register(app)


def register_commands(app: Flask) -> None:
    from app.cli import register

    register(app)
