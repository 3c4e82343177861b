"""The card page: `/C/<token>` (the QR on a member's e-card) says valid, expired or revoked.

No sign-in: anyone holding the card may check it. The page shows the masked name, the member
number and the district, never the full name or the phone. An unreadable or forged token is
a plain 404, whatever was wrong with it.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template
from werkzeug.wrappers import Response

from app.db import get_session
from app.models import utcnow
from app.services import cards

bp = Blueprint("cards", __name__)
MAX_TOKEN = 200


@bp.get("/C/<token>")
@bp.get("/c/<token>")
def card(token: str) -> Response:
    if len(token) > MAX_TOKEN:
        abort(404)
    ext = current_app.extensions
    try:
        shown = cards.page(get_session(), token, verifier=ext["card_signer"], pii=ext["pii"], now=utcnow())
    except cards.CardInvalid:
        abort(404)
    html = render_template("cards/card.html", page=shown, union_name=current_app.config["UNION_NAME"])
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response
