"""The statutory public holidays of 《全国年节及纪念日放假办法》, computed for any year.

Before the State Council publishes a year's arrangement (usually in November of the
year before), these days are already known to be non-working: the law fixes them, and
only the 调休 around them waits for the notice. The lunar dates (春节, 端午, 中秋) and
the solar term 清明 come from tyme4py (6tail's maintained successor of lunar-python,
astronomical calculation, no table typed by hand).
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

from tyme4py.lunar import LunarDay
from tyme4py.solar import SolarDay, SolarTerm

# The 2024 amendment (国务院令第798号, in force from 2025-01-01) is the rule for every
# year not yet published: 元旦 1, 春节 4 from 除夕, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3.
RULE_SINCE = 2025


def _day(solar: SolarDay) -> date:
    return date(solar.get_year(), solar.get_month(), solar.get_day())


@functools.lru_cache(maxsize=256)
def statutory_holidays(year: int) -> dict[date, str]:
    """Day -> holiday name of every statutory non-working day of `year` (rule of 2024)."""
    if year < RULE_SINCE:
        raise ValueError(f"the statutory rule used here applies from {RULE_SINCE}")
    days: dict[date, str] = {date(year, 1, 1): "元旦"}
    new_year = _day(LunarDay.from_ymd(year, 1, 1).get_solar_day())
    for offset in range(-1, 3):  # 除夕 (the last day of the lunar year) to 正月初三
        days[new_year + timedelta(days=offset)] = "春节"
    days[_day(SolarTerm.from_name(year, "清明").get_julian_day().get_solar_day())] = "清明"
    days[date(year, 5, 1)] = days[date(year, 5, 2)] = "劳动节"
    days[_day(LunarDay.from_ymd(year, 5, 5).get_solar_day())] = "端午"
    days[_day(LunarDay.from_ymd(year, 8, 15).get_solar_day())] = "中秋"
    for day in (1, 2, 3):
        days[date(year, 10, day)] = "国庆节"
    return days
