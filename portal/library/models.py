"""Documents kept for an account: every file it uploaded and every licence issued to it."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base


class LibraryDocument(Base):
    """One file of an account's 材料库, kept once per content hash.

    Cases hold their own `CaseFile` rows naming the same blob, so deleting a
    document here never changes what a case was submitted with.
    """

    __tablename__ = "library_documents"
    __table_args__ = (UniqueConstraint("account_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    # The material type (`kind` in the catalogue) the document serves as.
    kind: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int]
    source: Mapped[str] = mapped_column(String(10))  # "upload" | "licence"
    case_no: Mapped[str | None] = mapped_column(String(20))  # where it came from
    licence_number: Mapped[str | None] = mapped_column(String(100))
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]  # None: no end known (or 长期)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
