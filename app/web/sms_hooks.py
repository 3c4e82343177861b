"""Delivery reports and replies pushed by Aliyun and Tencent Cloud: POST /sms/<provider>/receipts?key=….

Neither provider signs its pushes, so the URL carries a per-deployment secret (SMS_RECEIPT_SECRET,
compared in constant time) in its query string, which the access log never writes; without the
setting, or with another key, the path answers 404. An opt-out reply (TD, 退订,
T, N, STOP) is recorded like Twilio's 21610. The answer is the one each provider expects.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from app.db import get_session
from app.extensions import csrf
from app.models import utcnow
from app.services import crypto, sms
from app.services.sms import replies

log = logging.getLogger(__name__)
bp = Blueprint("sms_hooks", __name__)
csrf.exempt(bp)
ANSWERS = {"aliyun": {"code": 0, "msg": "成功"}, "tencent": {"result": 0, "errmsg": "OK"}}


@bp.post("/sms/<provider>/receipts")
def receipts(provider: str) -> ResponseReturnValue:
    expected, secret = current_app.config["SMS_RECEIPT_SECRET"], request.args.get("key", "")
    if provider not in replies.PROVIDERS or not expected or not crypto.equal(secret, expected):
        abort(404)
    found = replies.parse(provider, request.get_json(silent=True))
    db, pii = get_session(), current_app.extensions["pii"]
    for receipt in found:
        try:
            sms.handle_receipt(db, pii, receipt, now=utcnow())
            db.commit()
        except IntegrityError:
            db.rollback()  # a concurrent push recorded the same phone first
    log.info("%s pushed %d receipts (%d opt-outs)", provider, len(found), sum(r.opted_out for r in found))
    return jsonify(ANSWERS[provider])
