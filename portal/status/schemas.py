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
    timeline: list[PublicTimelineOut] = Field(description="newest first; labels only, no details")
