"""The working-day calendar: official arrangements where published, the statutory rule elsewhere.

A year is *official* when the State Council's notice for it is in the bundled data file
or was loaded by an operator (`portal calendar load`). For such a year the notice says
which days are off (放假) and which weekend days are worked (调休上班); every other
weekday works. For a year not yet published, weekends and the statutory holidays
(portal.calendar.statutory) are off, and every date computed from such a year is
provisional (预计) until its notice is loaded.

File format (one year, or {"years": [...]}; docs/operations.md, "The calendar"):

    {"year": 2027,
     "notice": {"title": "国务院办公厅关于2027年部分节假日安排的通知",
                "number": "国办发明电〔2026〕N号", "published": "2026-11-DD"},
     "holidays": {"2027-01-01": "元旦", ...},   # every day off, weekends inside a span too
     "workdays": {"2027-02-20": "春节", ...}}   # weekend days that are worked (调休)

This module is pure: no database, no settings. portal.clock holds the calendar in use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from portal.calendar.statutory import RULE_SINCE, statutory_holidays

BUNDLED_FILE = Path(__file__).parent / "data" / "official.json"
FIRST_YEAR, LAST_YEAR = 2004, 2100


class CalendarFileError(ValueError):
    """A calendar file that cannot be loaded; the message says why, in 中文."""


@dataclass(frozen=True)
class Arrangement:
    """One year's official arrangement (the State Council's notice)."""

    year: int
    notice: dict[str, Any]
    holidays: dict[date, str] = field(default_factory=dict)
    workdays: dict[date, str] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "notice": self.notice,
            "holidays": {d.isoformat(): n for d, n in sorted(self.holidays.items())},
            "workdays": {d.isoformat(): n for d, n in sorted(self.workdays.items())},
        }


def _dates(raw: Any, what: str, year: int) -> dict[date, str]:
    if not isinstance(raw, dict):
        raise CalendarFileError(f"{year} 年的 {what} 应为“日期: 节日名称”的对象")
    out: dict[date, str] = {}
    # A span may begin in the December before (元旦 from 30 Dec) or end in the January after.
    low, high = date(year - 1, 12, 1), date(year + 1, 1, 31)
    for key, name in raw.items():
        try:
            day = date.fromisoformat(key)
        except (TypeError, ValueError):
            raise CalendarFileError(
                f"{year} 年的 {what} 中“{key}”不是 YYYY-MM-DD 格式的日期"
            ) from None
        if not low <= day <= high:
            raise CalendarFileError(f"{year} 年的 {what} 中 {key} 不在该年度范围内")
        if not isinstance(name, str) or not name.strip() or len(name) > 40:
            raise CalendarFileError(f"{year} 年 {key} 的节日名称应为 1–40 个字")
        out[day] = name.strip()
    return out


def parse_year(raw: Any, *, check_statutory: bool = True) -> Arrangement:
    """One year of the file format, validated; errors name the year and the date."""
    if not isinstance(raw, dict):
        raise CalendarFileError("每个年度应为一个对象")
    year = raw.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarFileError(f"year 应为 {FIRST_YEAR}–{LAST_YEAR} 之间的整数")
    notice = raw.get("notice")
    if (
        not isinstance(notice, dict)
        or not isinstance(notice.get("title"), str)
        or not notice["title"].strip()
    ):
        raise CalendarFileError(f"{year} 年缺少 notice.title（通知标题）")
    for key in ("number", "published"):
        if notice.get(key) is not None and not isinstance(notice[key], str):
            raise CalendarFileError(f"{year} 年的 notice.{key} 应为文字")
    if notice.get("published"):
        try:
            date.fromisoformat(notice["published"])
        except ValueError:
            raise CalendarFileError(f"{year} 年的 notice.published 应为 YYYY-MM-DD") from None
    holidays = _dates(raw.get("holidays", {}), "holidays（放假日期）", year)
    workdays = _dates(raw.get("workdays", {}), "workdays（调休上班日期）", year)
    both = sorted(set(holidays) & set(workdays))
    if both:
        raise CalendarFileError(f"{year} 年 {both[0].isoformat()} 同时列为放假和上班")
    not_weekend = [d for d in workdays if d.weekday() < 5]
    if not_weekend:
        raise CalendarFileError(
            f"{year} 年 {not_weekend[0].isoformat()} 不是周末，不必列为调休上班日"
        )
    if check_statutory and year >= RULE_SINCE:
        # The law fixes these days; a notice that omits one is a typing error.
        missing = sorted(set(statutory_holidays(year)) - set(holidays))
        if missing:
            name = statutory_holidays(year)[missing[0]]
            raise CalendarFileError(
                f"{year} 年的通知未列出法定节假日 {missing[0].isoformat()}（{name}），请核对"
            )
    cleaned = {k: notice[k] for k in ("title", "number", "published") if notice.get(k)}
    return Arrangement(year=year, notice=cleaned, holidays=holidays, workdays=workdays)


def parse_file_data(data: Any, *, check_statutory: bool = True) -> list[Arrangement]:
    """A whole file: one year object, or {"years": [...]}; each year at most once."""
    if isinstance(data, dict) and "years" in data:
        raw_years = data["years"]
        if not isinstance(raw_years, list) or not raw_years:
            raise CalendarFileError("years 应为非空列表")
    else:
        raw_years = [data]
    years = [parse_year(raw, check_statutory=check_statutory) for raw in raw_years]
    seen = [a.year for a in years]
    duplicate = next((y for y in seen if seen.count(y) > 1), None)
    if duplicate is not None:
        raise CalendarFileError(f"{duplicate} 年出现了不止一次")
    return years


def read_file(path: Path) -> list[Arrangement]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalendarFileError(f"无法读取文件：{exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalendarFileError(f"不是 UTF-8 编码的 JSON：{exc}") from None
    return parse_file_data(data)


def bundled() -> list[Arrangement]:
    """The years shipped with the portal (seeded from chinesecalendar, see seed.py)."""
    return parse_file_data(
        json.loads(BUNDLED_FILE.read_text(encoding="utf-8")), check_statutory=False
    )


class WorkCalendar:
    """Answers "is this a working day?" and "is that answer official?" for any date."""

    def __init__(self, arrangements: list[Arrangement]) -> None:
        self.years: dict[int, Arrangement] = {a.year: a for a in arrangements}
        self._off: dict[date, str] = {}
        self._on: dict[date, str] = {}
        for arrangement in sorted(arrangements, key=lambda a: a.year):
            self._off.update(arrangement.holidays)
            self._on.update(arrangement.workdays)
            for day in arrangement.holidays:
                self._on.pop(day, None)
            for day in arrangement.workdays:
                self._off.pop(day, None)
        # Every case page counts working days to its due date: memoise per instance (a
        # new calendar is a new instance, so a load never leaves a stale answer behind).
        self._memo: dict[date, bool] = {}

    def is_official(self, year: int) -> bool:
        return year in self.years

    def span_official(self, start: date, end: date) -> bool:
        """Whether every year from start to end has its notice (so nothing is provisional)."""
        low, high = sorted((start, end))
        return all(self.is_official(y) for y in range(low.year, high.year + 1))

    def holiday_name(self, day: date) -> str | None:
        """The holiday a day off belongs to (notice or statutory rule); None otherwise."""
        if day in self._on:
            return None
        if day in self._off:
            return self._off[day]
        if not self.is_official(day.year) and day.year >= RULE_SINCE:
            return statutory_holidays(day.year).get(day)
        return None

    def is_statutory_holiday(self, day: date) -> bool:
        """A day the law closes, whether or not the year's notice is out."""
        if day.year >= RULE_SINCE and day in statutory_holidays(day.year):
            return True
        return day in self._off

    def is_working_day(self, day: date) -> bool:
        known = self._memo.get(day)
        if known is not None:
            return known
        if day in self._on:
            answer = True
        elif day in self._off or day.weekday() >= 5:
            answer = False
        elif day.year >= RULE_SINCE and day in statutory_holidays(day.year):
            # Defence in depth: never a working day, whatever a notice forgot.
            answer = False
        else:
            answer = True
        self._memo[day] = answer
        return answer

    def add_working_days(self, start: date, days: int) -> date:
        """The `days`-th working day after `start` (the start day itself does not count)."""
        if days < 0:
            raise ValueError("days must not be negative")
        current, counted = start, 0
        while counted < days:
            current += timedelta(days=1)
            if self.is_working_day(current):
                counted += 1
        return current
