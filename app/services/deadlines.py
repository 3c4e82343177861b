"""The approval deadline, counted in mainland China working days.

A working day is one the State Council's holiday notice says people work: weekdays that are not
public holidays, plus the weekend days moved into work (调休, e.g. the Sunday before National
Day). The `chinese-calendar` package keeps that list (`holidays` knows the holidays but not the
adjusted workdays). Its data ends with the last notice published; for a later year (the notice
comes out each November) the count falls back to Monday-Friday.

Days are Beijing days: an application at 23:30 UTC counts from the next Beijing date. The day of
application is not counted; the deadline is the end of the Nth working day after it.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

BEIJING = ZoneInfo("Asia/Shanghai")
DEFAULT_WORKING_DAYS = 15


def is_working_day(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package has no notice for yet
        return day.weekday() < 5


def local_date(moment: datetime | date) -> date:
    """The Beijing date of a moment (naive datetimes are UTC, as the database keeps them)."""
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BEIJING).date()


def due_date(applied_at: datetime | date, days: int = DEFAULT_WORKING_DAYS) -> date:
    """The Nth working day after the day of application: a decision is due by its end."""
    return _due(local_date(applied_at), max(days, 0))


@functools.lru_cache(maxsize=4096)  # the roster and exports ask for the same few hundred days again and again
def _due(day: date, left: int) -> date:
    while left:
        day += timedelta(days=1)
        left -= is_working_day(day)
    return day


def working_days_between(a: datetime | date, b: datetime | date) -> int:
    """Working days after a's date up to and including b's date (0 when b is not after a)."""
    start, end = local_date(a), local_date(b)
    return sum(is_working_day(start + timedelta(days=n)) for n in range(1, (end - start).days + 1))


def is_overdue(applied_at: datetime | date, now: datetime | date, days: int = DEFAULT_WORKING_DAYS) -> bool:
    """True once the due date has passed (on the due date itself the decision is still in time)."""
    return local_date(now) > due_date(applied_at, days)


def overdue_cutoff(now: datetime, days: int = DEFAULT_WORKING_DAYS) -> datetime:
    """The UTC instant such that an application made before it is overdue at `now`.

    For SQL filters (`created_at < overdue_cutoff(now)`): the start of the latest Beijing day
    whose due date has passed, plus one day.
    """
    day = local_date(now) - timedelta(days=1)
    while due_date(day, days) >= local_date(now):
        day -= timedelta(days=1)
    start = datetime.combine(day + timedelta(days=1), datetime.min.time(), BEIJING)
    return start.astimezone(UTC)
