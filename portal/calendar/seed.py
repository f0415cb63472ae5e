"""Regenerate the bundled data file from chinesecalendar: `python -m portal.calendar.seed`.

chinesecalendar (2004–2026 in the pinned release) transcribes each State Council
notice; the bundled file keeps the same days in the portal's own format, so a new
year is loaded from a file (`portal calendar load`) instead of waiting for a release.
tests/test_calendar.py checks the two agree on every day.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import chinese_calendar
from chinese_calendar import constants

from portal.calendar.rules import BUNDLED_FILE

# Notice titles follow one pattern; chinesecalendar does not record the notice numbers
# (国办发明电〔…〕…号), so the seed leaves them out rather than guess them.
TITLE = "国务院办公厅关于{year}年部分节假日安排的通知"
EXTRA_NOTICES = {2020: "国务院办公厅关于延长2020年春节假期的通知"}
PUBLISHED = {2026: "2025-11-04"}


def _chinese(value: str) -> str:
    return next(h.chinese for h in constants.Holiday if h.value == value)


def seed_data() -> dict:
    years = []
    first = min(constants.holidays).year
    last = max(constants.holidays).year
    for year in range(first, last + 1):
        holidays, workdays = {}, {}
        day = date(year, 1, 1)
        while day.year == year:
            on, name = chinese_calendar.get_holiday_detail(day)
            if on and name and not chinese_calendar.is_workday(day):
                holidays[day.isoformat()] = _chinese(name)
            elif not on and day.weekday() >= 5:
                workdays[day.isoformat()] = _chinese(name) if name else "调休"
            day += timedelta(days=1)
        notice = {"title": TITLE.format(year=year)}
        if year in EXTRA_NOTICES:
            notice["title"] += "；" + EXTRA_NOTICES[year]
        if year in PUBLISHED:
            notice["published"] = PUBLISHED[year]
        years.append({"year": year, "notice": notice, "holidays": holidays, "workdays": workdays})
    return {"source": f"chinesecalendar {chinese_calendar.__version__}", "years": years}


if __name__ == "__main__":
    BUNDLED_FILE.write_text(
        json.dumps(seed_data(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"wrote {BUNDLED_FILE}")
