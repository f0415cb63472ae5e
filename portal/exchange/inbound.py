"""Applying the bureau's events to cases (bureau → portal half of the protocol)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.models import Hall, Item
from portal.clock import CST, add_working_days, span_official, utcnow
from portal.consultations.service import apply_answer as _consultation_answered
from portal.delivery.models import Delivery
from portal.errors import Conflict, NotFound
from portal.exchange import schemas
from portal.exchange.outbox import enqueue_job
from portal.licences.service import apply_revoked, record_issued
from portal.ratings.models import Rating

DEFAULT_REMEDY = (
    "如不服本决定，可以在收到决定之日起六十日内向常州市武进区人民政府申请行政复议，"
    "或者在六个月内依法向人民法院提起行政诉讼。"
)


class Context:
    def __init__(self, session: Session, case: Case | None, envelope: schemas.EnvelopeIn) -> None:
        self.session = session
        self.case = case
        self.envelope = envelope
        self.at = envelope.occurred_at

    def apply(self, key: str, detail: str = "", data: dict[str, Any] | None = None) -> None:
        assert self.case is not None
        states.apply(self.session, self.case, key, detail=detail, data=data, at=self.at)

    def require(self, key: str) -> None:
        """Check the status first, so the event's own changes are never half-applied."""
        assert self.case is not None
        if not states.allowed(self.case, key):
            label = states.STATUS_LABELS[self.case.status]
            raise Conflict(
                f"case status is {self.case.status} ({label}); {key} does not fit", code="conflict"
            )


def _passed(ctx: Context, d: schemas.PassedIn) -> None:
    ctx.require("prereview.passed")
    ctx.case.review_comment = d.comment
    ctx.case.corrections = {}
    ctx.apply("prereview.passed", d.comment or "")


def _returned(ctx: Context, d: schemas.ReturnedIn) -> None:
    ctx.require("prereview.returned")
    item = ctx.session.get(Item, ctx.case.item_code)
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
        item = ctx.session.get(Item, case.item_code)
        start = ctx.at.astimezone(CST).date()
        days = item.promised_days if item else 20
        case.due_date = add_working_days(start, days)
        # Kept so `portal calendar load` can recompute a date that rests on a guess.
        case.due_basis = {"start": start.isoformat(), "days": days}
        case.due_date_provisional = not span_official(start, case.due_date)
    ctx.apply(
        "case.accepted", f"受理编号 {d.acceptance_no}，承诺 {case.due_date.isoformat()} 前办结"
    )


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
    case.decision_no = d.decision_no
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
    ctx.apply("case.approved", f"决定书编号 {d.decision_no}，{d.licence.name} {d.licence.number}")
    record_issued(ctx.session, case=case)  # 我的证照
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
    ctx.case.outcome_reason = d.reason
    ctx.case.remedy = d.remedy or DEFAULT_REMEDY
    ctx.apply("case.denied", d.reason)


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
    HANDLERS[envelope.type](Context(session, case, envelope), data)
