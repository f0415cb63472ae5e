"""Accounts API bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class AgentIn(BaseModel):
    name: str = Field(max_length=50)
    id_number: str = Field(max_length=32)


class AccountIn(BaseModel):
    kind: Literal["person", "enterprise"]
    name: str = Field(max_length=200)
    id_number: str = Field(max_length=32)
    phone: str = Field(max_length=32)
    password: str = Field(max_length=256)
    agent: AgentIn | None = Field(default=None, description="经办人 acting for an enterprise")
    code: str | None = Field(
        default=None,
        max_length=16,
        description="the `register` SMS code (POST /api/v1/verifications); required unless "
        "the deployment turned PORTAL_REGISTER_NEEDS_CODE off",
    )
    privacy_consent: bool | None = Field(
        default=None,
        description="true when the app showed the 个人信息处理规则 (GET /privacy) and the "
        "citizen agreed; recorded with its version and time",
    )


class AccountCreatedOut(BaseModel):
    account_id: int


class TokenIn(BaseModel):
    phone: str = Field(max_length=32)
    password: str | None = Field(default=None, max_length=256)
    code: str | None = Field(
        default=None, max_length=16, description="a `login` SMS code, instead of the password"
    )


class TokenOut(BaseModel):
    token: str
    expires_at: datetime


class VerifiedOut(BaseModel):
    by: str = Field(description='"sso": the identity platform')
    level: int = Field(description="the platform's trust level (identity.md)")
    at: datetime


class SubjectOut(BaseModel):
    kind: str
    name: str
    id_number: str = Field(description="masked")
    authorisation_id: int | None = None


class MeOut(BaseModel):
    account_id: int
    kind: str
    name: str
    id_number: str = Field(description="masked; empty once a verified owner took it")
    phone: str = Field(description="masked")
    verified: VerifiedOut | None
    subjects: list[SubjectOut]


class AuthorisationIn(BaseModel):
    agent_phone: str = Field(max_length=20)
    items: str | list[str] = Field(description='"all", or item codes')
    valid_to: str = Field(max_length=10, description="YYYY-MM-DD, China Standard Time")


class AgentOut(BaseModel):
    name: str
    phone: str = Field(description="masked")


class EnterpriseOut(BaseModel):
    name: str
    id_number: str = Field(description="masked")


class AuthorisationOut(BaseModel):
    id: int
    agent: AgentOut
    enterprise: EnterpriseOut
    items: str | list[str]
    valid_to: str
    revoked_at: str | None
    valid: bool


class AuthorisationListOut(BaseModel):
    authorisations: list[AuthorisationOut]
