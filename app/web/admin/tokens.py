"""API tokens of a staff account: create with a scope and an expiry (the secret shown once), revoke."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3 has it; types-WTForms 3.2 lacks it

from app.db import get_session
from app.models import utcnow
from app.services import api_tokens, users
from app.web.access import staff
from app.web.admin.core import blueprint

SCOPES = [SelectChoice("read", _l("Read only")), SelectChoice("write", _l("Read and change (decide, update places)"))]
# Project choice: a year at most, so a forgotten integration's token does not live for ever.
LIFETIMES = [SelectChoice("30", _l("30 days")), SelectChoice("90", _l("90 days")), SelectChoice("365", _l("1 year"))]


class TokenForm(FlaskForm):
    scope = SelectField(_l("Scope"), choices=SCOPES, default="read")
    days = SelectField(_l("Valid for"), choices=LIFETIMES, default="90")


@blueprint.post("/staff/<int:user_id>/tokens")
def create_token(user_id: int) -> ResponseReturnValue:
    db = get_session()
    try:
        user = users.get(db, user_id)
    except users.UserNotFound:
        abort(404)
    form = TokenForm()
    if not user.active or not form.validate_on_submit():
        flash(_("No token was made: the account is switched off, or the form was not filled in."))
        return redirect(url_for("admin.staff_detail", user_id=user.id), 303)
    now = utcnow()
    expires = now + timedelta(days=int(form.days.data or "90"))
    token, raw = api_tokens.issue(
        db, user, now=now, actor_id=staff().id, scope=form.scope.data or "read", expires_at=expires
    )
    db.commit()
    return render_template("admin/token_made.html", user=user, token=token, raw=raw)


@blueprint.post("/staff/<int:user_id>/tokens/<int:token_id>/revoke")
def revoke_token(user_id: int, token_id: int) -> Response:
    db = get_session()
    try:
        user = users.get(db, user_id)
        api_tokens.revoke(db, user, now=utcnow(), token_id=token_id, actor_id=staff().id)
    except (users.UserNotFound, api_tokens.TokenNotFound):
        abort(404)
    db.commit()
    flash(_("The token is revoked."))
    return redirect(url_for("admin.staff_detail", user_id=user.id), 303)
