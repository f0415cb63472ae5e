"""Library API answers (docs/citizen-api.md, "Project additions")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class DocumentOut(BaseModel):
    id: int
    kind: str = Field(description="the catalogue's material kind the document serves as")
    title: str
    filename: str
    content_type: str
    size: int
    sha256: str
    source: Literal["upload", "licence"]
    case_no: str | None = Field(description="the case it was uploaded to or issued on")
    licence_number: str | None
    valid_from: date | None
    valid_to: date | None
    expired: bool
    created_at: datetime


class DocumentListOut(BaseModel):
    documents: list[DocumentOut]


class PickIn(BaseModel):
    document_id: int = Field(ge=1, le=2**31 - 1)


class ValidityIn(BaseModel):
    valid_to: str = Field(default="", max_length=10, description="YYYY-MM-DD, or empty: no end")
