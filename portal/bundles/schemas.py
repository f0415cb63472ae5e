"""Bundles API bodies and answers (docs/citizen-api.md, "Project additions")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field


class Measure(BaseModel):
    separate: int = Field(description="applying item by item")
    bundled: int = Field(description="applying for the bundle")


class SavingsOut(BaseModel):
    steps: Measure = Field(description="Σ steps of the items vs distinct step names")
    materials: Measure = Field(
        description="Σ required materials vs distinct required kinds not issued inside the bundle"
    )
    days: Measure = Field(description="Σ promised working days vs the longest parallel chain")


class BundleOut(BaseModel):
    code: str
    name: str
    description: str
    items: list[str] = Field(description="item codes, in the bundle's order")
    savings: SavingsOut


class BundleListOut(BaseModel):
    bundles: list[BundleOut]


class BundleStartIn(BaseModel):
    form: dict[str, Any] = Field(
        default_factory=dict, description="shared answers, field name -> value; may be partial"
    )


class BundleFormIn(BaseModel):
    form: dict[str, Any]


class LibraryPickIn(BaseModel):
    document_id: int = Field(ge=1, le=2**31 - 1)


class BundleCommitmentIn(BaseModel):
    deferred_materials: list[str] = Field(
        default_factory=list, max_length=50, description="material kinds handed in later (容缺)"
    )
    accepted: bool = False


class BundleGaozhiIn(BaseModel):
    items: list[str] = Field(default_factory=list, max_length=20)
    accepted: bool = False


class BundleSubmissionIn(BaseModel):
    commitment: BundleCommitmentIn | None = None
    gaozhi: BundleGaozhiIn | None = None


class FieldUseOut(BaseModel):
    name: str
    label: str
    type: str
    required: bool
    used_by: list[str] = Field(description="names of the items that ask for this field")
    # The union of the items' rules: the tightest bounds any of them sets.
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None


class GroupFileOut(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str


class MaterialGroupOut(BaseModel):
    kind: str
    name: str
    required: bool
    deferrable: bool
    items: list[str]
    provided_by: str | None = Field(description="item code issuing it inside the bundle")
    files: list[GroupFileOut]


class LinkedCaseOut(BaseModel):
    case_no: str
    item_code: str
    item_name: str
    status: str
    status_label: str
    due_date: date | None


class ProgressOut(BaseModel):
    total: int
    finished: int
    approved: int


class BundleRefOut(BaseModel):
    code: str
    name: str


class ApplicationOut(BaseModel):
    id: int
    bundle: BundleRefOut
    status: str = Field(description="draft | submitted")
    created_at: datetime
    submitted_at: datetime | None
    form: dict[str, Any]
    fields: list[FieldUseOut]
    materials: list[MaterialGroupOut]
    cases: list[LinkedCaseOut]
    progress: ProgressOut


class ApplicationListOut(BaseModel):
    applications: list[ApplicationOut]


class GroupUploadOut(BaseModel):
    sha256: str
    filename: str
    content_type: str
    size: int
    cases: list[str] = Field(description="case numbers the file was attached to")
