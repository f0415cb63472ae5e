"""The outbox (messages waiting to leave) and the record of callbacks received."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class OutboxMessage(Base):
    """One message to deliver: written in the transaction of the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_key_id", "status", "ordering_key", "id"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # "bureau_event" (POST /v1/events), "licence_fetch" (GET /v1/blobs), "sms".
    kind: Mapped[str] = mapped_column(String(20))
    # Messages with the same key leave in id order (one case's events: its case_no).
    ordering_key: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(40))
    case_no: Mapped[str | None] = mapped_column(String(20), index=True)
    # The exact bytes to send (signed as they are), UTF-8 JSON.
    payload: Mapped[str] = mapped_column(Text)
    # Blobs to PUT to the bureau before the event that names them.
    blobs: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|delivered|dead
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]


class OutboxAttempt(Base):
    """One try at sending an outbox message: when, by whom, how it ended and how long it took.

    Like a webhook platform's delivery log: an operator sees every try of a parked
    message (`portal outbox show ID`), not only the last error.
    """

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    worker: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(12))  # delivered | retry | dead
    http_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]


class InboundEvent(Base):
    """Bureau event ids already processed: the idempotency record of callbacks."""

    __tablename__ = "inbound_events"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    case_no: Mapped[str | None] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
