"""What the join, status and human-check views share: the phone-proof service, the client's
address, the row the session names, the code page and the words for a refused or wrong code."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response
from wtforms import Field

from app.db import get_session
from app.models import CodeState, JoinAttempt, utcnow
from app.services import limits, phone_proof, verification
from app.services.phones import PhoneInvalid, masked, normalize
from app.services.sms import SmsError
from app.web.worker.forms import CodeForm, EmptyForm
from app.web.worker.messages import LIMIT_MESSAGES, PHONE_MESSAGES, SMS_MESSAGES, send_failure

Owner = TypeVar("Owner", bound=CodeState)


def proof() -> phone_proof.PhoneProof:
    """The app's phone-proof service (built once in create_app)."""
    return current_app.extensions["phone_proof"]


def client_ip() -> str:
    # remote_addr is the peer, or what the configured number of trusted proxies said (ProxyFix).
    return limits.ip_key(request.remote_addr)


def refusal_message(refused: phone_proof.Refused) -> str:
    """Why no code was sent, and when to try again (when the limit says)."""
    if refused.reason == "unavailable":
        return str(SMS_MESSAGES["unavailable"])
    why = str(LIMIT_MESSAGES.get(refused.reason, LIMIT_MESSAGES["phone"]))
    return f"{why} {try_again_in(refused.retry_after)}" if refused.retry_after else why


def try_again_in(seconds: int) -> str:
    """ "Please try again in 3 minutes." (seconds under a minute, hours from 90 minutes)."""
    if seconds < 60:
        return _("Please try again in %(n)d seconds.", n=max(1, seconds))
    minutes = math.ceil(seconds / 60)
    if minutes < 90:
        return _("Please try again in %(n)d minutes.", n=minutes)
    return _("Please try again in %(n)d hours.", n=math.ceil(minutes / 60))


def with_retry_after(body_and_status, retry_after: int | None):  # type: ignore[no-untyped-def]
    body, status = body_and_status
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return body, status, headers


def short_locale() -> str:
    # The column holds 8 characters (PostgreSQL enforces it): "zh" or "en", as the SMS needs.
    return "en" if str(get_locale()).startswith("en") else "zh"


def refused(refusal: phone_proof.Refused) -> Verdict:
    """The verdict of a send that was refused: no code went out (the page never says "sent")."""
    return Verdict(refusal_message(refusal), refusal.status, refusal.retry_after, not_sent=True)


@dataclass(frozen=True)
class Verdict:
    """Why a code was not accepted (or, `not_sent`, why none was sent): the words, the HTTP
    status, the Retry-After seconds."""

    message: str
    status: int = 422
    retry_after: int | None = None
    not_sent: bool = False


def judge_code(owner: CodeState, code: str) -> Verdict | None:
    """Check the code on `owner` (join or status); None when it is right, else the Verdict."""
    try:
        proof().check(get_session(), owner, code)
    except limits.CheckDelayed as exc:
        # 422 like any refused code, with the wait; Retry-After tells clients when to come back.
        return Verdict(
            _("Please wait %(n)d seconds before trying another code.", n=exc.retry_after), 422, exc.retry_after
        )
    except (limits.LimitExceeded, limits.LimiterUnavailable) as exc:
        refused = phone_proof.refusal(exc)
        return Verdict(refusal_message(refused), refused.status, refused.retry_after)
    except verification.CodeWrong as exc:
        return Verdict(_("That code is not right. You have %(n)d tries left.", n=exc.tries_left))
    except verification.CodeLocked:
        return Verdict(_("Too many wrong codes. Ask for a new code."), 429)
    except verification.CodeExpired:
        return Verdict(_("This code has expired. Ask for a new code."))
    except SmsError as exc:
        return Verdict(str(SMS_MESSAGES.get(exc.kind, SMS_MESSAGES["unavailable"])))
    return None


def resend_wait(owner: CodeState) -> int:
    return verification.resend_wait(owner, now=utcnow(), cooldown=current_app.config["RESEND_COOLDOWN_SECONDS"])


def too_soon(wait: int) -> Verdict:
    return Verdict(_("Please wait %(n)d seconds before asking for a new code.", n=wait), 429, wait, not_sent=True)


def render_code(  # type: ignore[no-untyped-def]
    template: str,
    owner: CodeState,
    form: CodeForm,
    verdict: Verdict | None = None,
    *,
    status: int = 200,
    send_error: str | None = None,
    **extra: Any,
):
    """The code page of `owner` (worker/code.html, for a join attempt or a status check) with the verdict, else why
    the last code could not be sent (in neutral words: `messages.send_failure`).

    The page says a code was sent only when one was: a refused send (`verdict.not_sent`) says
    no new code went out (and whether an earlier one still works), a failed one that none did."""
    refused_now = verdict is not None and verdict.not_sent
    flow = "join" if isinstance(owner, JoinAttempt) else "status"
    body = render_template(
        template,
        flow=flow,
        form=form,
        resend=EmptyForm(),
        wait=resend_wait(owner),
        message=verdict.message if verdict else send_failure(send_error),
        phone=masked(current_app.extensions["pii"].decrypt(owner.phone_enc)),
        sent=not refused_now and not send_error and owner.sends > 0,
        earlier=refused_now and not send_error and owner.sends > 0,
        # A code page answering a post: the language switch goes to the same step's GET.
        lang_next=url_for(f"{flow}.code"),
        **extra,
    )
    if verdict is None:
        return body, status
    return with_retry_after((body, verdict.status), verdict.retry_after)


def validated_phone(field: Field) -> str | None:
    """E.164 of an allowed region's mobile number; other regions, premium, VoIP, unallocated → None
    (with the reason added to the field's errors)."""
    try:
        return normalize(field.data or "", current_app.config["ALLOWED_REGIONS"])
    except PhoneInvalid as exc:
        field.errors = [*field.errors, PHONE_MESSAGES[exc.reason]]
        return None


def owner_from_session(model: type[Owner], key: str, lock: bool = False) -> Owner:
    """The row (JoinAttempt or StatusCheck) the worker's session names, or a 404."""
    owner_id = session.get(key)
    owner = get_session().get(model, owner_id, with_for_update=lock) if owner_id else None
    if owner is None:
        abort(404)
    return owner


def waiting_for_check(owner: Owner, pending_key: str, *, done: str, code: str) -> Owner | Response:
    """`owner` when its send waits for the human check, else where the worker should be instead."""
    if owner.verified_at is not None:
        return redirect(url_for(done), 303)
    if session.get(pending_key) != owner.id:
        return redirect(url_for(code), 303)
    return owner


@dataclass(frozen=True)
class CodePages:
    """One flow's code pages: its row in the session (`owner(lock)`), the session key of a send
    waiting for the human check, the endpoints of the done page and of the human check, and the
    code page (`page(owner, form, verdict=None, status=200)`)."""

    owner: Callable[[bool], Any]
    pending_key: str
    done: str
    check: str
    page: Callable[..., Any]
    code: str  # the endpoint of the code page (GET)

    @property
    def notice_key(self) -> str:
        """The session key of the words the next GET of the code page shows once."""
        return f"notice:{self.code}"


def show_code(pages: CodePages):  # type: ignore[no-untyped-def]
    """GET of a code page (or where the worker should be instead): the words of the last refused
    code, once (post/redirect/get: a reload shows the page again and posts nothing)."""
    owner = pages.owner(False)
    notice = session.pop(pages.notice_key, None)
    instead = before_code(owner, pages.pending_key, done=pages.done, check=pages.check)
    if instead is not None:
        return instead
    if isinstance(notice, dict) and notice.get("message"):
        verdict = Verdict(str(notice["message"]), 200, None, bool(notice.get("not_sent")))
        return pages.page(owner, CodeForm(), verdict)
    return pages.page(owner, CodeForm())


def code_refused(pages: CodePages, verdict: Verdict) -> Response:
    """The answer to a posted code that was not accepted: a 303 to the code page, which shows the
    words once; Retry-After rides on the 303 when the refusal says when to come back."""
    session[pages.notice_key] = {"message": verdict.message, "not_sent": verdict.not_sent}
    response = redirect(url_for(pages.code), 303)
    if verdict.retry_after:
        response.headers["Retry-After"] = str(verdict.retry_after)
    return response


def take_code(pages: CodePages) -> tuple[Any, CodeForm, Verdict | None, Any]:
    """Check the posted code on the session's row: the row, the form, the verdict (None: the code
    is right) and the answer to give instead of judging (the done page of a proven row, or a 303
    to the code page carrying the form's error), else None. The caller commits: a try counts."""
    owner, form = pages.owner(True), CodeForm()
    if owner.verified_at is not None:
        return owner, form, None, redirect(url_for(pages.done), 303)
    if not form.validate():
        errors = [str(e) for e in form.code.errors] or [_("Please enter the code from the SMS.")]
        return owner, form, None, code_refused(pages, Verdict(errors[0]))
    return owner, form, judge_code(owner, form.code.data or ""), None


def before_code(owner: Owner, pending_key: str, *, done: str, check: str) -> Response | None:
    """Where the code page sends the worker instead: the done page of a proven owner, the human
    check of one whose first code waits for it; None: show the code page."""
    if owner.verified_at is not None:
        return redirect(url_for(done), 303)
    if owner.sends == 0 and session.get(pending_key) == owner.id:  # no code yet: the check first
        return redirect(url_for(check), 303)
    return None
