"""Cases API bodies and answers (docs/citizen-api.md, "Cases")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from portal.originals.schemas import OriginalsOut


class CaseCreateIn(BaseModel):
    item_code: str = Field(max_length=16)
    form: dict[str, Any] = Field(
        default_factory=dict, description="field name -> value; may be partial"
    )
    on_behalf_of: str | None = Field(
        default=None,
        max_length=18,
        description="a USCC of the caller's `subjects` (GET /api/v1/me): file for that enterprise",
    )


class CasePatchIn(BaseModel):
    form: dict[str, Any]


class CommitmentIn(BaseModel):
    kind: Literal["rongque", "gaozhi"] = Field(
        default="rongque",
        description="rongque 容缺受理 (deferred_materials handed in later); gaozhi 告知承诺制 "
        "(the promise replaces the proofs; no pre-review needed)",
    )
    deferred_materials: list[str] = Field(default_factory=list, max_length=50)
    accepted: bool = False


class SubmissionIn(BaseModel):
    commitment: CommitmentIn | None = None


class WithdrawalIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class TimelineOut(BaseModel):
    at: datetime
    type: str
    label: str
    detail: str


class FileOut(BaseModel):
    id: int
    filename: str
    content_type: Literal["application/pdf", "image/jpeg", "image/png"]
    size: int
    sha256: str


class MaterialStateOut(BaseModel):
    code: str
    name: str
    required: bool
    deferrable: bool
    deferred_until: str | None = Field(description="容缺: date the material is promised by")
    supplemented_at: str | None = Field(
        default=None, description="容缺: when the material was handed in (补交)"
    )
    provided_by: dict[str, Any] | None = Field(
        default=None,
        description="issued by another case of the same 一件事 ({case_no, item_code, licence}); "
        "no upload needed",
    )
    comment: str | None = Field(description="补正 note of the latest return")
    files: list[FileOut]


class AddressOut(BaseModel):
    recipient: str | None
    phone: str | None
    province: str | None
    city: str | None
    district: str | None
    detail: str | None
    postcode: str | None = None


class DeliveryOut(BaseModel):
    method: Literal["pickup", "express"]
    hall: str | None = None
    address: AddressOut | None = None
    carrier: str | None
    tracking_no: str | None
    tracking_url: str | None = Field(
        default=None, description="the carrier's public query page, for a carrier the portal knows"
    )
    pickup_code: str | None
    shipped_at: datetime | None
    ready_at: datetime | None
    delivered_at: datetime | None


class LicenceOut(BaseModel):
    number: str | None
    name: str | None
    valid_from: str | None
    valid_to: str | None
    download_url: str | None = Field(
        description="null until the file has been fetched from the bureau"
    )


class RatingOut(BaseModel):
    level: int
    code: int
    comment: str
    created_at: datetime
    reply: str | None


class DeferredOut(BaseModel):
    code: str
    due_date: str
    due_date_provisional: bool = Field(
        description="computed before the year's holiday notice was out (预计); recomputed when it is loaded"
    )
    supplemented_at: str | None


class CommitmentOut(BaseModel):
    kind: Literal["rongque", "gaozhi"]
    text: str
    signed_at: str
    deferred_materials: list[DeferredOut]
    replaced_materials: list[str] = Field(description="告知承诺: the proofs the promise replaced")


class CorrectionNoteOut(BaseModel):
    code: str
    comment: str


class CorrectionOut(BaseModel):
    requested_at: str = Field(description="when the bureau asked (RFC 3339)")
    due_date: str | None = Field(description="by when the applicant should hand in")
    comment: str
    materials: list[CorrectionNoteOut] = Field(description="only these materials may change")
    ask_by: str | None = Field(
        description="the last day the bureau had to ask (5th working day after submission)"
    )
    late: bool = Field(
        description="asked after ask_by: by §32 the application counted as accepted from receipt"
    )


class ClockOut(BaseModel):
    running: bool
    suspended_since: str | None
    reason_code: (
        Literal[
            "hearing",
            "testing",
            "appraisal",
            "expert_review",
            "public_notice",
            "applicant",
            "other",
        ]
        | None
    )
    reason: str | None
    expected_days: int | None = Field(description="working days the bureau expects it to last")


class DocumentOut(BaseModel):
    name: str = Field(description="e.g. 受理通知书")
    number: str = Field(description="文号, e.g. 武审受〔2026〕17号")
    at: str = Field(description="when the bureau issued it (RFC 3339)")
    download_url: str | None = Field(description="null until the file has been fetched")


class BundleRefOut(BaseModel):
    application_id: int
    code: str
    name: str
    cases: list[str]


class ApplicationLicenceOut(BaseModel):
    number: str
    name: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None


class ApplicationOut(BaseModel):
    kind: Literal["renewal", "change", "cancellation", "reissue"]
    kind_label: str
    licence: ApplicationLicenceOut


class CaseOut(BaseModel):
    case_no: str
    item_code: str
    item_name: str = Field(description="the item as applied for, e.g. 食品经营许可（延续）")
    application: ApplicationOut | None = Field(
        default=None, description="延续/变更/注销/补办 of a licence the caller holds; null: new"
    )
    status: Literal[
        "draft",
        "prereview",
        "returned",
        "prereview_passed",
        "submitted",
        "correction_required",
        "accepted",
        "approved",
        "denied",
        "rejected",
        "withdrawn",
    ]
    status_label: str
    created_at: datetime
    submitted_at: datetime | None
    due_date: date | None
    due_date_provisional: bool = Field(
        description="the portal computed due_date before that year's holiday notice was out (预计)"
    )
    acceptance_no: str | None
    form: dict[str, Any]
    timeline: list[TimelineOut] = Field(description="newest first")
    materials: list[MaterialStateOut]
    review_comment: str | None
    inspection_date: date | None
    correction: CorrectionOut | None = Field(
        default=None, description="the one-time notice (一次性告知) while correction_required"
    )
    clock: ClockOut | None = Field(default=None, description="null before acceptance")
    documents: list[DocumentOut] = Field(
        default_factory=list, description="documents (文书) the bureau issued, oldest first"
    )
    outcome_reason: str | None
    remedy: str | None
    delivery: DeliveryOut | None
    originals: OriginalsOut | None = Field(
        default=None, description="材料寄递: null for an item whose originals are not checked"
    )
    licence: LicenceOut | None
    rating: RatingOut | None
    commitment: CommitmentOut | None = None
    bundle: BundleRefOut | None = None


class CaseListOut(BaseModel):
    cases: list[CaseOut]
