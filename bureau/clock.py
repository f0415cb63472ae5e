"""Time: stored in UTC, shown and numbered in China Standard Time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

CST = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def today_cst() -> date:
    return utcnow().astimezone(CST).date()


def rfc3339(moment: datetime) -> str:
    """RFC 3339 with the +08:00 offset, as the exchange protocol sends times."""
    return moment.astimezone(CST).isoformat(timespec="seconds")


def parse_rfc3339(value: str) -> datetime:
    """A timestamp with an explicit offset (or `Z`); naive times are refused."""
    if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt ":
        raise ValueError("not an RFC 3339 timestamp")
    moment = datetime.fromisoformat(value.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("timestamp without offset")
    return moment


def format_cst(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(CST).strftime(fmt) if moment else ""
