"""JSON shapes of 我的证照 (citizen-api.md, "Licences")."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class RenewalWindowOut(BaseModel):
    opens: date
    closes: date


class LicenceOut(BaseModel):
    number: str
    name: str
    item_code: str
    item_name: str
    case_no: str | None
    valid_from: date | None
    valid_to: date | None
    status: Literal["valid", "expiring", "expired", "cancelled", "revoked"]
    status_label: str
    renewal_window: RenewalWindowOut | None = Field(
        description="when a renewal (延续) may be applied for, for items that offer one"
    )
    ended_reason: str | None
    source: Literal["portal", "registered"]
    actions: list[Literal["renewal", "change", "cancellation", "reissue"]]
    download_url: str | None = Field(description="the electronic licence, once the portal holds it")


class LicenceListOut(BaseModel):
    licences: list[LicenceOut]


class LicenceIn(BaseModel):
    number: str = Field(max_length=200)
    item_code: str = Field(max_length=200)
    valid_from: str = Field(max_length=40)
    valid_to: str | None = Field(default=None, max_length=40)
