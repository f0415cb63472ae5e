"""好差评: one rating per finished case, and the bureau's reply."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class Rating(Base):
    __tablename__ = "ratings"

    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int]  # 5 非常满意 … 1 非常不满意
    code: Mapped[int]  # GB/T 39046: 1 非常满意 … 5 非常不满意 (= 6 - level)
    comment: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None]
