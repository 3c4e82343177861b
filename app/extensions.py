"""Flask extensions, created unbound and initialised in create_app."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect

# Registers the `swept-memory://` limiter store (the default without Redis) with `limits`.
from app.services import limits as _limits  # noqa: F401

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
# Storage and strategy come from settings (RATELIMIT_* in config.py); the SMS limits are in
# app/services/limits.py. Store errors surface as limits' StorageError so callers fail closed,
# and a Redis that hangs gives up quickly instead of holding a worker.
limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[],
    storage_options={"wrap_exceptions": True, "socket_timeout": 2, "socket_connect_timeout": 2},
)
