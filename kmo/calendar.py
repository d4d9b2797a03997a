"""Belgian calendar: local dates, office hours, working days for phone calls."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

BRUSSELS = ZoneInfo("Europe/Brussels")
OFFICE_OPENS = time(9, 0)


def local_date(moment: datetime) -> date:
    """The calendar date in Belgium at `moment` (an aware datetime)."""
    return moment.astimezone(BRUSSELS).date()


def office_morning(day: date) -> datetime:
    """09:00 Belgian time on `day`, as an aware datetime: when reminders go out."""
    return datetime.combine(day, OFFICE_OPENS, BRUSSELS)


# Computed once at import, outside any workflow: the library loads translations
# and locale data lazily, which a workflow sandbox does not allow.
HOLIDAY_YEARS = range(2015, 2061)
PUBLIC_HOLIDAYS: frozenset[date] = frozenset(
    holidays.country_holidays("BE", years=HOLIDAY_YEARS).keys()
)


def is_working_day(day: date) -> bool:
    if day.year not in HOLIDAY_YEARS:
        raise ValueError(f"no Belgian holiday table for {day.year}")
    return day.weekday() < 5 and day not in PUBLIC_HOLIDAYS


def next_working_day(day: date) -> date:
    """`day` itself when staff can call then, else the first working day after."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day
