"""Bookings of half-day slots at hall windows, and the per-slot counters that cap them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        # One live booking per case and purpose, even when two requests race.
        Index(
            "uq_appointments_live",
            "case_id",
            "purpose",
            unique=True,
            sqlite_where=text("status = 'booked'"),
            postgresql_where=text("status = 'booked'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The id the bureau knows it by (`appointment_id` in the events).
    appointment_id: Mapped[str] = mapped_column(String(36), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))  # "visit" | "pickup"
    hall_code: Mapped[str] = mapped_column(ForeignKey("halls.code"))
    window: Mapped[int]
    date: Mapped[date]
    period: Mapped[str] = mapped_column(String(2))  # "am" | "pm"
    status: Mapped[str] = mapped_column(String(10), default="booked")  # booked | cancelled
    booked_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
    # Set when a calendar loaded after booking made the day a holiday and the citizen
    # was told (message + SMS) to rebook; the booking itself is never moved silently.
    closed_day_notified_at: Mapped[datetime | None]


class SlotCounter(Base):
    """Bookings held in one half-day slot of one window; raised only while below capacity."""

    __tablename__ = "appointment_slots"

    hall_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    window: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[date] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(2), primary_key=True)
    booked: Mapped[int] = mapped_column(default=0)
