"""The district roster for officials and admins: tabs, search, live updates, decisions, exports.

Organizers never reach it (403): they see no member personal data. Every query is scoped to
the signed-in user's districts inside the service, so another district's member is a 404.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from app.db import get_session, session_scope
from app.models import MemberStatus, Role, utcnow
from app.security import action_limit, same_origin_referrer
from app.services import decisions, events, export, export_jobs, numbers, roster, tasks
from app.services.crypto import PiiCipher
from app.web import MAX_DB_ID, escalation
from app.web.access import role_required, scope, staff
from app.web.worker.messages import PLATFORM_LABELS

log = logging.getLogger(__name__)
bp = Blueprint("roster", __name__, url_prefix="/roster")

PAGE_SIZE = 50
STATUS_LABELS = {
    MemberStatus.pending.value: _l("Pending"),
    MemberStatus.approved.value: _l("Approved"),
    MemberStatus.rejected.value: _l("Rejected"),
}
# docs/security.md F10: exports are rate-limited per staff account (mass exfiltration).
FILTER_KEYS = ("status", "workplace", "platform", "q", "recent", "district", "sort", "overdue", "since")


class DecisionForm(FlaskForm):
    """CSRF only: the fields are read from request.form (a variable list of ids)."""


def _filter() -> roster.RosterFilter:
    try:
        return roster.filter_from_args(request.args, overdue_days=current_app.config["ROSTER_OVERDUE_DAYS"])
    except roster.BadFilter:
        abort(400)


def _filter_args() -> dict[str, str]:
    return {k: request.args[k] for k in FILTER_KEYS if request.args.get(k)}


def _pii() -> PiiCipher:
    return current_app.extensions["pii"]


@bp.get("/")
@role_required(Role.official)
def index() -> str:
    flt, db = _filter(), get_session()
    try:
        page = roster.list_members(db, _pii(), scope(), flt, cursor=request.args.get("cursor"), limit=PAGE_SIZE)
    except roster.BadCursor:
        abort(400)
    tab_counts = roster.counts(db, scope(), flt, pii=_pii())
    return render_template(
        "roster/index.html",
        page=page,
        failed=roster.failed_notices(db, page.items),
        flt=flt,
        counts=tab_counts,
        args=_filter_args(),
        tab_args={k: v for k, v in _filter_args().items() if k != "status"},
        first_page=not request.args.get("cursor"),
        marker=roster.current_marker(db),
        form=DecisionForm(),
        statuses=STATUS_LABELS,
        platforms=PLATFORM_LABELS,
        overdue_days=flt.overdue_days,
    )


@bp.get("/changes")
@role_required(Role.official)
def changes() -> Response:
    """Polled by roster.js: has anything in scope changed since `since`? If so, the new rows."""
    flt, db = _filter(), get_session()
    found = roster.changes_since(db, scope(), request.args.get("marker"))
    body: dict[str, object] = {"marker": found.marker, "changed": found.changed}
    if found.changed:
        page = roster.list_members(db, _pii(), scope(), flt, cursor=None, limit=PAGE_SIZE)
        body["rows"] = render_template(
            "roster/_rows.html",
            page=page,
            failed=roster.failed_notices(db, page.items),
            statuses=STATUS_LABELS,
            platforms=PLATFORM_LABELS,
        )
        body["counts"] = roster.counts(db, scope(), flt, pii=_pii())
        body["more"] = page.next_cursor is not None
    return jsonify(body)


@bp.get("/<int:member_id>")
@role_required(Role.official)
def member(member_id: int) -> str:
    view = _member_view(member_id)
    failed = tasks.notice_failure(get_session(), view.id, view.decided_at)
    return render_template(
        "roster/member.html",
        m=view,
        form=DecisionForm(),
        statuses=STATUS_LABELS,
        platforms=PLATFORM_LABELS,
        notice_failed=failed,
        **escalation.member_extras(get_session(), view.id, view.status),
    )


def _member_view(member_id: int) -> roster.MemberView:
    try:
        return roster.get_member(
            get_session(), _pii(), scope(), member_id, overdue_days=current_app.config["ROSTER_OVERDUE_DAYS"]
        )
    except roster.MemberNotFound:
        abort(404)


@bp.post("/<int:member_id>/approve")
@role_required(Role.official)
def approve(member_id: int) -> ResponseReturnValue:
    return _decide_one(member_id, approving=True)


@bp.post("/<int:member_id>/reject")
@role_required(Role.official)
def reject(member_id: int) -> ResponseReturnValue:
    return _decide_one(member_id, approving=False)


def _decide_one(member_id: int, *, approving: bool) -> ResponseReturnValue:
    if not DecisionForm().validate():
        abort(400)
    return _decide([member_id], approving=approving, reason=request.form.get("reason", ""))


@bp.post("/decide")
@role_required(Role.official)
def decide() -> ResponseReturnValue:
    """Bulk (checked rows) or one row's quick-approve button; a result per row either way."""
    if not DecisionForm().validate():
        abort(400)
    one, action = request.form.get("one", ""), request.form.get("action", "")
    if not one and action not in ("approve", "reject"):
        # Only a press of Approve or Reject decides: a submission by any other means decides no one.
        flash(_("Nothing was decided: press Approve or Reject."))
        return redirect(url_for("roster.index", **_back_args()), 303)
    raw_ids = [one] if one else request.form.getlist("ids")
    ids = [int(v) for v in raw_ids if numbers.digits(v) and 0 < int(v) <= MAX_DB_ID]
    approving = bool(one) or action == "approve"
    if not ids:
        flash(_("Select at least one application."))
        return redirect(url_for("roster.index", **_back_args()), 303)
    return _decide(ids, approving=approving, reason=request.form.get("reason", ""))


def _back_args() -> dict[str, Any]:
    return {k[2:]: v for k, v in request.form.items() if k.startswith("f_") and v}


def _decide(ids: list[int], *, approving: bool, reason: str) -> ResponseReturnValue:
    db = get_session()
    try:
        results = decisions.decide(db, scope(), ids, by=staff(), approve=approving, reason=reason, now=utcnow())
    except roster.ReasonRequired:
        flash(_("Please give a reason for the rejection (at most 500 characters)."))
        return redirect(same_origin_referrer(request.referrer, request.host_url, url_for("roster.index")), 303)
    db.commit()  # the workers are told after the commit (app/services/events.py)
    unsent = events.outcomes(db, events.MemberDecided).count(False)
    decided = [r.member for r in results if r.member is not None]
    if len(ids) == 1 and results[0].outcome == "not_found":
        abort(404)
    status = 409 if all(r.outcome == "already_decided" for r in results) else 200
    views = {m.id: _safe_view(m.id) for m in decided}
    return render_template(
        "roster/results.html", results=results, views=views, unsent=unsent, statuses=STATUS_LABELS
    ), status


def _safe_view(member_id: int | None) -> roster.MemberView | None:
    try:
        return roster.get_member(get_session(), _pii(), scope(), member_id or 0)
    except roster.MemberNotFound:
        return None


@bp.get("/export.<any(csv, xlsx):fmt>")
@role_required(Role.official)
@action_limit("export", lambda: staff().id or 0)
def export_file(fmt: str) -> ResponseReturnValue:
    """The current filter as CSV or Excel, streamed when small (at most EXPORT_STREAM_MAX_ROWS
    rows); a larger one is offered as a job (app/web/exports.py). The audit event is written when
    the stream ends."""
    flt, user, pii, ids = _filter(), staff(), _pii(), scope()
    if export_jobs.estimate(get_session(), pii, ids, flt) > current_app.config["EXPORT_STREAM_MAX_ROWS"]:
        return render_template("roster/export_large.html", fmt=fmt, args=_filter_args())

    def finish(rows: int, complete: bool) -> None:
        with session_scope() as own:
            export.record(own, by=user, fmt=fmt, flt=flt, rows=rows, complete=complete)

    make = export.csv_stream if fmt == "csv" else export.xlsx_stream
    chunks = make(get_session(), pii, ids, flt, finish=finish, layout=_export_layout())
    mimetype = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    )
    name = f"roster-{datetime.now().strftime('%Y%m%d-%H%M')}.{fmt}"
    return Response(
        stream_with_context(chunks),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _export_layout() -> export.Layout:
    """Headers and words in the user's language; times in the district's zone, named in the header."""
    zone_name = current_app.config["BABEL_DEFAULT_TIMEZONE"]
    header = [
        _("Member number"),
        _("Name"),
        _("Phone"),
        _("Platform"),
        _("Station code"),
        _("Station"),
        _("District code"),
        _("Status"),
        _("Applied (%(zone)s)", zone=zone_name),
        _("Decided (%(zone)s)", zone=zone_name),
        _("Decided by"),
        _("Reason for rejection"),
    ]
    return export.Layout(
        header=header,
        statuses={code: str(label) for code, label in STATUS_LABELS.items()},
        platforms={p.value: str(label) for p, label in PLATFORM_LABELS.items()},
        zone=ZoneInfo(zone_name),
        national_phones=True,
    )


AUDIT_KEYS = ("action", "actor", "target_type", "target_id", "start", "end")


@bp.get("/audit")
@role_required()
def audit() -> str:
    """Admins only: who did what to which record, newest first, filterable."""
    args = {k: request.args[k].strip() for k in AUDIT_KEYS if request.args.get(k, "").strip()}
    flt = roster.AuditFilter(
        action=args.get("action"),
        actor=args.get("actor"),
        target_type=args.get("target_type"),
        target_id=args.get("target_id"),
        start=_day(args.get("start")),
        end=_day(args.get("end"), next_day=True),
    )
    before_arg = request.args.get("before", "")
    before = int(before_arg) if numbers.digits(before_arg) and int(before_arg) <= MAX_DB_ID else None
    rows, more = roster.list_audit(get_session(), flt, before=before, limit=PAGE_SIZE)
    return render_template("roster/audit.html", rows=rows, before=more, args=args)


def _day(value: str | None, *, next_day: bool = False) -> datetime | None:
    """A YYYY-MM-DD date as the start of that day (or the next) in the configured time zone."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        abort(400)
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start + timedelta(days=1) if next_day else start
