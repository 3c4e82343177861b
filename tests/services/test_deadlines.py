"""The approval deadline in mainland working days: holidays and 调休 from chinese-calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.services import deadlines
from app.services.deadlines import due_date, is_overdue, is_working_day, overdue_cutoff, working_days_between

# National Day 2026: Oct 1-7 off (Mid-Autumn on Fri Sep 25 too); Sun Sep 20 and Sat Oct 10 are worked.
OFF = [date(2026, 9, 25), *(date(2026, 10, d) for d in range(1, 8))]
ADJUSTED = [date(2026, 9, 20), date(2026, 10, 10)]


def test_the_calendar_knows_the_holiday_and_the_adjusted_workdays():
    assert not any(is_working_day(d) for d in OFF)
    assert all(is_working_day(d) for d in ADJUSTED)
    assert ADJUSTED[0].weekday() == 6 and ADJUSTED[1].weekday() == 5  # a Sunday and a Saturday
    assert is_working_day(date(2026, 9, 30)) and not is_working_day(date(2026, 10, 11))


def test_due_date_across_national_day():
    # Applied Mon Sep 21: working days Sep 22,23,24,28,29,30, Oct 8,9,10,12,13,14,15,16,19 -> 15th is Oct 19.
    assert due_date(date(2026, 9, 21), 15) == date(2026, 10, 19)
    # Counting plain weekdays would have said Oct 12: the holiday week moves the deadline a week.
    assert date(2026, 9, 21) + timedelta(days=21) == date(2026, 10, 12)


def test_an_adjusted_sunday_counts_and_the_day_of_application_does_not():
    assert due_date(date(2026, 9, 19), 1) == date(2026, 9, 20)
    assert due_date(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert due_date(date(2026, 10, 9), 1) == date(2026, 10, 10)
    assert due_date(date(2026, 9, 30), 0) == date(2026, 9, 30)


def test_working_days_between():
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 8)) == 1
    assert working_days_between(date(2026, 9, 18), date(2026, 9, 21)) == 2  # Sun 20 and Mon 21
    assert working_days_between(date(2026, 9, 21), date(2026, 10, 19)) == 15
    assert working_days_between(date(2026, 10, 19), date(2026, 9, 21)) == 0


def test_overdue_only_after_the_due_date():
    applied = datetime(2026, 9, 21, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
    assert not is_overdue(applied, datetime(2026, 10, 19, 15, 59, tzinfo=UTC), 15)  # 23:59 Oct 19 Beijing
    assert is_overdue(applied, datetime(2026, 10, 19, 16, 0, tzinfo=UTC), 15)  # 00:00 Oct 20 Beijing


def test_days_are_beijing_days_and_naive_times_are_utc():
    late = datetime(2026, 9, 30, 17, 0)  # naive UTC = 01:00 Oct 1 in Beijing, a holiday
    assert deadlines.local_date(late) == date(2026, 10, 1)
    assert due_date(late, 1) == date(2026, 10, 8)


def test_years_without_a_notice_fall_back_to_weekdays():
    far = date(2099, 3, 2)  # a Monday in a year the package has no data for
    assert is_working_day(far) and not is_working_day(far + timedelta(days=5))
    assert due_date(far, 5) == date(2099, 3, 9)


@pytest.mark.parametrize("now_day", [date(2026, 10, 8), date(2026, 10, 20), date(2026, 12, 1)])
def test_cutoff_agrees_with_is_overdue(now_day):
    now = datetime.combine(now_day, datetime.min.time(), UTC) + timedelta(hours=4)
    cutoff = overdue_cutoff(now, 15)
    for hours in range(0, 24 * 40, 7):
        applied = now - timedelta(hours=hours)
        assert (applied < cutoff) == is_overdue(applied, now, 15), applied
