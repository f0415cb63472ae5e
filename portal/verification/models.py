"""One-time codes sent by SMS; only their keyed hash is kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.db import Base

# "consultation" proves the contact phone of a 12345 question sent without an account
# (and finds it again later): portal/consultations.
PURPOSES = {"register": "注册", "login": "登录", "reset": "重置密码", "consultation": "咨询投诉"}


class SmsCode(Base):
    """A 6-digit code for one phone and one purpose, valid 5 minutes, 5 wrong tries."""

    __tablename__ = "sms_codes"
    __table_args__ = (
        Index("ix_sms_codes_phone_purpose", "phone", "purpose"),
        Index("ix_sms_codes_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(11))
    purpose: Mapped[str] = mapped_column(String(16))  # a key of PURPOSES
    code_hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256, hex
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    tries: Mapped[int] = mapped_column(default=0)  # wrong ones
    used_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]  # 5 wrong tries, or replaced by a newer code
