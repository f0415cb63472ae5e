"""Accounts of citizens and enterprises, their login sessions, and throttling counters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

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
    # None once a verified owner took the number this account had only typed in
    # (identity.md: the verified owner is never blocked by it).
    id_number: Mapped[str | None] = mapped_column(String(18), unique=True)
    phone: Mapped[str] = mapped_column(String(11), unique=True)
    # None for an account made by 统一身份认证 sign-in, until the citizen sets a password.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # The 经办人 who acts for an enterprise (optional for persons).
    agent_name: Mapped[str | None] = mapped_column(String(50))
    agent_id_number: Mapped[str | None] = mapped_column(String(18))
    # When the phone was last proven with an SMS code (registration, code login, reset).
    phone_verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How the name and number were proven: "sso" (the identity platform) with its trust
    # level and when; all None while only typed in.
    verified_by: Mapped[str | None] = mapped_column(String(8))
    verified_level: Mapped[int | None]
    verified_at: Mapped[datetime | None]
    # The platform's `sub`: the next sign-in finds this account whatever else changed.
    sso_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Legal persons: the legal representative (法定代表人) the platform named (cn_legal_rep).
    legal_rep_name: Mapped[str | None] = mapped_column(String(50))
    # PIPL consent to the 个人信息处理规则 (portal/accounts/privacy.py): which version, when.
    privacy_version: Mapped[str | None] = mapped_column(String(16))
    privacy_consented_at: Mapped[datetime | None]
    # A closed account (注销) signs nobody in; its phone and number are released for a new
    # registration and kept here as the record of the submitted cases it keeps.
    closed_at: Mapped[datetime | None]
    closed_phone: Mapped[str | None] = mapped_column(String(11), index=True)
    closed_id_number: Mapped[str | None] = mapped_column(String(18))

    @property
    def trust_level(self) -> int:
        """identity.md: the platform's level when verified there, 1 for a proven phone."""
        if self.verified_by == "sso" and self.verified_level:
            return self.verified_level
        return 1 if self.phone_verified_at is not None else 0

    @property
    def verified(self) -> dict[str, object] | None:
        """{by, level, at} as the API and the bureau see it (bureau-protocol.md, "The
        applicant, as verified"): "sso" with the platform's level, "sms" (level 1) when
        only the phone was proven; None while nothing was."""
        if self.verified_by is not None and self.verified_at is not None:
            by, level, at = self.verified_by, self.verified_level, self.verified_at
        elif self.phone_verified_at is not None:
            by, level, at = "sms", 1, self.phone_verified_at
        else:
            return None
        return {"by": by, "level": level, "at": at.isoformat().replace("+00:00", "Z")}


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


class Authorisation(Base):
    """委托授权: a legal person lets a natural person (经办人) file for it (identity.md).

    `items` is None for every item, else a list of item codes; valid through
    `valid_to` (a date in China Standard Time) unless revoked earlier.
    """

    __tablename__ = "authorisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    items: Mapped[list[Any] | None]
    valid_to: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class KeptForm(Base):
    """What a page form held when its post met an expired login, or a 统一身份认证 sign-in
    waiting for consent (portal/accounts/kept_forms.py); short-lived, never a file."""

    __tablename__ = "kept_forms"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(8))  # "form" | "sso"
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
