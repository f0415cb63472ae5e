"""原件寄递: how the applicant hands in the originals the bureau must see, and its receipt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class Originals(Base):
    """One row per case: the latest choice (a later one replaces it) and the bureau's receipt."""

    __tablename__ = "originals"

    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    # "courier_pickup" 上门取件 | "dropoff" 自行投递到网点 | "counter" 窗口递交;
    # None when the bureau reported a receipt the applicant never announced.
    method: Mapped[str | None] = mapped_column(String(20))
    carrier: Mapped[str | None] = mapped_column(String(10))  # a code of originals.carriers
    tracking_no: Mapped[str | None] = mapped_column(String(40))
    hall_code: Mapped[str | None] = mapped_column(String(32))  # counter: where
    # courier_pickup: where the courier collected (the applicant's address), as sent.
    address: Mapped[dict[str, Any] | None]
    materials: Mapped[list[Any]] = mapped_column(default=list)  # [{code, name}]
    posted_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None]
    received_note: Mapped[str | None] = mapped_column(String(500))
