"""Dashboards: how the drive is going, for officials (their districts), organizers and admins.

Officials and admins see member figures (joins per day by district, station and platform, time
to decision, overdue applications); organizers see only the poster funnels. Charts are inline
SVG drawn here (app/web/charts.py), each with its table under it; the CSV has the same figures.
Station, platform and poster counts from 1 to 4 are shown as "<5" (app/services/dashboard.py).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.db import get_session
from app.models import Platform, Role, utcnow
from app.services import dashboard, numbers
from app.services.export import neutralise
from app.web import charts
from app.web.access import role_required, scope, staff
from app.web.worker.messages import PLATFORM_LABELS

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

STEP_LABELS = {
    "scans": _l("Scanned"),
    "forms": _l("Form sent"),
    "sent": _l("Code sent"),
    "verified": _l("Code verified"),
    "approved": _l("Approved"),
}


def _report() -> dashboard.Report:
    days = request.args.get("days", "30")
    try:
        zone = current_app.config["BABEL_DEFAULT_TIMEZONE"]
        win = dashboard.window(utcnow(), int(days) if numbers.digits(days) and len(days) < 4 else 0, zone)
    except dashboard.BadPeriod:
        abort(400)
    members = staff().role is not Role.organizer
    working_days = current_app.config["APPROVAL_WORKING_DAYS"]
    return dashboard.report(get_session(), scope(), win, members=members, working_days=working_days)


@bp.get("/")
@role_required(Role.official, Role.organizer)
def index() -> str:
    report = _report()
    return render_template(
        "dashboard/index.html",
        r=report,
        view=_view(report),
        periods=dashboard.PERIODS,
        step_labels=[STEP_LABELS[step] for step in dashboard.FUNNEL_STEPS],
    )


@bp.get("/dashboard.csv")
@role_required(Role.official, Role.organizer)
def csv_export() -> Response:
    report = _report()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "day", "district", "key", "name", "value"])
    for row in csv_rows(report):
        writer.writerow([neutralise(cell) for cell in row])
    response = Response("\ufeff" + buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    filename = f"dashboard-{report.win.last.isoformat()}-{report.win.days}d.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- what the page shows -----------------------------------------------------------------------


def _district_code(report: dashboard.Report, district_id: Any) -> str:
    return next((d.code for d in report.districts if d.id == district_id), f"#{district_id}")


def _station_label(report: dashboard.Report, key: tuple[int, int | None]) -> tuple[str, str]:
    district_id, station_id = key
    if station_id is None:
        return _district_code(report, district_id), _("No station (district poster)")
    station = report.stations.get(station_id)
    return (station.code, station.name) if station else (f"#{station_id}", "")


def _platform_label(key: str) -> str:
    try:
        return str(PLATFORM_LABELS[Platform(key)])
    except ValueError:
        return key


def _view(report: dashboard.Report) -> dict[str, Any]:
    """Charts and table rows for the template (labels translated here, figures from the report)."""
    view: dict[str, Any] = {"funnel_rows": _funnel_rows(report)}
    totals = report.funnel_totals
    items = [(str(STEP_LABELS[step]), totals.get(step) if step != "sent" else None) for step in dashboard.FUNNEL_STEPS]
    view["funnel_chart"] = charts.bars(items, _("Funnel of all posters"), "funnel")
    if not report.members or report.by_district is None:
        return view
    joins = report.by_district
    per_day = sorted(joins.per_day(report.win).items())
    view["daily_chart"] = charts.daily_columns(per_day, _("Applications per day"), "daily")
    view["daily_rows"] = [(day, [joins.daily.get((day, d.id), 0) for d in report.districts], n) for day, n in per_day]
    district_totals = joins.totals()
    items = [(f"{d.code} {d.name}", district_totals.get(d.id, 0)) for d in report.districts]
    view["district_chart"] = charts.bars(items, _("Applications by district"), "districts")
    view["district_rows"] = items
    stations = [(" ".join(_station_label(report, k)), report.by_station[None, k]) for k in report.station_keys]
    stations.sort(key=_largest_first)
    view["station_chart"] = charts.bars(stations, _("Applications by station"), "stations")
    view["station_rows"] = stations
    platforms = [(_platform_label(k), report.by_platform[None, k]) for k in report.platform_keys]
    platforms.sort(key=_largest_first)
    view["platform_chart"] = charts.bars(platforms, _("Applications by platform"), "platforms")
    view["platform_rows"] = platforms
    view["platform_days"] = (
        [_platform_label(k) for k in report.platform_keys],
        [(day, [report.by_platform[day, k] for k in report.platform_keys]) for day in report.win.dates()],
    )
    view["decision_rows"] = _decision_rows(report)
    view["transfer_rows"] = [(f"{d.code} {d.name}", *report.transfers.get(d.id or 0, (0, 0))) for d in report.districts]
    return view


def _largest_first(item: tuple[str, int | str]) -> tuple[int, str]:
    value = item[1]
    return (-value if isinstance(value, int) else -1, item[0])


def _funnel_rows(report: dashboard.Report) -> list[tuple[str, str, int, list[int | str | None]]]:
    rows = []
    for poster, shown in report.funnels:
        code, name = report.place_name(poster.kind, poster.place_id)
        rows.append((code, name, poster.qr_version, [shown[step] for step in dashboard.FUNNEL_STEPS]))
    return rows


def _decision_rows(report: dashboard.Report) -> list[tuple[str, dashboard.Decisions]]:
    names = {d.id: f"{d.code} {d.name}" for d in report.districts}
    return [(names.get(k) or _("All your districts"), figures) for k, figures in report.decisions.items()]


# --- the CSV -----------------------------------------------------------------------------------


def csv_rows(report: dashboard.Report) -> list[list[object]]:
    """section, day (empty for the period), district code, key, name, value ("<5" when hidden)."""
    rows: list[list[object]] = []
    for poster, shown in report.funnels:
        code, name = report.place_name(poster.kind, poster.place_id)
        for step in dashboard.FUNNEL_STEPS:
            value = shown[step]
            shown_value = "" if value is None else value
            rows.append([f"funnel_{step}", "", "", f"{code} v{poster.qr_version}", name, shown_value])
    if not report.members or report.by_district is None:
        return rows
    joins = report.by_district
    for day in report.win.dates():
        for district in report.districts:
            count = joins.daily.get((day, district.id), 0)
            rows.append(["joins_district", day, district.code, district.code, district.name, count])
    rows += _breakdown_rows(report, "joins_station", report.by_station, report.station_keys)
    rows += _breakdown_rows(report, "joins_platform", report.by_platform, report.platform_keys)
    for key, figures in report.decisions.items():
        code = _district_code(report, key) if key is not None else ""
        for name in ("decided", "median_hours", "p90_hours", "overdue"):
            value = getattr(figures, name)
            rows.append([f"decisions_{name}", "", code, "", "", "" if value is None else round(value, 1)])
    for district in report.districts:
        moved_out, moved_in = report.transfers.get(district.id or 0, (0, 0))
        rows.append(["transfers_out", "", district.code, "", district.name, moved_out])
        rows.append(["transfers_in", "", district.code, "", district.name, moved_in])
    return rows


def _breakdown_rows(
    report: dashboard.Report, section: str, cells: dict[tuple[date | None, Any], int | str], keys: list[Any]
) -> list[list[object]]:
    rows: list[list[object]] = []
    for key in keys:
        if section == "joins_station":
            district, (code, name) = _district_code(report, key[0]), _station_label(report, key)
        else:
            district, code, name = "", key, _platform_label(key)
        for day in [None, *report.win.dates()]:
            rows.append([section, day or "", district, code, name, cells[day, key]])
    return rows
