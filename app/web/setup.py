"""The one-time set-up link an admin gives a staff member (app/services/staff_setup.py).

Its holder chooses a password here; then sign-in goes on as after a right password: the
authenticator app is set up (/login/setup) for a new account, or its code asked for (/login/code).
Wrong or spent links count toward a per-address limit, like wrong passwords.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField
from wtforms.validators import DataRequired

from app.db import get_session
from app.extensions import limiter
from app.models import utcnow
from app.services import mfa, staff_setup, users
from app.web import auth

log = logging.getLogger(__name__)
bp = Blueprint("setup", __name__)

LINK_PROBLEMS = {
    staff_setup.LinkInvalid: (404, _l("This link is not valid. Ask your administrator for a new one.")),
    staff_setup.LinkExpired: (410, _l("This link has expired. Ask your administrator for a new one.")),
    staff_setup.LinkUsed: (
        410,
        _l("This link was already used or replaced by a newer one. Sign in, or ask your administrator for a new link."),
    ),
}


class SetupForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired()])
    repeat = PasswordField(_l("The same password again"), validators=[DataRequired()])


def _refused(response: Response) -> bool:
    return response.status_code in (404, 410, 422)


def _key() -> str:
    return str(current_app.config["SECRET_KEY"])


def _max_age() -> int:
    return int(current_app.config["STAFF_SETUP_MAX_AGE_SECONDS"])


@bp.route("/setup/<token>", methods=["GET", "POST"])
@limiter.limit(auth.LOGIN_LIMIT, deduct_when=_refused)
def start(token: str) -> ResponseReturnValue:
    db, form, error = get_session(), SetupForm(), None
    try:
        user = staff_setup.check(db, token, secret_key=_key(), max_age=_max_age())
    except (staff_setup.LinkInvalid, staff_setup.LinkExpired, staff_setup.LinkUsed) as exc:
        status, message = LINK_PROBLEMS[type(exc)]
        log.info("set-up link refused: %s", type(exc).__name__)
        return render_template("setup/refused.html", message=message), status
    if form.validate_on_submit():
        problem = users.password_problem(form.password.data or "", user.email)
        if form.password.data != form.repeat.data:
            error = _l("The two passwords are not the same.")
        elif problem is not None:
            error = auth.PASSWORD_PROBLEMS[problem]
        else:
            return _complete(token, form.password.data or "")
    status = 422 if request.method == "POST" else 200
    page = render_template("setup/start.html", form=form, error=error, user=user, min_length=users.MIN_PASSWORD)
    return page, status


def _complete(token: str, password: str) -> ResponseReturnValue:
    db = get_session()
    try:
        user = staff_setup.complete(db, token, password, secret_key=_key(), max_age=_max_age(), now=utcnow())
    except (staff_setup.LinkInvalid, staff_setup.LinkExpired, staff_setup.LinkUsed) as exc:
        db.rollback()
        return render_template("setup/refused.html", message=LINK_PROBLEMS[type(exc)][1]), 410
    db.commit()
    log.info("set-up link used: user %s", user.id)
    auth.begin_second_factor(user)  # the password was just chosen: on to the second factor
    return redirect(url_for("mfa.code" if mfa.enrolled(user) else "mfa.setup"), 303)
