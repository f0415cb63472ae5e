"""Cases (办件) and their timelines."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Account
from portal.catalogue.models import Item
from portal.clock import utcnow
from portal.db import Base


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str] = mapped_column(String(20), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    # Filed by an agent (account_id) for an enterprise under an authorisation: the
    # enterprise is the applicant and sees the case too (identity.md, 委托授权).
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    authorisation_id: Mapped[int | None] = mapped_column(ForeignKey("authorisations.id"))
    item_code: Mapped[str] = mapped_column(ForeignKey("items.code"), index=True)
    # What is applied for (bureau-protocol.md, "Licences over their life"): "new", or
    # "renewal" (延续) / "change" (变更) / "cancellation" (注销) / "reissue" (补办) of the
    # licence numbered `licence_number`, one its applicant holds (portal.licences).
    application_kind: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    licence_number: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True, default="draft")
    form: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prereview_round: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Last time the citizen or the bureau touched the case (retention of drafts).
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    submitted_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    due_date: Mapped[date | None]
    due_date_provisional: Mapped[bool] = mapped_column(default=False)
    # How the portal computed due_date itself, {"start": "YYYY-MM-DD", "days": n}, so a
    # calendar loaded later can recompute it; None when the bureau sent the due date.
    due_basis: Mapped[dict[str, Any] | None]
    acceptance_no: Mapped[str | None] = mapped_column(String(64))
    decision_no: Mapped[str | None] = mapped_column(String(64))
    inspection_date: Mapped[date | None]
    inspection_note: Mapped[str | None] = mapped_column(Text)
    review_comment: Mapped[str | None] = mapped_column(Text)
    # 补正 notes of the latest return, material code -> comment.
    corrections: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # 补正 after the formal submission (§32): the latest request, {requested_at (the
    # bureau's), received_at (ours), due_date, comment, names {code: name}, kept [file ids
    # already there], ask_by (5th working day after submission), late}; the rounds handed in.
    correction: Mapped[dict[str, Any] | None]
    correction_round: Mapped[int] = mapped_column(default=0, server_default="0")
    # The clock while suspended (§45): {since (RFC 3339), reason_code, reason, expected_days,
    # left (working days left on the day it stopped)}; None while it runs.
    suspension: Mapped[dict[str, Any] | None]
    # Documents (文书) the bureau issued: [{name, number, filename, content_type, sha256,
    # at, event, stored}]; the file is fetched by the dispatcher like a licence.
    documents: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    remedy: Mapped[str | None] = mapped_column(Text)
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    # {kind, text, signed_at, deferred_materials: [{code, due_date}]} for 容缺 / 告知承诺.
    commitment: Mapped[dict[str, Any] | None]
    # {name, number, valid_from, valid_to, filename, content_type, sha256, stored}.
    licence: Mapped[dict[str, Any] | None]
    # Materials another case of the same 一件事 produces (e.g. its 营业执照), shared inside
    # the bureau instead of uploaded: code -> {case_no, item_code, licence}.
    provided_materials: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The 一件事 application this case was filed in, if any (portal.bundles).
    bundle_application_id: Mapped[int | None] = mapped_column(
        ForeignKey("bundle_applications.id", ondelete="SET NULL"), index=True
    )

    account: Mapped[Account] = relationship(foreign_keys=[account_id], lazy="raise")
    item: Mapped[Item] = relationship(lazy="raise")


class TimelineEntry(Base):
    __tablename__ = "timeline_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16))  # "citizen" | "bureau" | "portal"
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CaseCounter(Base):
    """Per-day sequence behind case numbers (WJ + YYYYMMDD + 6 digits)."""

    __tablename__ = "case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(default=0)
