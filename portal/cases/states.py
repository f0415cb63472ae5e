"""The case status machine: one table, one function through which every change goes.

A transition checks the current status, sets the new one, writes the timeline
entry and (for changes the bureau must hear about) the outbox message, all in the
caller's transaction, so they commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from portal.cases.models import Case, TimelineEntry
from portal.clock import utcnow
from portal.errors import Conflict
from portal.exchange.outbox import enqueue_event

if TYPE_CHECKING:
    from portal.catalogue.models import Item

DRAFT, PREREVIEW, RETURNED, PASSED = "draft", "prereview", "returned", "prereview_passed"
SUBMITTED, ACCEPTED, APPROVED = "submitted", "accepted", "approved"
DENIED, REJECTED, WITHDRAWN = "denied", "rejected", "withdrawn"
CORRECTION = "correction_required"  # 补正 after the formal submission (行政许可法 §32)

STATUS_LABELS = {
    DRAFT: "草稿",
    PREREVIEW: "网上预审中",
    RETURNED: "需补正材料",
    PASSED: "预审通过，待正式提交",
    SUBMITTED: "已提交，等待受理",
    CORRECTION: "待补正",
    ACCEPTED: "已受理，正在审查",
    APPROVED: "已办结：准予许可",
    DENIED: "已办结：不予许可",
    REJECTED: "不予受理",
    WITHDRAWN: "已撤回",
}
STATUS_TAGS = {
    DRAFT: "grey",
    PREREVIEW: "blue",
    RETURNED: "orange",
    PASSED: "blue",
    SUBMITTED: "blue",
    CORRECTION: "orange",
    ACCEPTED: "blue",
    APPROVED: "green",
    DENIED: "red",
    REJECTED: "red",
    WITHDRAWN: "grey",
}
FINISHED = frozenset({APPROVED, DENIED, REJECTED, WITHDRAWN})
EDITABLE = frozenset({DRAFT, RETURNED})
ALL_STATUSES = frozenset(STATUS_LABELS)


# The five stages the case page and the public status page draw, in order.
STAGES = ("申请", "受理", "审查", "办结", "送达")
# Where a case in progress stands: pre-review is part of 申请, 补正 part of 受理 (§32).
_STAGE_AT = {
    DRAFT: 0,
    PREREVIEW: 0,
    RETURNED: 0,
    PASSED: 0,
    SUBMITTED: 1,
    CORRECTION: 1,
    ACCEPTED: 2,
    APPROVED: 4,  # decided; the licence is on its way
}
_STOPPED_AT = {REJECTED: (1, "不予受理"), DENIED: (3, "不予许可")}


@dataclass(frozen=True)
class Stage:
    name: str
    state: str  # "done" | "current" | "todo" | "stopped" | "skipped" (never reached)
    note: str = ""  # shown under the name: why it stopped, or why it is skipped


def stage_of(case: Case, *, delivered: bool, formal: bool) -> list[Stage]:
    """The case among STAGES, for the stepper of the case page and the public status page.

    `delivered`: the licence reached the applicant (licence.delivered); `formal`: the case
    was formally submitted once, which says where a withdrawal stopped it (申请 or 受理).
    """
    status = case.status
    if status == WITHDRAWN:
        stop, note = (1 if formal else 0), "已撤回"
    elif status in _STOPPED_AT:
        stop, note = _STOPPED_AT[status]
    elif status == APPROVED and case.application_kind == "cancellation":
        # A 注销 brings no licence home: decided is the end.
        return [Stage(n, "done") for n in STAGES[:4]] + [Stage(STAGES[4], "skipped", "无需送达")]
    else:
        at = len(STAGES) if status == APPROVED and delivered else _STAGE_AT[status]
        return [
            Stage(n, "done" if i < at else "current" if i == at else "todo")
            for i, n in enumerate(STAGES)
        ]
    return [
        Stage(
            n,
            "done" if i < stop else "stopped" if i == stop else "skipped",
            note if i == stop else "",
        )
        for i, n in enumerate(STAGES)
    ]


@dataclass(frozen=True)
class Transition:
    label: str  # the timeline label
    sources: frozenset[str]
    target: str | None  # None: the status stays
    source: str  # who acts: "citizen" or "bureau"
    sends: str | None = None  # the protocol event the bureau receives, if any


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


TRANSITIONS: dict[str, Transition] = {
    # What the citizen does.
    "prereview.submitted": Transition(
        "提交网上预审", _s(DRAFT, RETURNED), PREREVIEW, "citizen", "case.submitted"
    ),
    "formal.submitted": Transition(
        "正式提交申请", _s(DRAFT, PASSED), SUBMITTED, "citizen", "case.submitted"
    ),
    "draft.withdrawn": Transition("删除草稿", _s(DRAFT), WITHDRAWN, "citizen"),
    "case.withdrawn": Transition(
        "撤回申请",
        _s(PREREVIEW, RETURNED, PASSED, SUBMITTED, CORRECTION),
        WITHDRAWN,
        "citizen",
        "case.withdrawn",
    ),
    "delivery.selected": Transition(
        "选择证照领取方式",
        ALL_STATUSES - FINISHED | _s(APPROVED),
        None,
        "citizen",
        "delivery.selected",
    ),
    "case.corrected": Transition(
        "提交补正材料", _s(CORRECTION), SUBMITTED, "citizen", "case.corrected"
    ),
    "rating.submitted": Transition("评价服务", FINISHED, None, "citizen", "rating.submitted"),
    "materials.supplemented": Transition(
        "补交容缺材料", _s(SUBMITTED, ACCEPTED), None, "citizen", "materials.supplemented"
    ),
    # 材料寄递 (docs/bureau-protocol.md refinement): how the originals reach the bureau;
    # a later choice replaces the earlier one until the bureau has signed for them.
    "originals.posted": Transition(
        "提交原件寄递信息", _s(SUBMITTED, CORRECTION, ACCEPTED), None, "citizen", "originals.posted"
    ),
    # What the bureau reports.
    "prereview.passed": Transition("网上预审通过", _s(PREREVIEW), PASSED, "bureau"),
    "prereview.returned": Transition("预审退回，需补正", _s(PREREVIEW), RETURNED, "bureau"),
    "case.accepted": Transition("已受理", _s(SUBMITTED), ACCEPTED, "bureau"),
    "case.rejected": Transition("不予受理", _s(SUBMITTED), REJECTED, "bureau"),
    "correction.requested": Transition("一次性告知补正材料", _s(SUBMITTED), CORRECTION, "bureau"),
    # The clock of an accepted case (§42, §45): the status stays; whether the clock runs
    # is checked by `clock_fits`, the only other precondition of these three.
    "clock.suspended": Transition("暂停计时", _s(ACCEPTED), None, "bureau"),
    "clock.resumed": Transition("恢复计时", _s(ACCEPTED), None, "bureau"),
    "deadline.extended": Transition("延长办理期限", _s(ACCEPTED), None, "bureau"),
    "inspection.scheduled": Transition("安排现场核查", _s(ACCEPTED), None, "bureau"),
    "case.approved": Transition("准予许可，已办结", _s(ACCEPTED), APPROVED, "bureau"),
    "case.denied": Transition("不予许可，已办结", _s(ACCEPTED), DENIED, "bureau"),
    "licence.ready_for_pickup": Transition("证照可以领取", _s(APPROVED), None, "bureau"),
    "licence.shipped": Transition("证照已寄出", _s(APPROVED), None, "bureau"),
    "licence.delivered": Transition("证照已签收", _s(APPROVED), None, "bureau"),
    "rating.reply": Transition("收到评价回复", FINISHED, None, "bureau"),
    # Any status the bureau knows: originals may arrive after the decision, or unannounced.
    "originals.received": Transition("审批局已签收原件", ALL_STATUSES - {DRAFT}, None, "bureau"),
}

# Hooks run inside the transition (same transaction), e.g. the message centre.
_after_hooks: list[Any] = []


def after_transition(hook: Any) -> Any:
    """Register `hook(session, case, key, entry)` (once; see portal.composition)."""
    if hook not in _after_hooks:
        _after_hooks.append(hook)
    return hook


CLOCK_REASONS = {
    "hearing": "听证",
    "testing": "检验、检测、检疫",
    "appraisal": "鉴定",
    "expert_review": "专家评审",
    "public_notice": "公示",
    "applicant": "等待申请人整改、补充",
    "other": "其他",
}


def clock_fits(case: Case, key: str) -> str | None:
    """Why a clock event does not fit the case's clock now (None when it does)."""
    if key == "clock.suspended" and case.suspension:
        return "the clock is already suspended"
    if key == "clock.resumed" and not case.suspension:
        return "the clock is running"
    return None


@dataclass(frozen=True)
class Permissions:
    """What the citizen may do with a case now: the one answer pages, API and bundles read."""

    edit: bool  # change the form and the files (draft, 需补正 after pre-review)
    correct: bool  # 补正 after the formal submission: only the materials named
    prereview: bool  # send it to 网上预审
    formal: bool  # submit formally (after pre-review where the item has one)
    gaozhi: bool  # submit under 告知承诺 instead of some materials
    withdraw: bool  # delete the draft or withdraw the application
    rate: bool  # 好差评 once the case is finished (a rating not yet given is the caller's check)
    delivery: bool  # choose or change how the licence comes home


def permissions(case: Case, item: Item) -> Permissions:
    """The case's permissions under its item's rules (pre-review, 告知承诺, express, halls)."""
    status = case.status
    return Permissions(
        edit=status in EDITABLE,
        correct=status == CORRECTION,
        prereview=bool(item.prereview) and allowed(case, "prereview.submitted"),
        formal=allowed(case, "formal.submitted") and not (status == DRAFT and item.prereview),
        gaozhi=bool(item.commitment_text) and status in (DRAFT, PASSED),
        withdraw=status == DRAFT or allowed(case, "case.withdrawn"),
        rate=may_rate(case),
        # A cancellation (注销) issues no licence, so there is nothing to deliver.
        delivery=bool(item.express or item.halls)
        and case.application_kind != "cancellation"
        and status not in (DENIED, REJECTED, WITHDRAWN),
    )


def require_editable(case: Case) -> None:
    """409 unless the citizen may change the case's form and files now."""
    if case.status not in EDITABLE:
        raise Conflict(
            f"办件当前状态为“{STATUS_LABELS[case.status]}”，不能修改。只有草稿和需补正的办件可以修改。",
            code="not_editable",
        )


def require_material_editable(case: Case, material_code: str) -> None:
    """409 unless the citizen may add or remove files of this material now.

    While 待补正 only the materials the bureau named in its one-time notice change.
    """
    if case.status == CORRECTION:
        if material_code in (case.corrections or {}):
            return
        named = "、".join((case.correction or {}).get("names", {}).values()) or "通知中列出的材料"
        raise Conflict(
            f"审批局只要求补正{named}，这项材料不需要补正，不能修改。",
            code="not_named_for_correction",
        )
    require_editable(case)


def allowed(case: Case, key: str) -> bool:
    return case.status in TRANSITIONS[key].sources


def may_rate(case: Case) -> bool:
    """好差评 is open once the case is finished, if it ever reached the bureau: a draft
    deleted before it was sent is unknown there, with nothing to rate. (Whether a rating
    was given already is the ratings service's check.)"""
    return case.status in FINISHED and case.submitted_at is not None


def withdrawn(case: Case) -> bool:
    """The citizen deleted the draft or withdrew the application (draft.withdrawn,
    case.withdrawn): the case takes no more answers or files. In a 一件事 bundle it is
    passed over, not refused; `deleted_draft` says whether it also left the bundle."""
    return case.status == WITHDRAWN


def deleted_draft(case: Case) -> bool:
    """A draft the citizen deleted before anything reached the bureau (draft.withdrawn):
    it has left its 一件事 bundle, while a case withdrawn after submission stays in it."""
    return withdrawn(case) and case.submitted_at is None


def apply(
    session: Session,
    case: Case,
    key: str,
    *,
    detail: str = "",
    data: dict[str, Any] | None = None,
    event_data: dict[str, Any] | None = None,
    blobs: Iterable[str] = (),
    at: datetime | None = None,
) -> TimelineEntry:
    """Move `case` by transition `key`; 409 when its status does not allow it."""
    transition = TRANSITIONS[key]
    if case.status not in transition.sources:
        raise Conflict(
            f"办件当前状态为“{STATUS_LABELS[case.status]}”，不能{transition.label}。",
            code="wrong_status",
        )
    now = utcnow()
    if transition.target is not None:
        case.status = transition.target
        if transition.target in FINISHED:
            case.finished_at = now
    case.updated_at = now
    entry = TimelineEntry(
        case_id=case.id,
        at=at or now,
        type=key,
        label=transition.label,
        detail=detail,
        source=transition.source,
        data=data or {},
    )
    session.add(entry)
    if transition.sends is not None:
        enqueue_event(
            session, type=transition.sends, case_no=case.case_no, data=event_data or {}, blobs=blobs
        )
    for hook in _after_hooks:
        hook(session, case, key, entry)
    return entry


def record(
    session: Session, case: Case, *, type: str, label: str, detail: str = "", source: str = "portal"
) -> TimelineEntry:
    """A timeline entry that is not a status transition (e.g. the draft was created)."""
    entry = TimelineEntry(case_id=case.id, type=type, label=label, detail=detail, source=source)
    session.add(entry)
    return entry
