"""JSON shapes of 我的证照 (citizen-api.md, "Licences")."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RenewalWindowOut(BaseModel):
    opens: date
    closes: date


class PendingOut(BaseModel):
    kind: Literal["renewal", "change", "cancellation", "reissue"]
    kind_label: str
    case_no: str


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
    actions: list[Literal["renewal", "change", "cancellation", "reissue"]] = Field(
        description="what can be applied for about the licence now"
    )
    pending: PendingOut | None = Field(
        default=None, description="an application about the licence filed and not yet decided"
    )
    download_url: str | None = Field(description="the electronic licence, once the portal holds it")


class LicenceListOut(BaseModel):
    licences: list[LicenceOut]


class LicenceIn(BaseModel):
    number: str = Field(max_length=200)
    item_code: str = Field(max_length=200)
    valid_from: str = Field(max_length=40)
    valid_to: str | None = Field(default=None, max_length=40)


KINDS: list[Any] = ["renewal", "change", "cancellation", "reissue"]  # JSON values, for the schema


def _kind_required(schema: dict) -> None:
    schema["required"] = ["kind"]
    schema["properties"]["kind"].pop("default", None)


class ApplicationIn(BaseModel):
    # Documented as required and one of KINDS, but judged by the service after the
    # licence is found to be the caller's: another account's number answers 404
    # whatever the body says (tests/test_idor.py), a bad kind of one's own 422.
    model_config = ConfigDict(json_schema_extra=_kind_required)

    kind: str = Field(
        default="",
        max_length=20,
        description="renewal 延续, change 变更, cancellation 注销, reissue 补办",
        json_schema_extra={"enum": KINDS},
    )
    on_behalf_of: str | None = Field(
        default=None,
        max_length=18,
        description="统一社会信用代码 of an enterprise the caller acts for as its agent "
        "(one of `GET /api/v1/me` `subjects`): the licence is that enterprise's",
    )
