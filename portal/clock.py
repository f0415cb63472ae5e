"""Time: stored in UTC, shown and reasoned about (working days) in China Standard Time."""

from __future__ import annotations

import functools
import warnings
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

CST = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_cst(moment: datetime) -> datetime:
    return moment.astimezone(CST)


def today_cst() -> date:
    return utcnow().astimezone(CST).date()


def calendar_covers(day: date) -> bool:
    """Whether the official holiday calendar is published for this day's year."""
    try:
        chinese_calendar.is_workday(day)
    except NotImplementedError:
        return False
    return True


@functools.lru_cache(maxsize=8192)
def is_working_day(day: date) -> bool:
    """Official working day: holidays off, adjusted weekend days (调休) on.

    For a year whose calendar the State Council has not yet published, Monday to
    Friday are assumed; `calendar_covers` tells callers to call such dates provisional.
    Cached: every case page counts the working days to its due date, and the
    calendar data is fixed for the life of the process (a new year's calendar comes
    with a new chinese-calendar release, hence a restart).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The `days`-th working day after `start` (the start day itself does not count)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = start
    counted = 0
    while counted < days:
        current += timedelta(days=1)
        if is_working_day(current):
            counted += 1
    return current


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
