"""The bureau-side case status machine: one table, and the one function every change goes through.

Statuses mirror the portal's (docs/bureau-protocol.md), so an event the bureau accepts here
is one the portal also accepts in its own transition table, and vice versa: the bureau never
sends a callback the portal would answer with 409, and answers 409 itself to a portal event
that does not fit, so nothing changes on either side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from bureau import originals, outbox
from bureau.clock import utcnow
from bureau.errors import Conflict
from bureau.models import BureauCase, CaseEvent


class Status(StrEnum):
    NEW = "new"  # not a stored status: the case is not known yet
    PREREVIEW = "prereview"
    RETURNED = "returned"
    PREREVIEW_PASSED = "prereview_passed"
    SUBMITTED = "submitted"
    CORRECTION_REQUIRED = "correction_required"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"


STATUS_LABELS: dict[str, str] = {
    Status.NEW: "未收到",
    Status.PREREVIEW: "待预审",
    Status.RETURNED: "已退回补正",
    Status.PREREVIEW_PASSED: "预审通过",
    Status.SUBMITTED: "待受理",
    Status.CORRECTION_REQUIRED: "待申请人补正",
    Status.ACCEPTED: "已受理",
    Status.REJECTED: "不予受理",
    Status.APPROVED: "准予许可",
    Status.DENIED: "不予许可",
    Status.WITHDRAWN: "已撤回",
}

# Queue order of the console's status tabs: work waiting for staff first.
QUEUE_ORDER: tuple[Status, ...] = (
    Status.PREREVIEW,
    Status.SUBMITTED,
    Status.ACCEPTED,
    Status.APPROVED,
    Status.RETURNED,
    Status.CORRECTION_REQUIRED,
    Status.PREREVIEW_PASSED,
    Status.REJECTED,
    Status.DENIED,
    Status.WITHDRAWN,
)

FINISHED: frozenset[str] = frozenset(
    {Status.APPROVED, Status.DENIED, Status.REJECTED, Status.WITHDRAWN}
)
_STORED: frozenset[str] = frozenset(s for s in Status if s is not Status.NEW)

HANDOVER_LABELS: dict[str, str] = {
    "none": "未发出",
    "ready_for_pickup": "待领取",
    "shipped": "已寄出",
    "delivered": "已送达",
}

EVENT_LABELS: dict[str, str] = {
    "case.submitted": "提交申请",
    "case.submitted:prereview": "提交预审",
    "case.submitted:formal": "正式提交申请",
    "case.withdrawn": "撤回申请",
    "delivery.selected": "选择送达方式",
    "rating.submitted": "评价",
    "materials.supplemented": "补交材料",
    "case.corrected": "提交补正材料",
    "correction.requested": "通知补正",
    "clock.suspended": "暂停计时",
    "clock.resumed": "恢复计时",
    "deadline.extended": "延长办理期限",
    "appointment.booked": "预约",
    "appointment.cancelled": "取消预约",
    "consultation.submitted": "咨询投诉",
    "prereview.passed": "预审通过",
    "prereview.returned": "退回补正",
    "case.accepted": "受理",
    "case.rejected": "不予受理",
    "inspection.scheduled": "安排现场核查",
    "case.approved": "准予许可",
    "case.denied": "不予许可",
    "licence.ready_for_pickup": "通知领取证照",
    "licence.shipped": "寄出证照",
    "licence.delivered": "证照送达",
    "rating.reply": "回复评价",
    "consultation.answered": "答复咨询投诉",
    "originals.posted": "原件寄递信息",
    "originals.received": "原件已签收",
}

Guard = Callable[[BureauCase], str | None]


def _delivery_changeable(case: BureauCase) -> str | None:
    if case.handover in ("shipped", "delivered"):
        return "证照已寄出或已领取，不能再更改送达方式。"
    return None


def _not_rated(case: BureauCase) -> str | None:
    return "该办件已经评价过。" if case.rating else None


def _licence_not_delivered(case: BureauCase) -> str | None:
    return "证照已经送达，不能再发出。" if case.handover == "delivered" else None


def _licence_on_its_way(case: BureauCase) -> str | None:
    if case.handover not in ("ready_for_pickup", "shipped"):
        return "证照尚未寄出或通知领取，不能登记送达。"
    return None


def _rated_not_replied(case: BureauCase) -> str | None:
    if not case.rating:
        return "该办件尚未评价，无需回复。"
    if case.rating_reply:
        return "该评价已经回复过。"
    return None


def _clock_running(case: BureauCase) -> str | None:
    return "办理时限已经暂停计算，不能再次暂停。" if case.suspension else None


def _clock_suspended(case: BureauCase) -> str | None:
    return None if case.suspension else "办理时限正在计算，无需恢复。"


CLOCK_REASONS: dict[str, str] = {
    "hearing": "听证",
    "testing": "检验、检测、检疫",
    "appraisal": "鉴定",
    "expert_review": "专家评审",
    "public_notice": "公示",
    "applicant": "等待申请人整改、补充",
    "other": "其他",
}


@dataclass(frozen=True)
class Rule:
    """Where an event fits: the statuses it is accepted in, the status after, and a guard."""

    direction: str  # "in": portal -> bureau; "out": bureau -> portal
    sources: frozenset[str]
    target: str | None = None  # None: the status does not change
    guard: Guard | None = None


def _s(*statuses: Status) -> frozenset[str]:
    return frozenset(statuses)


S = Status
TRANSITIONS: dict[str, Rule] = {
    # Portal -> bureau. A case.submitted is keyed by its stage.
    "case.submitted:prereview": Rule("in", _s(S.NEW, S.RETURNED), S.PREREVIEW),
    "case.submitted:formal": Rule("in", _s(S.NEW, S.PREREVIEW_PASSED), S.SUBMITTED),
    "case.withdrawn": Rule(
        "in",
        _s(S.PREREVIEW, S.RETURNED, S.PREREVIEW_PASSED, S.SUBMITTED, S.CORRECTION_REQUIRED),
        S.WITHDRAWN,
    ),
    "case.corrected": Rule("in", _s(S.CORRECTION_REQUIRED), S.SUBMITTED),
    "delivery.selected": Rule("in", _STORED, None, _delivery_changeable),
    "rating.submitted": Rule("in", FINISHED, None, _not_rated),
    "materials.supplemented": Rule("in", _s(S.SUBMITTED, S.ACCEPTED, S.APPROVED)),
    "appointment.booked": Rule("in", _STORED - _s(S.WITHDRAWN, S.REJECTED, S.DENIED)),
    "appointment.cancelled": Rule("in", _STORED),
    # 材料寄递, as the portal's table has it: after the formal submission, until signed for.
    "originals.posted": Rule(
        "in", _s(S.SUBMITTED, S.CORRECTION_REQUIRED, S.ACCEPTED), None, originals.not_received
    ),
    # Bureau -> portal: the staff's actions, as in the portal's transition table.
    "prereview.passed": Rule("out", _s(S.PREREVIEW), S.PREREVIEW_PASSED),
    "prereview.returned": Rule("out", _s(S.PREREVIEW), S.RETURNED),
    "case.accepted": Rule("out", _s(S.SUBMITTED), S.ACCEPTED),
    "case.rejected": Rule("out", _s(S.SUBMITTED), S.REJECTED),
    "correction.requested": Rule("out", _s(S.SUBMITTED), S.CORRECTION_REQUIRED),
    "clock.suspended": Rule("out", _s(S.ACCEPTED), None, _clock_running),
    "clock.resumed": Rule("out", _s(S.ACCEPTED), None, _clock_suspended),
    "deadline.extended": Rule("out", _s(S.ACCEPTED)),
    "inspection.scheduled": Rule("out", _s(S.ACCEPTED)),
    "case.approved": Rule("out", _s(S.ACCEPTED), S.APPROVED),
    "case.denied": Rule("out", _s(S.ACCEPTED), S.DENIED),
    "licence.ready_for_pickup": Rule("out", _s(S.APPROVED), None, _licence_not_delivered),
    "licence.shipped": Rule("out", _s(S.APPROVED), None, _licence_not_delivered),
    "licence.delivered": Rule("out", _s(S.APPROVED), None, _licence_on_its_way),
    "rating.reply": Rule("out", FINISHED, None, _rated_not_replied),
    "originals.received": Rule("out", _STORED, None, originals.awaited),
}
del S

OUTBOUND_CASE_EVENTS: tuple[str, ...] = tuple(
    k for k, r in TRANSITIONS.items() if r.direction == "out"
)


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def why_not(case: BureauCase, key: str) -> str | None:
    """The 中文 reason `key` does not fit the case now, or None when it does."""
    rule = TRANSITIONS[key]
    if case.status not in rule.sources:
        action = EVENT_LABELS.get(key, key)
        if case.status == Status.NEW:
            return f"办件 {case.case_no} 尚未提交，不能{action}。"
        return f"办件当前状态为「{status_label(case.status)}」，不能{action}。"
    return rule.guard(case) if rule.guard else None


def ensure_fits(case: BureauCase, key: str) -> None:
    """Raise 409 when `key` does not fit the case's status: nothing changes."""
    reason = why_not(case, key)
    if reason:
        raise Conflict(reason)


def allowed_outbound(case: BureauCase) -> list[str]:
    """The bureau events (staff actions) that fit the case now, in table order."""
    return [key for key in OUTBOUND_CASE_EVENTS if why_not(case, key) is None]


def record_event(
    session: Session,
    *,
    case: BureauCase,
    direction: str,
    event_id: str,
    event_type: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
    actor: str,
) -> CaseEvent:
    """Add one entry to the case's history."""
    entry = CaseEvent(
        case_id=case.id,
        direction=direction,
        event_id=event_id,
        type=event_type,
        occurred_at=occurred_at,
        actor=actor,
        data=dict(data),
    )
    session.add(entry)
    return entry


def transition(
    session: Session,
    *,
    case: BureauCase,
    key: str,
    data: Mapping[str, Any],
    actor: str,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    changes: Mapping[str, Any] | None = None,
) -> CaseEvent:
    """Apply one event to the case: check it fits, move the status, record it, queue it.

    `changes` (attribute -> value) are set on the case only after the check, so guards
    always judge the case as it was before the event.

    Inbound events pass the portal's `event_id` and `occurred_at`; outbound ones get fresh
    ones and are written to the outbox in this same transaction, so a staff action and its
    callback are committed together or not at all.
    """
    ensure_fits(case, key)
    for name, value in (changes or {}).items():
        setattr(case, name, value)
    rule = TRANSITIONS[key]
    event_type = key.split(":", 1)[0]
    now = utcnow()
    if rule.direction == "out":
        message = outbox.enqueue(session, event_type=event_type, case_no=case.case_no, data=data)
        event_id, occurred_at = message.event_id, message.created_at
    assert event_id is not None and occurred_at is not None  # inbound events carry both
    if rule.target is not None:
        case.status = rule.target
    case.updated_at = now
    if case.id is None:
        session.flush()  # a case created by this event needs its id for the history row
    return record_event(
        session,
        case=case,
        direction=rule.direction,
        event_id=event_id,
        event_type=event_type,
        occurred_at=occurred_at,
        data=data,
        actor=actor,
    )
