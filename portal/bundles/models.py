"""A citizen's application for a bundle: the linked draft cases share one form and checklist."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base

# The application's own status, apart from its cases' (each has its own, portal.cases.states):
# a draft until the one submission, submitted afterwards, withdrawn once deleted.
DRAFT, SUBMITTED, WITHDRAWN = "draft", "submitted", "withdrawn"


class BundleApplication(Base):
    """One 一件事 application; its cases point here (`Case.bundle_application_id`)."""

    __tablename__ = "bundle_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    bundle_code: Mapped[str] = mapped_column(ForeignKey("bundles.code"))
    status: Mapped[str] = mapped_column(String(12), default=DRAFT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
