"""Staff sign-in and sign-out. Sessions end on the server by bumping `session_version`."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from app.db import get_session
from app.extensions import login_manager
from app.models import User, utcnow
from app.services import users

bp = Blueprint("auth", __name__)


class StaffUser(UserMixin):
    """The signed-in user as Flask-Login sees it: id plus the session version it signed in with."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = f"{user.id}:{user.session_version}"


@login_manager.user_loader
def load_user(user_key: str) -> StaffUser | None:
    user_id, _, version = user_key.partition(":")
    if not user_id.isdigit():
        return None
    user = get_session().get(User, int(user_id))
    if user is None or not user.active or str(user.session_version) != version:
        return None
    return StaffUser(user)


login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please sign in to see this page.")


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        db = get_session()
        user = users.authenticate(db, form.email.data or "", form.password.data or "", now=utcnow())
        db.commit()
        if user is not None:
            session.clear()  # a fresh session on sign-in: no fixation
            login_user(StaffUser(user))
            return redirect(_next_page())
        error = _l("Email or password is not right.")
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form, error=error), status


def _next_page() -> str:
    target = request.args.get("next", "")
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("auth.home")


@bp.get("/home")
@login_required
def home() -> str:
    return render_template("auth/home.html", user=current_user.user)


@bp.post("/logout")
@login_required
def logout() -> Response:
    db = get_session()
    user = db.get(User, current_user.user.id)
    if user is not None:
        user.session_version += 1  # every copy of the old cookie stops working
        db.add(user)
        db.commit()
    logout_user()
    session.clear()
    current_app.logger.info("user signed out")
    return redirect(url_for("auth.login"))
