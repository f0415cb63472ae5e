"""What the bureau may send: the envelope and each event type's data."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EnvelopeIn(_In):
    event_id: str = Field(min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=40)
    occurred_at: AwareDatetime
    case_no: str | None = Field(default=None, max_length=20)
    data: dict[str, Any] = Field(default_factory=dict)


class PassedIn(_In):
    comment: str | None = Field(default=None, max_length=2000)


class MaterialNoteIn(_In):
    code: str = Field(max_length=16)
    comment: str = Field(max_length=2000)


class ReturnedIn(_In):
    comment: str = Field(default="", max_length=2000)
    materials: list[MaterialNoteIn] = Field(default_factory=list, max_length=100)


class NoticeIn(_In):
    """A document (文书) an event may carry; fetched from the bureau like a licence."""

    name: str = Field(min_length=1, max_length=100)
    number: str = Field(min_length=1, max_length=100)
    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AcceptedIn(_In):
    acceptance_no: str = Field(min_length=1, max_length=64)
    due_date: date | None = None
    notice: NoticeIn | None = None


class RejectedIn(_In):
    reason: str = Field(min_length=1, max_length=2000)
    notice: NoticeIn | None = None


class InspectionIn(_In):
    date: date
    note: str | None = Field(default=None, max_length=2000)


class LicenceIn(_In):
    name: str = Field(min_length=1, max_length=100)
    number: str = Field(min_length=1, max_length=100)
    valid_from: date
    valid_to: date | None = None
    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ApprovedIn(_In):
    decision_no: str = Field(min_length=1, max_length=64)
    licence: LicenceIn | None = None  # v1.1: absent for a cancellation (注销) only
    notice: NoticeIn | None = None


class DeniedIn(_In):
    reason: str = Field(min_length=1, max_length=2000)
    remedy: str = Field(default="", max_length=2000)
    notice: NoticeIn | None = None


class PickupIn(_In):
    hall: str = Field(min_length=1, max_length=100)
    pickup_code: str = Field(min_length=1, max_length=32)


class ShippedIn(_In):
    carrier: str = Field(min_length=1, max_length=50)
    tracking_no: str = Field(min_length=1, max_length=64)


class DeliveredIn(_In):
    signed_at: AwareDatetime | date | None = None


class ReplyIn(_In):
    reply: str = Field(min_length=1, max_length=2000)


class CorrectionRequestedIn(_In):
    comment: str = Field(default="", max_length=2000)
    materials: list[MaterialNoteIn] = Field(min_length=1, max_length=100)
    due_date: date | None = None
    notice: NoticeIn | None = None


ClockReason = Literal[
    "hearing", "testing", "appraisal", "expert_review", "public_notice", "applicant", "other"
]


class ClockSuspendedIn(_In):
    reason_code: ClockReason
    reason: str = Field(min_length=1, max_length=2000)
    expected_days: int | None = Field(default=None, ge=0, le=3650)


class ClockResumedIn(_In):
    note: str | None = Field(default=None, max_length=2000)


class DeadlineExtendedIn(_In):
    due_date: date
    reason: str = Field(min_length=1, max_length=2000)
    notice: NoticeIn | None = None


class ConsultationAnsweredIn(_In):
    consultation_id: str = Field(min_length=1, max_length=64)
    answer: str = Field(min_length=1, max_length=4000)


class LicenceRevokedIn(_In):
    number: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    kind: Literal["revoked", "withdrawn", "cancelled"]


DATA_MODELS: dict[str, type[_In]] = {
    "prereview.passed": PassedIn,
    "prereview.returned": ReturnedIn,
    "case.accepted": AcceptedIn,
    "case.rejected": RejectedIn,
    "correction.requested": CorrectionRequestedIn,
    "clock.suspended": ClockSuspendedIn,
    "clock.resumed": ClockResumedIn,
    "deadline.extended": DeadlineExtendedIn,
    "inspection.scheduled": InspectionIn,
    "case.approved": ApprovedIn,
    "case.denied": DeniedIn,
    "licence.ready_for_pickup": PickupIn,
    "licence.shipped": ShippedIn,
    "licence.delivered": DeliveredIn,
    "rating.reply": ReplyIn,
    "consultation.answered": ConsultationAnsweredIn,
    "licence.revoked": LicenceRevokedIn,
}

__all__ = ["DATA_MODELS", "EnvelopeIn", "datetime"]
