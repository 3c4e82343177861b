"""Flask extensions, created unbound and initialised in create_app."""

from flask import Flask, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect

# Importing the package registers the `swept-memory://` limiter store (the default without Redis).
from app.services import limits
from app.services.limits import library_adapter

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()


def client_address_key() -> str:
    """Flask-Limiter's key for a client: a keyed hash of its address (or IPv6 /64), never the address."""
    return limits.keyed(limiter.storage, "address", limits.ip_key(get_remote_address()))


# Storage and strategy come from settings (RATELIMIT_* in config.py); the SMS limits are in
# app/services/limits/. Store errors surface as limits' StorageError so callers fail closed,
# and a Redis that hangs gives up quickly instead of holding a worker.
limiter = Limiter(
    key_func=client_address_key,
    default_limits=[],
    storage_options={"wrap_exceptions": True, "socket_timeout": 2, "socket_connect_timeout": 2},
)

# The worker's join pages carry no Flask-Limiter limit (their SMS limits are counted by
# app/services/limits/, in the view), so Flask-Limiter skips them before resolving any limit
# (its hook cost ~0.1 ms a request). A `@limiter.limit` there would be skipped too: there is none.
LIMITER_FREE_BLUEPRINTS = frozenset({"join"})


@limiter.request_filter
def _limiter_free() -> bool:
    return request.blueprint in LIMITER_FREE_BLUEPRINTS


def skip_limiter_hook_where_free(app: Flask) -> None:
    """Even with the filter above, Flask-Limiter's hooks cost ~65 µs a request (before it: the
    request's limits, then the meta limits, resolved before a filter can say no; after it and at
    teardown: its per-request context): a tenth of a cached poster page. The free blueprints
    skip them outright (library_adapter)."""
    library_adapter.skip_request_hooks(app, limiter, _limiter_free)
