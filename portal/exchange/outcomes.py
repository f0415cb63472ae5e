"""How one send ended, for the dispatcher and every handler it runs (events, blobs, SMS).

Its own module so handlers need not import the dispatcher that calls them.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

from portal.clock import utcnow

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
# Retry-After is honoured up to the contract's retry window; a longer or absurd value
# (hundreds of digits) is capped there instead of overflowing a timedelta.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


class Retryable(Exception):
    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Permanent(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Compare digit counts before converting: int("9" * 400) is fine, a float of it
        # is inf, and timedelta(seconds=inf) raises.
        if len(value.lstrip("0")) > 6:
            return MAX_RETRY_AFTER_SECONDS
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    if len(value) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or utcnow())).total_seconds()
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)
