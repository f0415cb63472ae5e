"""Accounts of citizens and enterprises, their login sessions, and throttling counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "person" | "enterprise"
    name: Mapped[str] = mapped_column(String(100))
    id_type: Mapped[str] = mapped_column(String(8))  # "RIC" | "USCC"
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    phone: Mapped[str] = mapped_column(String(11), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    # The 经办人 who acts for an enterprise (optional for persons).
    agent_name: Mapped[str | None] = mapped_column(String(50))
    agent_id_number: Mapped[str | None] = mapped_column(String(18))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """A server-side record of a browser login, so logout and timeouts really end it."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class ThrottleBucket(Base):
    """Failure counters shared by every process: login, status lookups."""

    __tablename__ = "throttle_buckets"
    __table_args__ = (Index("ix_throttle_buckets_blocked_until", "blocked_until"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime]
    failures: Mapped[int] = mapped_column(default=0)
    blocked_until: Mapped[datetime | None]
