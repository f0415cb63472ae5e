"""Tables of the back office. Relationships are `lazy="raise"`: every load is explicit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bureau.clock import utcnow
from bureau.db import Base


class BureauCase(Base):
    """One case as the bureau knows it: what the portal sent plus the staff's decisions."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    round: Mapped[int] = mapped_column(default=1)
    item_code: Mapped[str] = mapped_column(String(64))
    item_name: Mapped[str] = mapped_column(String(200))
    applicant: Mapped[dict[str, Any]] = mapped_column(default=dict)
    applicant_name: Mapped[str] = mapped_column(String(200), default="")
    form: Mapped[dict[str, Any]] = mapped_column(default=dict)
    materials: Mapped[list[Any]] = mapped_column(default=list)
    commitment: Mapped[dict[str, Any] | None]
    delivery: Mapped[dict[str, Any] | None]
    bundle: Mapped[dict[str, Any] | None]
    acceptance_no: Mapped[str | None] = mapped_column(String(40), unique=True)
    due_date: Mapped[date | None]
    accepted_at: Mapped[datetime | None]
    inspection_date: Mapped[date | None]
    inspection_note: Mapped[str | None] = mapped_column(Text)
    decision_no: Mapped[str | None] = mapped_column(String(80))
    # 补正 after the formal submission: the latest request {comment, materials [{code,
    # comment}], due_date, requested_at} and how many rounds were handed in (`rounds`).
    correction: Mapped[dict[str, Any] | None]
    # The clock while suspended: {since, reason_code, reason, expected_days}; None: running.
    suspension: Mapped[dict[str, Any] | None]
    # Why the case closed without a licence: withdrawal, 不予受理 or 不予许可.
    closing_reason: Mapped[str | None] = mapped_column(Text)
    # Where the licence is on its way to the holder: none|ready_for_pickup|shipped|delivered.
    handover: Mapped[str] = mapped_column(String(20), default="none")
    handover_info: Mapped[dict[str, Any] | None]
    rating: Mapped[dict[str, Any] | None]
    rated_at: Mapped[datetime | None]
    rating_reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", lazy="raise", order_by="CaseEvent.id"
    )
    appointments: Mapped[list[Appointment]] = relationship(
        back_populates="case", lazy="raise", order_by="Appointment.id"
    )
    licence: Mapped[Licence | None] = relationship(back_populates="case", lazy="raise")


class CaseEvent(Base):
    """The case's history: every event received from or sent to the portal, once."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_id_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(4))  # "in" from the portal, "out" to it
    event_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64), default="portal")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    case: Mapped[BureauCase] = relationship(back_populates="events", lazy="raise")


class Appointment(Base):
    """A slot the applicant booked at a hall (on-site handling or licence pickup)."""

    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[str] = mapped_column(String(100), unique=True)
    purpose: Mapped[str] = mapped_column(String(10))
    hall: Mapped[dict[str, Any]] = mapped_column(default=dict)
    window: Mapped[str] = mapped_column(String(40), default="")
    date: Mapped[date]
    period: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(10), default="booked")  # booked|cancelled
    booked_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]

    case: Mapped[BureauCase] = relationship(back_populates="appointments", lazy="raise")


class Licence(Base):
    """An electronic licence the bureau issued; its PDF is a blob named by `sha256`."""

    __tablename__ = "licences"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), unique=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    holder_name: Mapped[str] = mapped_column(String(200))
    holder_id_display: Mapped[str] = mapped_column(String(40))
    item_name: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    decision_no: Mapped[str] = mapped_column(String(80))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100), default="application/pdf")
    sha256: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    case: Mapped[BureauCase] = relationship(back_populates="licence", lazy="raise")


class Consultation(Base):
    """A 12345 question or complaint forwarded by the portal, and the bureau's answer."""

    __tablename__ = "consultations"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[str] = mapped_column(String(100), unique=True)
    # The id exactly as the portal sent it (string or number), echoed in the answer.
    consultation_ref: Mapped[Any] = mapped_column(JSON)
    case_no: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    contact: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(64))


class ReceivedEvent(Base):
    """Every portal event processed, in arrival order: the idempotency record."""

    __tablename__ = "received_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    case_no: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxEvent(Base):
    """One callback to the portal: written in the transaction of the staff action."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_ordering_key_id", "ordering_key", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    case_no: Mapped[str | None] = mapped_column(String(32))
    # Events with the same key leave in id order (a case's events: its case_no).
    ordering_key: Mapped[str] = mapped_column(String(120))
    # The exact UTF-8 JSON bytes to send; signed as they are at each attempt.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|delivered|dead
    attempts: Mapped[int] = mapped_column(default=0)
    # Failures since the event was (re)queued: the exponent of the backoff.
    backoff_step: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The give-up clock starts here; a requeue restarts it.
    retry_since: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]


class StaffUser(Base):
    """A bureau clerk who signs in to the console or the staff API."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class Counter(Base):
    """Per-day sequences behind generated numbers (受理编号, 决定文号, 证照编号)."""

    __tablename__ = "counters"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
