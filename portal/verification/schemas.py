"""Verification API bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field


class VerificationIn(BaseModel):
    phone: str = Field(max_length=32)
    purpose: str = Field(
        max_length=16, description="`register`, `login`, `reset` or `consultation`"
    )


class VerificationOut(BaseModel):
    expires_in: int = Field(description="seconds the code is valid")
    resend_after: int = Field(description="seconds before another code may be asked for")


class PasswordResetIn(BaseModel):
    phone: str = Field(max_length=32)
    code: str = Field(max_length=16, description="a `reset` SMS code")
    password: str = Field(max_length=256)
