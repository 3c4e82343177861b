"""Staff sign-in and sign-out, session limits and login throttling.

Sign-in has two steps (docs/security.md D3): the password, then a code (app/web/mfa.py). Between them
the session holds only a "pending" mark bound to the account's session version; Flask-Login sees
the user only once both passed, so every staff page refuses a half-signed-in session.
Sessions end on the server by bumping `session_version`; the idle and absolute limits are checked
against timestamps kept in the signed session on every request (docs/security.md D4–D6).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from app.db import get_session
from app.extensions import limiter, login_manager
from app.models import AuditEvent, User, utcnow
from app.security import safe_path
from app.services import conversion, mfa, numbers, users
from app.web.access import role_required, staff

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

# docs/security.md D5 (SP 800-63B-4 AAL2): 1 h without a request, 24 h since sign-in.
DEFAULT_IDLE_SECONDS = 3600
DEFAULT_MAX_SECONDS = 24 * 3600
# Rewrite the cookie at most once a minute: the idle limit is exact to within that.
SEEN_GRANULARITY = 60
# docs/security.md D4, warehouse's numbers: 10 failures per 5 min per account and per IP, 1000 in all.
LOGIN_LIMIT = "10 per 5 minutes"
LOGIN_GLOBAL_LIMIT = "1000 per 5 minutes"
KEPT_ON_SIGN_IN = ("lang",)
PENDING = "mfa_pending"
# Time from the right password to the second factor. Enrolment may mean installing an app first
# (project choice); the secret being set up is kept, so signing in again shows the same QR code.
PENDING_SECONDS = 15 * 60


class StaffUser(UserMixin):
    """The signed-in user as Flask-Login sees it: id plus the session version it signed in with."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = f"{user.id}:{user.session_version}"


@login_manager.user_loader
def load_user(user_key: str) -> StaffUser | None:
    user_id, _, version = user_key.partition(":")
    if not numbers.digits(user_id):
        return None
    user = get_session().get(User, int(user_id))
    if user is None or not user.active or str(user.session_version) != version or not mfa.enrolled(user):
        return None
    return StaffUser(user)


@login_manager.unauthorized_handler
def unauthorized() -> Response:
    log.info("denied: not signed in for %s", request.endpoint)
    if pending_user() is not None:  # half signed in: only the code step is open
        return redirect(url_for("mfa.code"))
    flash(login_manager.login_message)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def begin_second_factor(user: User) -> None:
    """The password was right: a fresh session that only remembers who is half signed in."""
    target = _next_page()
    _fresh_session()
    now = int(utcnow().timestamp())
    session[PENDING] = {"user": user.id, "version": user.session_version, "at": now, "next": target}


def pending_user() -> User | None:
    """The account half signed in on this session, while it is still active, unlocked and recent."""
    data = session.get(PENDING)
    if not isinstance(data, dict) or not isinstance(data.get("user"), int) or not isinstance(data.get("at"), int):
        return None
    if int(utcnow().timestamp()) - data["at"] > PENDING_SECONDS:
        return None
    user = get_session().get(User, data["user"])
    if user is None or not user.active or user.locked_at is not None or user.session_version != data.get("version"):
        return None
    return user


def finish_sign_in(user: User) -> str:
    """Both factors passed: the real session starts; returns where to go next."""
    data = session.get(PENDING) or {}
    start_session(user)
    return safe_path(data.get("next"), url_for("auth.home"))


login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please sign in to see this page.")


@bp.before_app_request
def enforce_session_limits() -> None:
    """End a staff session that sat idle too long or outlived its absolute limit."""
    if "_user_id" not in session:
        return
    now = int(utcnow().timestamp())
    started, seen = session.get("auth_at"), session.get("seen_at")
    config = current_app.config
    idle = config.get("SESSION_IDLE_SECONDS", DEFAULT_IDLE_SECONDS)
    longest = config.get("SESSION_MAX_SECONDS", DEFAULT_MAX_SECONDS)
    if not isinstance(started, int) or not isinstance(seen, int) or now - seen > idle or now - started > longest:
        log.info("session ended by its time limit")
        logout_user()
        _fresh_session()
        flash(_l("Your session has ended. Please sign in again."))
        return
    if now - seen >= SEEN_GRANULARITY:
        session["seen_at"] = now


def _fresh_session() -> None:
    """Drop everything in the session (CSRF secret included) except the language choice."""
    kept = {key: session[key] for key in KEPT_ON_SIGN_IN if key in session}
    session.clear()
    session.update(kept)


PASSWORD_PROBLEMS = {
    "short": _l("The new password needs at least %(n)s characters.", n=users.MIN_PASSWORD),
    "long": _l("The new password can have at most %(n)s characters.", n=users.MAX_PASSWORD),
    "common": _l("This password is one of the most common ones. Please choose another."),
    "email": _l("The password must not be your email address."),
}


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    new = PasswordField(_l("New password"), validators=[DataRequired()])


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])


def _login_failed(response: Response) -> bool:
    return response.status_code == 422


def _account_key() -> str:
    # Keyed by a hash: the limiter's store (Redis) never holds an email address. The password
    # step names the account in the form; the code steps know it from the session.
    if request.endpoint == "auth.login":
        email = request.form.get("email") or ""
    else:
        user = current_user.user if current_user.is_authenticated else pending_user()
        email = user.email if user is not None else ""
    return "login-account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _global_key() -> str:
    return "login-all"


def login_limits(view: Callable[..., Any]) -> Callable[..., Any]:
    """docs/security.md D4 on a sign-in step; the password and code steps share one count per account,
    per IP and in all, so guesses at either step add up."""
    for limit, key, scope in (
        (LOGIN_LIMIT, _account_key, "login-account"),
        (LOGIN_LIMIT, None, "login-ip"),
        (LOGIN_GLOBAL_LIMIT, _global_key, "login-all"),
    ):
        view = limiter.shared_limit(limit, scope, key_func=key, methods=["POST"], deduct_when=_login_failed)(view)
    return view


@bp.route("/login", methods=["GET", "POST"])
@login_limits
def login() -> ResponseReturnValue:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        db = get_session()
        user = users.authenticate(db, form.email.data or "", form.password.data or "", now=utcnow())
        db.commit()
        if user is not None:
            begin_second_factor(user)
            return redirect(url_for("mfa.code" if mfa.enrolled(user) else "mfa.setup"))
        error = _l("Email or password is not right.")
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form, error=error), status


def start_session(user: User) -> None:
    """A fresh session on sign-in (no fixation), stamped for the idle and absolute limits."""
    _fresh_session()
    login_user(StaffUser(user))
    now = int(utcnow().timestamp())
    session["auth_at"] = session["seen_at"] = now


def _next_page() -> str:
    return safe_path(request.args.get("next"), url_for("auth.home"))


@bp.get("/home")
@login_required
def home() -> str:
    user = current_user.user
    return render_template(
        "auth/home.html",
        user=user,
        sms_alerts=_sms_alerts(user),
        window_minutes=current_app.config["CONVERSION_WINDOW_SECONDS"] // 60,
    )


def _sms_alerts(user: User) -> list[AuditEvent]:
    """Admins see this window's low-conversion alerts (docs/security.md B6): counters only."""
    if user.role.value != "admin":
        return []
    window = timedelta(seconds=current_app.config["CONVERSION_WINDOW_SECONDS"])
    return conversion.recent_alerts(get_session(), now=utcnow(), within=window)


@bp.post("/logout")
def logout() -> Response:
    """Sign out, also from a half-signed-in session (the only other place it may go)."""
    if current_user.is_authenticated:
        db = get_session()
        users.end_sessions(db, current_user.user)  # every copy of the old cookie stops working
        db.commit()
    logout_user()
    _fresh_session()
    log.info("user signed out")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"], deduct_when=_login_failed)
@login_required
def change_password() -> ResponseReturnValue:
    """Change one's own password (the current one first); every other session of the user ends."""
    form, error = PasswordForm(), None
    if form.validate_on_submit():
        db, user = get_session(), current_user.user
        problem = users.password_problem(form.new.data or "", user.email)
        if not users.verify_password(user, form.current.data or ""):
            error = _l("The current password is not right.")
        elif problem is not None:
            error = PASSWORD_PROBLEMS[problem]
        else:
            users.set_password(db, user, form.new.data or "", actor_id=user.id)
            db.commit()
            start_session(user)  # this device stays signed in with the new session version
            flash(_("Your password is changed. Other devices are signed out."))
            return redirect(url_for("auth.home"), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("auth/password.html", form=form, error=error, min_length=users.MIN_PASSWORD), status


@bp.get("/users")
@role_required()  # admins only
def user_list() -> str:
    return render_template("auth/users.html", users=users.all_users(get_session()), me=staff())


@bp.post("/users/<int:user_id>/unlock")
@role_required()
def unlock(user_id: int) -> Response:
    """An admin lifts the lock left by too many failed sign-ins."""
    db = get_session()
    try:
        user = users.get(db, user_id)
    except users.UserNotFound:
        abort(404)
    users.unlock(db, user, actor_id=staff().id)
    db.commit()
    flash(_("The account is unlocked."))
    return redirect(url_for("auth.user_list"), 303)
