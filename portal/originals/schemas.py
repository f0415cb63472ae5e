"""材料寄递 bodies: the citizen's choice (API) and the bureau's receipt (callback)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from portal.delivery.schemas import AddressIn
from portal.exchange.schemas import _In  # every bureau event's data model


class OriginalsIn(BaseModel):
    method: Literal["courier_pickup", "dropoff", "counter"] = Field(
        description="courier_pickup 上门取件, dropoff 自行投递到网点, counter 窗口递交"
    )
    carrier: str | None = Field(
        default=None, max_length=10, description="courier_pickup/dropoff: EMS, CNPOST, SF or JD"
    )
    tracking_no: str | None = Field(
        default=None, max_length=40, description="the waybill number, in the carrier's format"
    )
    hall: str | None = Field(default=None, max_length=32, description="counter: a hall code")
    address: AddressIn | None = Field(
        default=None, description="courier_pickup: where the courier collects"
    )


class ReceivedIn(_In):
    """`originals.received` data (docs/bureau-protocol.md, 材料寄递); extra fields ignored."""

    received_at: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=500)


class OriginalMaterialOut(BaseModel):
    code: str
    name: str


class OriginalsOut(BaseModel):
    needed: list[OriginalMaterialOut] = Field(description="materials whose original is checked")
    method: Literal["courier_pickup", "dropoff", "counter"] | None = Field(
        description="null before the applicant chose, or when the bureau signed unannounced"
    )
    carrier: str | None
    carrier_name: str | None
    tracking_no: str | None
    tracking_url: str | None = Field(description="the carrier's public query page")
    hall: str | None
    address: dict[str, str | None] | None
    posted_at: datetime | None
    received_at: datetime | None
    received_note: str | None
