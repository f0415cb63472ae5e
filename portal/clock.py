"""Time: stored in UTC, shown and reasoned about (working days) in China Standard Time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from portal.calendar.rules import WorkCalendar, bundled

CST = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_cst(moment: datetime) -> datetime:
    return moment.astimezone(CST)


# The test clock (PORTAL_TEST_CLOCK_DAYS, dev mode only): days added to the calendar date,
# so a test on real servers can step into a licence's renewal window years ahead. Only
# the date moves: instants (utcnow) stay true, or signatures and sessions would fail.
_date_shift = timedelta(0)


def shift_dates(days: int) -> None:
    """Move today's date `days` ahead (0: the true date). For tests and dev mode only."""
    global _date_shift
    _date_shift = timedelta(days=days)


def today_cst() -> date:
    return utcnow().astimezone(CST).date() + _date_shift


# The working-day calendar in use: the bundled notices, then those an operator loaded
# (portal.calendar.service installs them from the database and keeps them fresh).
_calendar: WorkCalendar | None = None


def work_calendar() -> WorkCalendar:
    global _calendar
    if _calendar is None:
        _calendar = WorkCalendar(bundled())
    return _calendar


def install_calendar(calendar: WorkCalendar | None) -> None:
    """Swap the calendar in use (one reference: readers see the old or the new, whole)."""
    global _calendar
    _calendar = calendar


def calendar_covers(day: date) -> bool:
    """Whether the official arrangement (the State Council's notice) of this day's year is in."""
    return work_calendar().is_official(day.year)


def span_official(start: date, end: date) -> bool:
    """Whether a date computed from `start` to `end` rests on official notices only."""
    return work_calendar().span_official(start, end)


def is_working_day(day: date) -> bool:
    """Official working day: holidays off, adjusted weekend days (调休) on.

    For a year not yet published, weekends and the statutory holidays are off
    (portal.calendar.rules); `calendar_covers` tells callers to mark such dates 预计.
    """
    return work_calendar().is_working_day(day)


def is_statutory_holiday(day: date) -> bool:
    """A day closed by law or by the notice; nothing is ever booked on one."""
    return work_calendar().is_statutory_holiday(day)


def add_working_days(start: date, days: int) -> date:
    """The `days`-th working day after `start` (the start day itself does not count)."""
    return work_calendar().add_working_days(start, days)


def working_days_left(today: date, due: date) -> int:
    """Working days from today (not counted) up to and including `due`; negative when overdue."""
    if due >= today:
        n, current = 0, today
        while current < due:
            current += timedelta(days=1)
            if is_working_day(current):
                n += 1
        return n
    n, current = 0, due
    while current < today:
        current += timedelta(days=1)
        if is_working_day(current):
            n -= 1
    return n


def format_cst(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return to_cst(moment).strftime(fmt) if moment else ""


def rfc3339(moment: datetime) -> str:
    """RFC 3339 with the +08:00 offset, as the exchange protocol sends times."""
    return to_cst(moment).isoformat(timespec="seconds")
