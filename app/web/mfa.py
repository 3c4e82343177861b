"""The second sign-in step (docs/security.md D3): a code from an authenticator app, enrolment, re-enrolment.

- `/login/code`: after the right password, a TOTP code or a recovery code completes the sign-in.
- `/login/setup`: an account without TOTP (new, or reset by an admin) sets it up before any other
  page; also where a signed-in user replaces the app, after proving password and code again.
- `/mfa`: the signed-in user's own page: replace the app or get new recovery codes (re-auth first,
  ASVS 7.5.1). `/users/<id>/reset-mfa`: an admin's reset of another account.
Wrong codes count toward the same throttles and hard lock as wrong passwords (D4).
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from markupsafe import Markup
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.db import get_session
from app.models import User, utcnow
from app.services import mfa, users
from app.services.crypto import PiiCipher
from app.web import auth
from app.web.access import role_required, staff

log = logging.getLogger(__name__)
bp = Blueprint("mfa", __name__)

REPLACING = "mfa_replace_at"
REAUTH_SECONDS = 10 * 60  # how long a fresh password + code allows setting up a new app
WRONG_CODE = _l("The code is not right. Check the time on your phone and try the newest code.")


class CodeForm(FlaskForm):
    code = StringField(_l("Sign-in code"), validators=[DataRequired(), Length(max=64)])


class ReauthForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    code = StringField(_l("Code from your authenticator app"), validators=[DataRequired(), Length(max=64)])


def _cipher() -> PiiCipher:
    return current_app.extensions["pii"]


def _status() -> int:
    return 422 if request.method == "POST" else 200


def _expired() -> Response:
    flash(_("Please sign in again."))
    return redirect(url_for("auth.login"))


def _failed(user: User, step: str) -> None:
    db = get_session()
    users.record_failure(db, user, now=utcnow(), step=step)
    db.commit()
    log.info("second factor refused: user %s", user.id)


@bp.route("/login/code", methods=["GET", "POST"])
@auth.login_limits
def code() -> ResponseReturnValue:
    """Second step of sign-in: a code from the app, or one of the recovery codes."""
    user = auth.pending_user()
    if user is None:
        return _expired()
    if not mfa.enrolled(user):
        return redirect(url_for("mfa.setup"))
    form, error = CodeForm(), None
    if form.validate_on_submit():
        db, now = get_session(), utcnow()
        try:
            method = mfa.verify(db, _cipher(), user, form.code.data or "", now=now)
        except mfa.CodeRejected:
            _failed(user, "code")
            error = WRONG_CODE
        else:
            users.complete_sign_in(db, user, now=now, method=method)
            left = mfa.recovery_codes_left(db, user)
            db.commit()
            target = auth.finish_sign_in(user)  # a fresh session: flash only after it
            if method == "recovery":
                flash(
                    _("You used a recovery code; %(n)s are left. Set up new ones on the two-step sign-in page.", n=left)
                )
            return redirect(target)
    return render_template("mfa/code.html", form=form, error=error), _status()


def _enrolling_user() -> tuple[User | None, bool]:
    """Who may set up an app now: a half-signed-in account without one, or a signed-in user who
    just proved password and code on /mfa (True: replacing)."""
    if current_user.is_authenticated:
        started = session.get(REPLACING)
        fresh = isinstance(started, int) and int(utcnow().timestamp()) - started <= REAUTH_SECONDS
        return (staff(), True) if fresh else (None, True)
    user = auth.pending_user()
    return (user, False) if user is not None and not mfa.enrolled(user) else (None, False)


@bp.route("/login/setup", methods=["GET", "POST"])
@auth.login_limits
def setup() -> ResponseReturnValue:
    """Set up an authenticator app: QR code and secret, confirmed with a current code."""
    user, replacing = _enrolling_user()
    if user is None:
        return redirect(url_for("mfa.manage")) if replacing else _expired()
    db = get_session()
    secret = mfa.pending_secret(db, _cipher(), user)
    db.commit()
    form, error = CodeForm(), None
    if form.validate_on_submit():
        now = utcnow()
        try:
            codes = mfa.confirm(db, _cipher(), user, form.code.data or "", now=now)
        except mfa.CodeRejected:
            _failed(user, "setup")
            error = WRONG_CODE
        else:
            if not replacing:
                users.complete_sign_in(db, user, now=now, method="totp")
            db.commit()
            # The session version moved: every other session has ended, this one starts anew.
            if replacing:
                auth.start_session(user)
                target = url_for("auth.home")
            else:
                target = auth.finish_sign_in(user)
            return render_template("mfa/recovery.html", codes=codes, target=target)
    # The SVG is drawn by qrcode from the URI: only <svg> and <path> elements, no text from the URI.
    qr = Markup(mfa.qr_svg(mfa.provisioning_uri(secret, user.email)))  # noqa: S704  # nosec B704
    return render_template(
        "mfa/setup.html", form=form, error=error, qr=qr, secret=mfa.grouped(secret), replacing=replacing
    ), _status()


@bp.route("/mfa", methods=["GET", "POST"])
@auth.login_limits
@login_required
def manage() -> ResponseReturnValue:
    """The user's two-step sign-in: new app or new recovery codes, each after password and code."""
    form, error, user, db = ReauthForm(), None, staff(), get_session()
    if form.validate_on_submit():
        action, now = request.form.get("action"), utcnow()
        if action not in ("replace", "recovery"):
            abort(400)
        try:
            if not users.verify_password(user, form.password.data or ""):
                raise mfa.CodeRejected()
            mfa.verify(db, _cipher(), user, form.code.data or "", now=now)
        except mfa.CodeRejected:
            _failed(user, "reauth")
            error = _l("The password or the code is not right.")
        else:
            if action == "recovery":
                codes = mfa.new_recovery_codes(db, user, now=now)
                db.commit()
                return render_template("mfa/recovery.html", codes=codes, target=url_for("auth.home"))
            db.commit()
            session[REPLACING] = int(now.timestamp())
            return redirect(url_for("mfa.setup"), 303)
    left = mfa.recovery_codes_left(db, user)
    return render_template("mfa/manage.html", form=form, error=error, user=user, left=left), _status()


@bp.post("/users/<int:user_id>/reset-mfa")
@role_required()  # admins only
def reset(user_id: int) -> Response:
    """An admin resets another account's second factor: it enrols again; its sessions end now."""
    db = get_session()
    try:
        user = users.get(db, user_id)
    except users.UserNotFound:
        abort(404)
    if user.id == staff().id:
        abort(403)  # one's own app is replaced on /mfa, after password and code
    mfa.reset(db, user, actor_id=staff().id)
    db.commit()
    flash(_("Two-step sign-in is reset. The account sets it up again at its next sign-in."))
    return redirect(url_for("auth.user_list"), 303)
