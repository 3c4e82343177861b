"""Transfers on the roster: the receiving district's tab of incoming transfers, and the member page's form.

Officials and admins only (organizers 403). The tab lists transfers into the official's districts;
approving or rejecting one is a POST form of its own (CSRF, works without JavaScript), decided
exactly once (app/services/transfers.py): a decision someone else took first is reported with who
and when. A transfer into another district is a 404, so the sending district cannot decide it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlmodel import col, select

from app.db import get_session
from app.models import District, Member, Role, TransferStatus, utcnow
from app.services import transfers
from app.services.phones import masked
from app.web.access import role_required, scope, staff

bp = Blueprint("transfers", __name__, url_prefix="/roster/transfers")

STATUS_LABELS = {
    TransferStatus.pending.value: _l("Pending"),
    TransferStatus.approved.value: _l("Approved"),
    TransferStatus.rejected.value: _l("Rejected"),
}
STARTED_BY = {transfers.WORKER: _l("the worker (at a poster)"), transfers.OFFICIAL: _l("an official")}


class TransferForm(FlaskForm):
    """CSRF only: the fields are read from request.form."""


@bp.app_context_processor
def helpers() -> dict[str, Any]:
    """What the roster's templates ask for only when they show it: the tab's count, the member's panel."""
    return {"incoming_transfers": _pending_count, "transfer_panel": _panel}


def _pending_count() -> int:
    return transfers.pending_count(get_session(), scope())


def _panel(member_id: int) -> dict[str, Any]:
    db = get_session()
    member = db.get(Member, member_id)
    if member is None:
        return {}
    moves = transfers.of_member(db, member_id)
    district = db.get(District, member.district_id)
    code = district.code if district else ""
    others = db.exec(select(District).where(col(District.id) != member.district_id).order_by(col(District.code)))
    pending = transfers.pending_of(db, member_id)
    target = db.get(District, pending.to_district_id) if pending else None
    return {
        "history": transfers.history(member, code, moves) if member.decided_at else [],
        "moves": moves,
        "pending": pending,
        "pending_to": f"{target.code} {target.name}" if target else "",
        "districts": list(others),
        "approved": member.status.value == "approved",
        "form": TransferForm(),
        "statuses": STATUS_LABELS,
    }


@bp.get("/")
@role_required(Role.official)
def index() -> str:
    raw = request.args.get("status", TransferStatus.pending.value)
    if raw and raw not in TransferStatus.__members__:
        abort(400)
    db, pii = get_session(), current_app.extensions["pii"]
    found = transfers.incoming(db, scope(), status=TransferStatus(raw) if raw else None)
    people = {
        m.id: (pii.decrypt(m.name_enc), masked(pii.decrypt(m.phone_enc)))
        for m in db.exec(select(Member).where(col(Member.id).in_([t.member_id for t in found])))
    }
    return render_template(
        "transfers/index.html",
        items=found,
        people=people,
        status=raw,
        statuses=STATUS_LABELS,
        started_by=STARTED_BY,
        form=TransferForm(),
    )


@bp.post("/<int:transfer_id>/approve")
@role_required(Role.official)
def approve(transfer_id: int) -> ResponseReturnValue:
    return _decide(transfer_id, approving=True)


@bp.post("/<int:transfer_id>/reject")
@role_required(Role.official)
def reject(transfer_id: int) -> ResponseReturnValue:
    return _decide(transfer_id, approving=False)


def _decide(transfer_id: int, *, approving: bool) -> ResponseReturnValue:
    if not TransferForm().validate():
        abort(400)
    db, by, now = get_session(), staff(), utcnow()
    try:
        if approving:
            done = transfers.approve(db, scope(), transfer_id, by=by, now=now)
        else:
            done = transfers.reject(db, scope(), transfer_id, by=by, reason=request.form.get("reason", ""), now=now)
    except transfers.TransferNotFound:
        db.rollback()
        abort(404)
    except transfers.AlreadyDecided as exc:
        db.rollback()
        at = exc.at.strftime("%Y-%m-%d %H:%M") if exc.at else ""
        flash(_("Someone decided this transfer first: %(by)s at %(at)s.", by=exc.by_email or "", at=at))
        return redirect(url_for("transfers.index"), 303)
    except transfers.MemberMoved:
        db.rollback()
        flash(_("This member is no longer an approved member of the sending district: nothing was changed."))
        return redirect(url_for("transfers.index"), 303)
    except transfers.BadReason:
        db.rollback()
        flash(_("Please give a reason for the rejection (at most 500 characters)."))
        return redirect(url_for("transfers.index"), 303)
    db.commit()  # the worker is told after the commit
    if approving:
        flash(_("Transfer approved: the new member number is %(number)s.", number=done.to_member_number or ""))
        return redirect(url_for("roster.member", member_id=done.member_id), 303)
    flash(_("Transfer rejected."))
    return redirect(url_for("transfers.index"), 303)


@bp.post("/member/<int:member_id>")
@role_required(Role.official)
def request_for(member_id: int) -> ResponseReturnValue:
    """The member page's form: an official of the member's district asks another district to take them."""
    if not TransferForm().validate():
        abort(400)
    db = get_session()
    try:
        transfers.request_by_official(
            db,
            scope(),
            member_id,
            to_district=request.form.get("to_district", ""),
            reason=request.form.get("reason", ""),
            by=staff(),
            now=utcnow(),
        )
    except transfers.TransferNotFound:
        db.rollback()
        abort(404)
    except transfers.TransferError as exc:
        db.rollback()
        flash(_refusal(exc))
        return redirect(url_for("roster.member", member_id=member_id), 303)
    db.commit()
    flash(_("Transfer requested: it waits for the receiving district."))
    return redirect(url_for("roster.member", member_id=member_id), 303)


def _refusal(exc: transfers.TransferError) -> str:
    if isinstance(exc, transfers.AlreadyPending):
        return _("A transfer of this member is already pending.")
    if isinstance(exc, transfers.NotTransferable) and exc.why == "same_district":
        return _("The member is already in that district.")
    if isinstance(exc, transfers.NotTransferable):
        return _("Only an approved member can be transferred.")
    if isinstance(exc, transfers.BadReason):
        return _("The reason may have at most 500 characters.")
    return _("Choose the receiving district.")
