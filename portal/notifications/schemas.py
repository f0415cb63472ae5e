"""Message centre API answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class MessageOut(BaseModel):
    id: int
    type: str = Field(description="the event it reports, e.g. case.accepted, rating.reminder")
    title: str
    body: str
    link: str = Field(description="page of the portal it concerns")
    created_at: datetime
    read_at: datetime | None


class MessageListOut(BaseModel):
    unread: int
    messages: list[MessageOut] = Field(description="newest first, at most 200")
