"""Applying the bureau's events to cases (bureau → portal half of the protocol)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.cases import states
from portal.cases.models import Case
from portal.cases.procedure import CORRECTION_NOTICE_DAYS, DEFAULT_REMEDY
from portal.catalogue.models import Hall
from portal.clock import (
    CST,
    add_working_days,
    is_working_day,
    rfc3339,
    span_official,
    utcnow,
    working_days_left,
)
from portal.consultations.service import apply_answer as _consultation_answered
from portal.delivery.models import Delivery
from portal.errors import Conflict, Invalid, NotFound
from portal.exchange import schemas
from portal.exchange.outbox import enqueue_job
from portal.licences.kinds import item_for_case
from portal.licences.service import apply_cancellation, apply_revoked, record_issued
from portal.ratings.models import Rating


class Context:
    def __init__(self, session: Session, case: Case, envelope: schemas.EnvelopeIn) -> None:
        self.session = session
        self.case = case
        self.envelope = envelope
        self.at = envelope.occurred_at
        self.envelope_data: BaseModel | None = None  # the validated data (its `notice`)

    def apply(self, key: str, detail: str = "", data: dict[str, Any] | None = None) -> None:
        states.apply(self.session, self.case, key, detail=detail, data=data, at=self.at)
        notice = getattr(self.envelope_data, "notice", None)
        if notice is not None:
            keep_notice(self, notice)

    def require(self, key: str) -> None:
        """Check the status first, so the event's own changes are never half-applied."""
        if not states.allowed(self.case, key):
            label = states.STATUS_LABELS[self.case.status]
            raise Conflict(
                f"case status is {self.case.status} ({label}); {key} does not fit", code="conflict"
            )
        if reason := states.clock_fits(self.case, key):
            raise Conflict(f"{key} does not fit: {reason}", code="conflict")

    @property
    def day(self) -> date:
        """The CST date of the event, the date the protocol counts with."""
        return self.at.astimezone(CST).date()


def keep_notice(ctx: Context, notice: schemas.NoticeIn) -> None:
    """List a document (文书) on the case and have the dispatcher fetch its file.

    The event is processed whether or not the file can be fetched yet: the fetch is a
    job of its own, retried like a licence's.
    """
    case = ctx.case
    entry = {
        "name": notice.name,
        "number": notice.number,
        "filename": notice.filename,
        "content_type": notice.content_type,
        "sha256": notice.sha256,
        "at": rfc3339(ctx.at),
        "event": ctx.envelope.type,
        "stored": False,
    }
    # A number issued again (a corrected notice) replaces the earlier entry.
    kept = [d for d in case.documents or [] if d.get("number") != notice.number]
    case.documents = [*kept, entry]  # a new list, so the JSON column is seen as changed
    enqueue_job(
        ctx.session,
        kind="document_fetch",
        ordering_key=f"document:{case.case_no}",
        payload={"case_no": case.case_no, "sha256": notice.sha256, "number": notice.number},
        case_no=case.case_no,
    )


def _passed(ctx: Context, d: schemas.PassedIn) -> None:
    ctx.require("prereview.passed")
    ctx.case.review_comment = d.comment
    ctx.case.corrections = {}
    ctx.apply("prereview.passed", d.comment or "")


def _returned(ctx: Context, d: schemas.ReturnedIn) -> None:
    ctx.require("prereview.returned")
    item = item_for_case(ctx.session, ctx.case)  # a renewal's materials are its own
    names = {m["code"]: m["name"] for m in item.materials} if item else {}
    notes = {m.code: m.comment for m in d.materials}
    ctx.case.review_comment = d.comment
    ctx.case.corrections = notes
    lines = [f"{names.get(code, code)}：{comment}" for code, comment in notes.items()]
    detail = "；".join(([d.comment] if d.comment else []) + lines)
    ctx.apply("prereview.returned", detail, {"materials": notes})


def _accepted(ctx: Context, d: schemas.AcceptedIn) -> None:
    ctx.require("case.accepted")
    case = ctx.case
    case.acceptance_no = d.acceptance_no
    case.accepted_at = ctx.at
    if d.due_date is not None:
        # The bureau's own commitment: never recomputed by the portal.
        case.due_date, case.due_date_provisional, case.due_basis = d.due_date, False, None
    else:
        item = item_for_case(ctx.session, case)  # a renewal's time limit is its own
        start = ctx.at.astimezone(CST).date()
        days = item.promised_days if item else 20
        case.due_date = add_working_days(start, days)
        # Kept so `portal calendar load` can recompute a date that rests on a guess.
        case.due_basis = {"start": start.isoformat(), "days": days}
        case.due_date_provisional = not span_official(start, case.due_date)
    ctx.apply(
        "case.accepted", f"受理编号 {d.acceptance_no}，承诺 {case.due_date.isoformat()} 前办结"
    )


def correction_ask_by(case: Case) -> date | None:
    """The last day the bureau may ask for 补正 (§32): the 5th working day after submission."""
    if case.submitted_at is None:
        return None
    return add_working_days(case.submitted_at.astimezone(CST).date(), CORRECTION_NOTICE_DAYS)


def _correction_requested(ctx: Context, d: schemas.CorrectionRequestedIn) -> None:
    ctx.require("correction.requested")
    case = ctx.case
    item = item_for_case(ctx.session, case)
    names = {m["code"]: m["name"] for m in item.materials} if item else {}
    notes = {m.code: m.comment for m in d.materials}
    unknown = sorted(set(notes) - set(names))
    if unknown:
        # The citizen could never hand these in: refused rather than a case stuck 待补正.
        raise Invalid({}, f"materials {', '.join(unknown)} are not materials of {case.item_code}")
    from portal.materials.models import CaseFile  # materials imports cases

    kept = ctx.session.scalars(select(CaseFile.id).where(CaseFile.case_id == case.id)).all()
    ask_by = correction_ask_by(case)
    case.corrections = notes
    case.correction = {
        "requested_at": rfc3339(ctx.at),
        "received_at": rfc3339(utcnow()),
        "due_date": d.due_date.isoformat() if d.due_date else None,
        "comment": d.comment,
        "names": {code: names[code] for code in notes},
        "kept": list(kept),
        "ask_by": ask_by.isoformat() if ask_by else None,
        # §32: no notice within 5 working days, and the application counts as accepted.
        "late": bool(ask_by and ctx.day > ask_by),
        "round": case.correction_round + 1,
    }
    lines = [f"{names[code]}：{comment}" for code, comment in notes.items()]
    detail = "；".join(([d.comment] if d.comment else []) + lines)
    if d.due_date:
        detail += f"（请于 {d.due_date.isoformat()} 前提交）"
    ctx.apply("correction.requested", detail, {"materials": notes})


def working_days_from(start: date, end: date) -> int:
    """Working days d with start <= d < end (the days a suspension took off the clock)."""
    n, day = 0, start
    while day < end:
        n += is_working_day(day)
        day += timedelta(days=1)
    return n


def end_suspension(ctx: Context) -> int:
    """Stop a suspension at the event's date: the due date moves later by the working days
    suspended; returns that count. A portal-computed date keeps its basis for recomputation."""
    case = ctx.case
    assert case.suspension is not None  # the state table allows this only while suspended
    since = datetime.fromisoformat(case.suspension["since"]).astimezone(CST).date()
    days = working_days_from(since, ctx.day)
    if case.due_date is not None and days:
        case.due_date = add_working_days(case.due_date, days)
        if case.due_basis:
            # add_working_days(start, n + k) is add_working_days(add_working_days(start, n), k)
            case.due_basis = {**case.due_basis, "days": case.due_basis["days"] + days}
            start = date.fromisoformat(case.due_basis["start"])
            case.due_date_provisional = not span_official(start, case.due_date)
    case.suspension = None
    return days


def _clock_suspended(ctx: Context, d: schemas.ClockSuspendedIn) -> None:
    ctx.require("clock.suspended")
    case = ctx.case
    left = working_days_left(ctx.day, case.due_date) if case.due_date else None
    case.suspension = {
        "since": rfc3339(ctx.at),
        "reason_code": d.reason_code,
        "reason": d.reason,
        "expected_days": d.expected_days,
        "left": left,
    }
    detail = f"{states.CLOCK_REASONS[d.reason_code]}：{d.reason}"
    if d.expected_days is not None:
        detail += f"，预计 {d.expected_days} 个工作日"
    ctx.apply("clock.suspended", detail, {"reason_code": d.reason_code})


def _clock_resumed(ctx: Context, d: schemas.ClockResumedIn) -> None:
    ctx.require("clock.resumed")
    days = end_suspension(ctx)
    detail = (
        f"暂停 {days} 个工作日，承诺办结日期顺延至 {ctx.case.due_date.isoformat()}"
        if (ctx.case.due_date)
        else f"暂停 {days} 个工作日"
    )
    if d.note:
        detail = f"{d.note}；{detail}"
    ctx.apply("clock.resumed", detail, {"suspended_days": days})


def _deadline_extended(ctx: Context, d: schemas.DeadlineExtendedIn) -> None:
    ctx.require("deadline.extended")
    case = ctx.case
    if case.due_date is not None and d.due_date <= case.due_date:
        raise Conflict(
            f"due_date {d.due_date.isoformat()} is not later than {case.due_date.isoformat()}",
            code="conflict",
        )
    # The bureau's own date now: never recomputed by the portal.
    case.due_date, case.due_date_provisional, case.due_basis = d.due_date, False, None
    ctx.apply("deadline.extended", f"延长至 {d.due_date.isoformat()}：{d.reason}")


def _rejected(ctx: Context, d: schemas.RejectedIn) -> None:
    ctx.require("case.rejected")
    ctx.case.outcome_reason = d.reason
    ctx.case.remedy = DEFAULT_REMEDY
    ctx.apply("case.rejected", d.reason)


def _inspection(ctx: Context, d: schemas.InspectionIn) -> None:
    ctx.require("inspection.scheduled")
    ctx.case.inspection_date = d.date
    ctx.case.inspection_note = d.note
    ctx.apply("inspection.scheduled", f"{d.date.isoformat()}" + (f"：{d.note}" if d.note else ""))


def _approved(ctx: Context, d: schemas.ApprovedIn) -> None:
    ctx.require("case.approved")
    case = ctx.case
    # The decision ends a suspension; the days it took are kept for the statistics.
    suspended = end_suspension(ctx) if case.suspension else 0
    case.decision_no = d.decision_no
    extra = {"suspended_days": suspended} if suspended else None
    if case.application_kind == "cancellation":
        # v1.1: a cancellation's approval issues nothing; the licence it named is cancelled.
        if d.licence is not None:
            raise Invalid({"data.licence": "注销的准予决定不颁发证照"}, "invalid cancellation")
        case.licence = None
        ended = apply_cancellation(ctx.session, case=case, decision_no=d.decision_no)
        what = f"{ended.name}（编号 {ended.number}）" if ended else f"证照 {case.licence_number}"
        ctx.apply("case.approved", f"决定书编号 {d.decision_no}，准予注销{what}", extra)
        return
    if d.licence is None:
        raise Invalid({"data.licence": "准予许可须附证照"}, "licence required")
    case.licence = {
        "name": d.licence.name,
        "number": d.licence.number,
        "valid_from": d.licence.valid_from.isoformat(),
        "valid_to": d.licence.valid_to.isoformat() if d.licence.valid_to else None,
        "filename": d.licence.filename,
        "content_type": d.licence.content_type,
        "sha256": d.licence.sha256,
        "stored": False,
    }
    ctx.apply(
        "case.approved", f"决定书编号 {d.decision_no}，{d.licence.name} {d.licence.number}", extra
    )
    # 我的证照; of a renewal, change or reissue it replaces the licence the case named.
    record_issued(ctx.session, case=case)
    # The file is fetched by the dispatcher, with retries, after this commits.
    enqueue_job(
        ctx.session,
        kind="licence_fetch",
        ordering_key=f"licence:{case.case_no}",
        payload={"case_no": case.case_no, "sha256": d.licence.sha256},
        case_no=case.case_no,
    )


def _denied(ctx: Context, d: schemas.DeniedIn) -> None:
    ctx.require("case.denied")
    suspended = end_suspension(ctx) if ctx.case.suspension else 0
    ctx.case.outcome_reason = d.reason
    ctx.case.remedy = d.remedy or DEFAULT_REMEDY
    ctx.apply("case.denied", d.reason, {"suspended_days": suspended} if suspended else None)


def _delivery_for(ctx: Context, method: str) -> Delivery:
    delivery = ctx.session.get(Delivery, ctx.case.id)
    if delivery is None:
        delivery = Delivery(case_id=ctx.case.id, method=method)
        ctx.session.add(delivery)
    if delivery.delivered_at is not None:
        raise Conflict("licence already delivered", code="conflict")
    return delivery


def _hall_name(session: Session, hall: str) -> str:
    found = (
        session.get(Hall, hall) or session.scalars(select(Hall).where(Hall.name == hall)).first()
    )
    return f"{found.name}（{found.address}）" if found else hall


def _pickup(ctx: Context, d: schemas.PickupIn) -> None:
    ctx.require("licence.ready_for_pickup")
    delivery = _delivery_for(ctx, "pickup")
    delivery.pickup_hall = _hall_name(ctx.session, d.hall)
    delivery.pickup_code = d.pickup_code
    delivery.ready_at = ctx.at
    ctx.apply("licence.ready_for_pickup", f"{delivery.pickup_hall}，取件码 {d.pickup_code}")


def _shipped(ctx: Context, d: schemas.ShippedIn) -> None:
    ctx.require("licence.shipped")
    delivery = _delivery_for(ctx, "express")
    delivery.carrier, delivery.tracking_no, delivery.shipped_at = d.carrier, d.tracking_no, ctx.at
    ctx.apply("licence.shipped", f"{d.carrier} 运单号 {d.tracking_no}")


def _delivered(ctx: Context, d: schemas.DeliveredIn) -> None:
    ctx.require("licence.delivered")
    delivery = ctx.session.get(Delivery, ctx.case.id)
    if delivery is None or (delivery.shipped_at is None and delivery.ready_at is None):
        raise Conflict("licence was neither shipped nor ready for pickup", code="conflict")
    if delivery.delivered_at is not None:
        raise Conflict("licence already delivered", code="conflict")
    signed = d.signed_at if isinstance(d.signed_at, datetime) else ctx.at
    delivery.delivered_at = signed
    ctx.apply("licence.delivered", "证照已送达")


def _reply(ctx: Context, d: schemas.ReplyIn) -> None:
    ctx.require("rating.reply")
    rating = ctx.session.get(Rating, ctx.case.id)
    if rating is None:
        raise Conflict("the case has not been rated", code="conflict")
    rating.reply, rating.replied_at = d.reply, utcnow()
    ctx.apply("rating.reply", d.reply)


HANDLERS: dict[str, Callable[[Context, Any], None]] = {
    "prereview.passed": _passed,
    "prereview.returned": _returned,
    "case.accepted": _accepted,
    "case.rejected": _rejected,
    "correction.requested": _correction_requested,
    "clock.suspended": _clock_suspended,
    "clock.resumed": _clock_resumed,
    "deadline.extended": _deadline_extended,
    "inspection.scheduled": _inspection,
    "case.approved": _approved,
    "case.denied": _denied,
    "licence.ready_for_pickup": _pickup,
    "licence.shipped": _shipped,
    "licence.delivered": _delivered,
    "rating.reply": _reply,
}


# Events that concern no case (12345 answers without a case); other domains register here.
def _licence_revoked(session: Session, envelope: schemas.EnvelopeIn, d: Any) -> None:
    apply_revoked(session, number=d.number, reason=d.reason, kind=d.kind)


CASELESS: dict[str, Callable[[Session, schemas.EnvelopeIn, BaseModel], None]] = {
    "consultation.answered": _consultation_answered,
    "licence.revoked": _licence_revoked,
}


def apply_bureau_event(session: Session, *, envelope: schemas.EnvelopeIn, data: BaseModel) -> None:
    """Apply one validated event: 404 unknown case, 409 when it does not fit the status."""
    if envelope.type in CASELESS and envelope.case_no is None:
        CASELESS[envelope.type](session, envelope, data)
        return
    if envelope.case_no is None:
        raise NotFound("case_no is required for this event type", code="unknown_case")
    query = select(Case).where(Case.case_no == envelope.case_no)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    case = session.scalars(query).first()
    if case is None or case.status == states.DRAFT:
        # A draft was never sent to the bureau, so for the bureau it does not exist.
        raise NotFound(f"unknown case_no {envelope.case_no}", code="unknown_case")
    if envelope.type in CASELESS:
        CASELESS[envelope.type](session, envelope, data)
        return
    context = Context(session, case, envelope)
    context.envelope_data = data
    HANDLERS[envelope.type](context, data)
