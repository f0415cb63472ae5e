"""12345 API bodies and answers (docs/citizen-api.md, "Project additions")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class ContactIn(BaseModel):
    name: str = Field(default="", max_length=50)
    phone: str = Field(default="", max_length=20)


class ConsultationIn(BaseModel):
    kind: Literal["consult", "complaint"]
    subject: str = Field(max_length=200)
    body: str = Field(max_length=5000)
    case_no: str = Field(
        default="", max_length=20, description="one of the caller's cases, or empty"
    )
    contact: ContactIn | None = Field(
        default=None,
        description="defaults to the account's; required without a bearer token",
    )
    code: str = Field(
        default="",
        max_length=16,
        description="without a bearer token: the `consultation` SMS code of `contact.phone`",
    )


class ConsultationLookupIn(BaseModel):
    phone: str = Field(max_length=20, description="the contact phone given on submission")
    reference: str = Field(max_length=20, description="the reference, ZX + 12 digits")
    code: str = Field(max_length=16, description="a `consultation` SMS code of that phone")


class ContactOut(BaseModel):
    name: str
    phone: str


class ConsultationOut(BaseModel):
    consultation_id: str
    reference: str | None = Field(description="the number given to the citizen (ZX…)")
    kind: Literal["consult", "complaint"]
    kind_label: str
    subject: str
    body: str
    case_no: str | None
    contact: ContactOut
    created_at: datetime
    due_date: date = Field(description="answer due by (1 working day for 咨询, 5 for 投诉)")
    due_provisional: bool
    days_left: int | None
    answer: str | None
    answered_at: datetime | None
    answered_on_time: bool | None


class ConsultationListOut(BaseModel):
    consultations: list[ConsultationOut]
