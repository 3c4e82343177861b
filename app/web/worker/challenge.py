"""The human check between the join form and the SMS (docs/security.md B5): type the digits in a picture.

Shown only when the join view's gate sent the worker here (conversion is low, or the client's IP or
the poster is near its limit). The picture is inline PNG from our own server: no script, no
other origin. A right answer sends the code exactly as the form would have; a wrong, expired
or replayed one gets a fresh picture.
"""

from __future__ import annotations

import base64
import time
from typing import TypedDict

from flask import Blueprint, current_app, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.models import JoinAttempt
from app.services import human_check, limits
from app.web.errors import render_error
from app.web.worker import flow, join
from app.web.worker.forms import ChallengeForm
from app.web.worker.messages import SMS_MESSAGES

bp = Blueprint("challenge", __name__)
TICKET = "challenge_ticket"


class CheckPages(TypedDict):
    """The endpoints of a picture check: the one that takes the answer and the one that draws anew."""

    answer: str
    again: str


CHECK_PAGES: CheckPages = {"answer": "challenge.answer", "again": "challenge.show"}  # the join flow's picture endpoints
MESSAGES = {
    human_check.ChallengeWrong: _l("Those are not the digits in the picture. Please try this new picture."),
    human_check.ChallengeExpired: _l("That picture has expired. Please type the digits in this new picture."),
    human_check.ChallengeUsed: _l("That picture was already used. Please type the digits in this new picture."),
}
TOO_MANY = _l("Too many wrong answers from this network. Please wait a while and try again.")


def _pending(lock: bool = False) -> JoinAttempt | Response:
    """The attempt waiting for the check, or where the worker should be instead."""
    return flow.waiting_for_check(join.current_attempt(lock=lock), join.PENDING, done="join.done", code="join.code")


@bp.get("/join/check")
def show():  # type: ignore[no-untyped-def]
    attempt = _pending()
    if not isinstance(attempt, JoinAttempt):
        return attempt
    return _render(attempt, ChallengeForm())


def _render(attempt: JoinAttempt, form: ChallengeForm, status: int = 200, message: str | None = None):  # type: ignore[no-untyped-def]
    return render_check(attempt.id, form, status, message, **CHECK_PAGES)


def render_check(
    bound_to: str, form: ChallengeForm, status: int = 200, message: str | None = None, *, answer: str, again: str
) -> ResponseReturnValue:
    """A page with a fresh picture for the send waiting on `bound_to` (a join attempt or a status
    check); `answer` and `again` are the endpoints that take the answer and draw a new picture.
    The previous picture can no longer be answered from this session."""
    config = current_app.config
    try:
        flow.proof().limits.draw_challenge(flow.client_ip())
    except limits.LimitExceeded as exc:
        return render_error(429, str(TOO_MANY), retry_after=exc.retry_after)
    except limits.LimiterUnavailable:
        return render_error(503, str(SMS_MESSAGES["unavailable"]))
    ticket, png = human_check.issue(
        config["SECRET_KEY"],
        bound_to,
        now=time.time(),
        ttl=config["CHALLENGE_TTL_SECONDS"],
        font_setting=config["POSTER_FONT"],
    )
    session[TICKET] = ticket.as_dict()
    form.answer.data = ""
    image = base64.b64encode(png).decode("ascii")
    return render_template(
        "challenge/check.html",
        form=form,
        image=image,
        message=message,
        digits=human_check.DIGITS,
        answer_url=url_for(answer),
        again_url=url_for(again),
        lang_next=url_for(again),
    ), status


@bp.post("/join/check")
def answer():  # type: ignore[no-untyped-def]
    attempt = _pending(lock=True)
    if not isinstance(attempt, JoinAttempt):
        return attempt
    failure = answered(attempt.id, **CHECK_PAGES)
    if failure is not None:
        return failure
    session.pop(join.PENDING, None)
    wait = flow.resend_wait(attempt)
    if wait:  # the check is not a way around the resend cooldown
        return redirect(url_for("join.code"), 303)
    return join.send_code(attempt, current_app.extensions["pii"].decrypt(attempt.phone_enc), checked=True)


def answered(bound_to: str, *, answer: str, again: str):  # type: ignore[no-untyped-def]
    """None when the posted answer for the send waiting on `bound_to` is right; else the page."""
    form = ChallengeForm()
    if not form.validate():
        return render_check(bound_to, form, 422, answer=answer, again=again)
    return judge(bound_to, form.answer.data or "", answer=answer, again=again)


def judge(bound_to: str, given: str, *, answer: str, again: str):  # type: ignore[no-untyped-def]
    """None when the answer is right; else the page to show (a new picture, 429 or 503)."""
    checks, ip = flow.proof().limits, flow.client_ip()
    ticket = human_check.Ticket.from_dict(session.pop(TICKET, None))
    try:
        wait = checks.challenge_blocked(ip)
        if wait:
            return render_error(429, str(TOO_MANY), retry_after=wait)
        human_check.verify(
            ticket,
            given,
            key=current_app.config["SECRET_KEY"],
            bound_to=bound_to,
            now=time.time(),
            spend=checks.spend_challenge,
        )
    except limits.LimiterUnavailable:
        return render_error(503, str(SMS_MESSAGES["unavailable"]))
    except human_check.ChallengeError as exc:
        try:
            checks.challenge_failed(ip)
        except limits.LimiterUnavailable:
            return render_error(503, str(SMS_MESSAGES["unavailable"]))
        return render_check(
            bound_to, ChallengeForm(formdata=None), 422, str(MESSAGES[type(exc)]), answer=answer, again=again
        )
    return None
