"""After applying, for staff: an official's question to the applicant, and the federation's escalation queue.

Officials ask from the member page (`POST /roster/<id>/ask`); admins see `/admin/escalations`:
open appeals first, then pending applications past their deadline, each decided there (through
app/services/decisions.py, like the roster) or sent back to its district with a note.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlmodel import Session

from app.db import get_session
from app.models import Role, utcnow
from app.services import decisions, lifecycle, roster
from app.services.crypto import PiiCipher
from app.web.access import role_required, scope, staff

bp = Blueprint("escalation", __name__)


class ActionForm(FlaskForm):
    """CSRF only: the text is read from request.form."""


def _pii() -> PiiCipher:
    return current_app.extensions["pii"]


def _days() -> int:
    return int(current_app.config["APPROVAL_WORKING_DAYS"])


def member_extras(db: Session, member_id: int, status: str) -> dict[str, Any]:
    """For the roster's member page: questions and answers, the appeal, the federation's notes."""
    pii, districts = _pii(), scope()
    appeal = lifecycle.appeal_of(db, member_id)
    return {
        # an appeal on the federation's queue: its officials see it but only an admin decides it
        "held": districts is not None and bool(lifecycle.held_for_admin(db, districts, [member_id])),
        "questions": lifecycle.questions(db, member_id, pii),
        "can_ask": status == "pending" and lifecycle.open_question(db, member_id) is None,
        "appeal": appeal,
        "appeal_text": pii.decrypt(appeal.text_enc) if appeal else None,
        "return_notes": lifecycle.notes(db, member_id, pii),
        "action_form": ActionForm(),
    }


@bp.post("/roster/<int:member_id>/ask")
@role_required(Role.official)
def ask(member_id: int) -> ResponseReturnValue:
    if not ActionForm().validate():
        abort(400)
    db = get_session()
    try:
        lifecycle.ask(
            db, scope(), member_id, by=staff(), question=request.form.get("question", ""), pii=_pii(), now=utcnow()
        )
    except roster.MemberNotFound:
        abort(404)
    except lifecycle.TextInvalid:
        flash(_("Please write the question (at most 500 characters)."))
    except lifecycle.NotPending:
        flash(_("This application is already decided."))
    except lifecycle.QuestionOpen:
        flash(_("The applicant has not answered the last question yet."))
    else:
        db.commit()  # the worker is texted after the commit
        flash(_("The question was sent. The applicant was told by SMS to look at their status page."))
    return redirect(url_for("roster.member", member_id=member_id), 303)


@bp.get("/admin/escalations")
@role_required()  # federation admins only
def queue() -> str:
    items = lifecycle.escalations(get_session(), now=utcnow(), days=_days())
    return render_template("escalation/queue.html", items=items, form=ActionForm(), days=_days())


@bp.post("/admin/escalations/<int:member_id>/decide")
@role_required()
def decide(member_id: int) -> ResponseReturnValue:
    if not ActionForm().validate():
        abort(400)
    action, db = request.form.get("action", ""), get_session()
    if action not in ("approve", "reject"):
        flash(_("Nothing was decided: press Approve or Reject."))
        return redirect(url_for("escalation.queue"), 303)
    try:
        decisions.decide_one(
            db,
            None,
            member_id,
            by=staff(),
            approve=action == "approve",
            reason=request.form.get("reason", ""),
            now=utcnow(),
        )
    except roster.MemberNotFound:
        abort(404)
    except roster.ReasonRequired:
        flash(_("Please give a reason for the rejection (at most 500 characters)."))
        return redirect(url_for("escalation.queue"), 303)
    except roster.AlreadyDecided:
        flash(_("Someone else decided this application first."))
        return redirect(url_for("escalation.queue"), 303)
    db.commit()  # the worker is told after the commit
    flash(_("Decided. The applicant was told by SMS."))
    return redirect(url_for("escalation.queue"), 303)


@bp.post("/admin/escalations/<int:member_id>/return")
@role_required()
def send_back(member_id: int) -> ResponseReturnValue:
    if not ActionForm().validate():
        abort(400)
    db = get_session()
    try:
        lifecycle.send_back(
            db, member_id, by=staff(), note=request.form.get("note", ""), pii=_pii(), now=utcnow(), days=_days()
        )
    except roster.MemberNotFound:
        abort(404)
    except lifecycle.TextInvalid:
        flash(_("Please write a note for the district (at most 500 characters)."))
    except lifecycle.NotPending:
        flash(_("This application is no longer on the escalation queue."))
    else:
        db.commit()
        flash(_("Sent back to the district with your note."))
    return redirect(url_for("escalation.queue"), 303)
