"""Appointments API bodies and answers (docs/citizen-api.md, "Project additions")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class BookIn(BaseModel):
    purpose: Literal["visit", "pickup"]
    hall: str = Field(max_length=32, description="hall code from the catalogue")
    window: int = Field(ge=1, le=999)
    date: str = Field(max_length=10, description="YYYY-MM-DD, a working day")
    period: Literal["am", "pm"]


class HallRef(BaseModel):
    code: str
    name: str
    address: str


class AppointmentOut(BaseModel):
    appointment_id: str
    case_no: str | None
    purpose: Literal["visit", "pickup"]
    purpose_label: str
    hall: HallRef
    window: int
    window_name: str
    date: date
    provisional: bool = Field(description="the official calendar for that year is not out yet")
    period: Literal["am", "pm"]
    period_label: str
    status: Literal["booked", "cancelled"]
    booked_at: datetime
    cancelled_at: datetime | None
    cancellable: bool


class AppointmentListOut(BaseModel):
    appointments: list[AppointmentOut]


class DayOut(BaseModel):
    date: date
    provisional: bool


class WindowOut(BaseModel):
    hall: HallRef
    window: int
    name: str
    daily_capacity: int


class OptionsOut(BaseModel):
    purposes: list[Literal["visit", "pickup"]] = Field(description="what the case may book now")
    days: list[DayOut] = Field(description="bookable working days, tomorrow first")
    windows: dict[str, list[WindowOut]] = Field(description="purpose -> windows serving it")


class PeriodOut(BaseModel):
    period: Literal["am", "pm"]
    capacity: int
    left: int


class SlotsOut(BaseModel):
    hall: str
    window: int
    date: date
    provisional: bool
    periods: list[PeriodOut]
