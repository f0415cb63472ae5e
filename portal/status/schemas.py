"""Public status lookup answer (docs/citizen-api.md, project addition: GET /status)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class PublicTimelineOut(BaseModel):
    at: datetime
    type: str
    label: str


class PublicStatusOut(BaseModel):
    case_no: str
    item_name: str
    status: str
    status_label: str
    due_date: date | None
    due_date_provisional: bool = False
    timeline: list[PublicTimelineOut] = Field(description="newest first; labels only, no details")
