"""Licences over their life (我的证照): issued through the portal or registered by their holder."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class Licence(Base):
    """One licence its holder can see, renew, change, cancel or have reissued."""

    __tablename__ = "licences"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The number printed on the licence; one holder at a time (a second registration is 409).
    number: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    item_code: Mapped[str] = mapped_column(ForeignKey("items.code"), index=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # The case it was issued on, when issued through the portal.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(12))  # "portal" | "registered"
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]  # None: no end (长期有效) or not known
    # "active" | "cancelled" (注销, by the holder's application) | "revoked" (licence.revoked)
    # | "replaced" (by a renewal's or change's new licence)
    state: Mapped[str] = mapped_column(String(12), default="active")
    ended_reason: Mapped[str | None] = mapped_column(Text)
    ended_kind: Mapped[str | None] = mapped_column(String(12))  # revoked | withdrawn | cancelled
    ended_at: Mapped[datetime | None]
    sha256: Mapped[str | None] = mapped_column(String(64))  # the electronic licence, once held
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LicenceReminder(Base):
    """A reminder sent, at most once per licence and kind, whatever restarts or workers."""

    __tablename__ = "licence_reminders"

    licence_id: Mapped[int] = mapped_column(
        ForeignKey("licences.id", ondelete="CASCADE"), primary_key=True
    )
    # "window" (the renewal window opens), "30_days" (30 days before expiry), "expired"
    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
