"""What the status page shows beyond the status: the e-card, an official's question, the appeal."""

from __future__ import annotations

from typing import Any

from flask import current_app
from markupsafe import Markup
from sqlmodel import Session

from app.models import Member, MemberStatus, utcnow
from app.services import cards, lifecycle
from app.web.worker.forms import AnswerForm, AppealForm


def extras(
    db: Session, member: Member | None, answer: AnswerForm | None = None, appeal: AppealForm | None = None
) -> dict[str, Any]:
    """The card (approved), the open question (pending) and the appeal (rejected, or under appeal)."""
    found: dict[str, Any] = {"card": None, "question": None, "can_appeal": False, "appeal": None}
    if member is None:
        return found
    config, pii = current_app.config, current_app.extensions["pii"]
    if member.status is MemberStatus.approved:
        found["card"] = card = cards.card_for(
            db,
            member,
            signer=current_app.extensions["card_signer"],
            name=pii.decrypt(member.name_enc),
            base_url=config["PUBLIC_BASE_URL"],
            union_name=config["UNION_NAME"],
            now=utcnow(),
            valid_days=config["CARD_VALID_DAYS"],
        )
        # Markup: qr_svg draws only <svg> and <path> from the signed URL, no text of ours or the worker's.
        found["card_qr"] = Markup(cards.qr_svg(card.url)) if card else None  # noqa: S704  # nosec B704
    question = lifecycle.open_question(db, member.id or 0)
    if member.status is MemberStatus.pending and question is not None:
        found["question"] = pii.decrypt(question.question_enc)
    found["appeal"] = lifecycle.appeal_of(db, member.id or 0)
    found["can_appeal"] = lifecycle.can_appeal(db, member)
    found["answer_form"] = answer or AnswerForm()
    found["appeal_form"] = appeal or AppealForm()
    found["working_days"] = config["APPROVAL_WORKING_DAYS"]
    return found
