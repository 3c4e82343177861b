"""Staff accounts: create with a one-time set-up link, role and districts, reset, unlock, deactivate.

An admin never sees or sends a password: a new account (or one whose holder lost it) gets a link,
shown once here, that lets its holder choose the password and set up the authenticator app
(app/web/setup.py). An admin's own account is changed elsewhere (/password, /mfa), never here,
so no admin can lock themselves out by a click.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlmodel import select
from werkzeug.wrappers import Response
from wtforms import EmailField, SelectField, SelectMultipleField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3 has it; types-WTForms 3.2 lacks it
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.db import get_session
from app.models import District, Role, User, utcnow
from app.services import api_tokens, mfa, staff_setup, users
from app.web.access import staff
from app.web.admin.core import blueprint, setup_max_age
from app.web.admin.tokens import TokenForm

ROLES = [
    SelectChoice(Role.official.value, _l("Official (approves members)")),
    SelectChoice(Role.organizer.value, _l("Organizer (places and posters)")),
    SelectChoice(Role.admin.value, _l("Admin (everything)")),
]
PROBLEMS = {
    "not an email address": _l("This is not an email address."),
    "a user with this email exists": _l("An account with this email exists."),
    "officials and organizers need at least one --district": _l("Officials and organizers need at least one district."),
}


class AccessForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLES, default=Role.official.value)
    districts = SelectMultipleField(
        _l("Districts"), choices=[], widget=ListWidget(prefix_label=False), option_widget=CheckboxInput()
    )


class NewStaffForm(AccessForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])


def _with_districts(form: AccessForm) -> AccessForm:
    rows = get_session().exec(select(District).where(District.retired_at == None).order_by(District.code))  # noqa: E711
    form.districts.choices = [SelectChoice(d.code, f"{d.name} ({d.code})") for d in rows]
    return form


def _user(user_id: int, *, not_me: bool = False) -> User:
    try:
        user = users.get(get_session(), user_id)
    except users.UserNotFound:
        abort(404)
    if not_me and user.id == staff().id:
        abort(403)  # one's own account: /password and /mfa
    return user


def _problem(exc: users.UserError) -> object:
    return PROBLEMS.get(str(exc), str(exc))


def _status() -> int:
    return 422 if request.method == "POST" else 200


def _setup_url(token: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"] + url_for("setup.start", token=token)


def _link_page(user: User, token: str, *, created: bool) -> str:
    hours = setup_max_age() // 3600
    return render_template("admin/setup_link.html", user=user, link=_setup_url(token), hours=hours, created=created)


@blueprint.get("/staff")
def staff_list() -> str:
    db = get_session()
    rows = [(u, users.district_codes(db, u)) for u in users.all_users(db)]
    return render_template("admin/staff.html", rows=rows, me=staff())


@blueprint.route("/staff/new", methods=["GET", "POST"])
def new_staff() -> ResponseReturnValue:
    form, error = _with_districts(NewStaffForm()), None
    if form.validate_on_submit():
        db = get_session()
        try:
            user = users.invite(
                db,
                form.email.data or "",
                role=Role(form.role.data),
                district_codes=form.districts.data or [],
                actor_id=staff().id,
            )
        except users.UserError as exc:
            db.rollback()
            error = _problem(exc)
        else:
            token = staff_setup.issue(db, user, secret_key=current_app.config["SECRET_KEY"], actor_id=staff().id)
            db.commit()
            return _link_page(user, token, created=True)
    return render_template("admin/staff_new.html", form=form, error=error), _status()


@blueprint.get("/staff/<int:user_id>")
def staff_detail(user_id: int) -> str:
    return _detail_page(_user(user_id), None)[0]


def _detail_page(user: User, error: object, form: AccessForm | None = None) -> tuple[str, int]:
    db = get_session()
    if form is None:
        form = _with_districts(AccessForm(role=user.role.value, districts=users.district_codes(db, user)))
    page = render_template(
        "admin/staff_detail.html",
        user=user,
        me=staff(),
        form=form,
        error=error,
        enrolled=mfa.enrolled(user),
        tokens=api_tokens.tokens_of(db, user),
        token_form=TokenForm(),
        now=utcnow(),
    )
    return page, 422 if error else 200


@blueprint.post("/staff/<int:user_id>/access")
def change_access(user_id: int) -> ResponseReturnValue:
    user, db = _user(user_id, not_me=True), get_session()
    form = _with_districts(AccessForm())
    if not form.validate_on_submit():
        return _detail_page(user, _l("Choose a role and the districts from the lists."), form)
    try:
        users.update_access(
            db, user, role=Role(form.role.data), district_codes=form.districts.data or [], actor_id=staff().id
        )
    except users.UserError as exc:
        db.rollback()
        return _detail_page(_user(user_id), _problem(exc), form)
    db.commit()
    flash(_("The role and districts are saved."))
    return redirect(url_for("admin.staff_detail", user_id=user.id), 303)


@blueprint.post("/staff/<int:user_id>/setup-link")
def new_setup_link(user_id: int) -> str:
    """A new link (the old one stops working): for an account whose holder lost the password."""
    user, db = _user(user_id, not_me=True), get_session()
    if not user.active:
        abort(409)
    token = staff_setup.issue(db, user, secret_key=current_app.config["SECRET_KEY"], actor_id=staff().id)
    db.commit()
    return _link_page(user, token, created=False)


@blueprint.post("/staff/<int:user_id>/reset-mfa")
def reset_mfa(user_id: int) -> Response:
    user, db = _user(user_id, not_me=True), get_session()
    mfa.reset(db, user, actor_id=staff().id)
    db.commit()
    flash(_("Two-step sign-in is reset. The account sets it up again at its next sign-in."))
    return redirect(url_for("admin.staff_detail", user_id=user.id), 303)


@blueprint.post("/staff/<int:user_id>/unlock")
def unlock(user_id: int) -> Response:
    user, db = _user(user_id), get_session()
    users.unlock(db, user, actor_id=staff().id)
    db.commit()
    flash(_("The account is unlocked."))
    return redirect(url_for("admin.staff_detail", user_id=user.id), 303)


@blueprint.get("/staff/<int:user_id>/deactivate")
def confirm_deactivate(user_id: int) -> str:
    return render_template("admin/deactivate.html", user=_user(user_id, not_me=True))


@blueprint.post("/staff/<int:user_id>/deactivate")
def deactivate(user_id: int) -> Response:
    """Switch the account off: its sessions, set-up link and API tokens stop working at once."""
    user, db = _user(user_id, not_me=True), get_session()
    users.deactivate(db, user, actor_id=staff().id)
    db.commit()
    flash(_("The account is switched off."))
    return redirect(url_for("admin.staff_detail", user_id=user.id), 303)
