"""A member who joins again at another district's poster: offer the transfer there (one POST form).

Reached only after the join code (so the page reveals nothing the phone's owner has not proven):
the join's done page sends an approved member of another district here. Works without JavaScript.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import select

from app.db import get_session
from app.models import District, utcnow
from app.services import transfers
from app.web.worker.forms import EmptyForm
from app.web.worker.join import current_attempt

bp = Blueprint("transfer", __name__)


@bp.app_context_processor
def helpers() -> dict[str, Any]:
    """For the status page (asked only when it shows an approved member): the member's latest transfer."""
    return {"latest_transfer": _latest}


def _latest(member_id: int) -> dict[str, Any] | None:
    db = get_session()
    moves = transfers.of_member(db, member_id)
    if not moves:
        return None
    move = moves[-1]
    target = db.exec(select(District).where(District.code == move.to_district)).first()
    return {"move": move, "to_name": target.name if target else move.to_district}


@bp.get("/join/transfer")
def offer() -> ResponseReturnValue:
    attempt, db = current_attempt(), get_session()
    found = transfers.worker_offer(db, attempt)
    if found is None:
        return redirect(url_for("join.done"), 303) if attempt.verified_at is not None else abort(404)
    member, here = found
    pending = transfers.pending_of(db, member.id or 0)
    waiting_at = db.get(District, pending.to_district_id) if pending else None
    return render_template(
        "transfer/offer.html",
        here=here,
        current=db.get(District, member.district_id),
        waiting_at=waiting_at,
        form=EmptyForm(),
    )


@bp.post("/join/transfer")
def confirm() -> ResponseReturnValue:
    attempt, db = current_attempt(lock=True), get_session()
    if not EmptyForm().validate():
        abort(400)
    try:
        transfers.request_by_worker(db, attempt, now=utcnow())
    except transfers.NotTransferable:
        db.rollback()
        return redirect(url_for("join.done"), 303)
    except transfers.AlreadyPending:
        db.rollback()  # waiting at another district: the page says where
    else:
        db.commit()
    return redirect(url_for("transfer.offer"), 303)
