"""12345 questions (咨询) and complaints (投诉) and the bureau's answers."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class Consultation(Base):
    __tablename__ = "consultations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The id the bureau knows it by (`consultation_id` in the events).
    consultation_id: Mapped[str] = mapped_column(String(36), unique=True)
    # None for one sent without an account: its contact phone was proven by an SMS code,
    # and the citizen finds it again by that phone, the reference and a new code.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # The number the citizen is given (ZX + date + 6 digits); None for rows from before it.
    reference: Mapped[str | None] = mapped_column(String(16), unique=True)
    case_id: Mapped[int | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))  # "consult" | "complaint"
    subject: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    contact_name: Mapped[str] = mapped_column(String(50))
    contact_phone: Mapped[str] = mapped_column(String(11))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The answer is due by this working day (shown to the citizen).
    due_date: Mapped[date]
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
