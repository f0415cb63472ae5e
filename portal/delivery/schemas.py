"""Delivery API bodies and answers (docs/citizen-api.md, "Cases": PUT …/delivery)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class AddressIn(BaseModel):
    recipient: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=20, description="mainland mobile, 11 digits")
    province: str = Field(
        default="", max_length=50, description="name (江苏省) or GB/T 2260 code (320000)"
    )
    city: str = Field(
        default="",
        max_length=50,
        description="name or code; 市辖区 / 县 for a municipality, 省直辖县级行政区划 where GB/T 2260 has it",
    )
    district: str = Field(default="", max_length=50, description="name or code")
    detail: str = Field(default="", max_length=500)
    postcode: str | None = Field(default=None, max_length=20)


class DeliveryIn(BaseModel):
    method: Literal["pickup", "express"]
    hall: str | None = Field(
        default=None, max_length=32, description="pickup: a hall code of the item"
    )
    address: AddressIn | None = Field(
        default=None, description="express: where to post the licence"
    )


class DivisionOut(BaseModel):
    code: str
    name: str


class DivisionListOut(BaseModel):
    code: str | None = Field(description="the parent's code; null for the list of provinces")
    name: str | None
    divisions: list[DivisionOut]


class SavedAddressOut(BaseModel):
    id: int
    recipient: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    postcode: str | None
    last_used_at: datetime


class AddressBookOut(BaseModel):
    addresses: list[SavedAddressOut] = Field(description="most recently used first (up to 5)")
