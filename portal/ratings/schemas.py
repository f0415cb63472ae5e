"""Rating API body (docs/citizen-api.md, "Cases": POST …/rating)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RatingIn(BaseModel):
    level: int = Field(
        ge=1, le=5, description="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意"
    )
    comment: str = Field(default="", max_length=2000, description="required for level 1 and 2")
    tags: list[str] = Field(default_factory=list, max_length=10, description="quick tags")
