"""Official working-day arrangements loaded by an operator (`portal calendar load`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class CalendarYear(Base):
    """One year's State Council notice, as loaded; it overrides the bundled data file."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(primary_key=True)
    # The year in the bundled file format (see docs/operations.md, "The calendar").
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(200), default="")
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
