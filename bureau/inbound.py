"""Events from the portal (`POST /v1/events`): idempotent, validated, applied through the state table."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bureau import schemas, states
from bureau.blobs import BlobStore
from bureau.clock import utcnow
from bureau.errors import Conflict, InvalidEvent, UnknownCase
from bureau.models import Appointment, BureauCase, Consultation, ReceivedEvent
from bureau.queries import find_case
from bureau.states import Status

DUPLICATE = {"status": "duplicate"}
OK = {"status": "ok"}
PORTAL = "portal"

Handler = Callable[[Session, schemas.Envelope, BlobStore], None]


def receive_event(session: Session, *, body: bytes, store: BlobStore) -> dict[str, str]:
    """Process one signed envelope once; a repeated `event_id` changes nothing."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidEvent({"body": "不是合法的 UTF-8 JSON"}) from None
    if not isinstance(raw, dict):
        raise InvalidEvent({"body": "应为 JSON 对象"})
    # The duplicate check comes before validation: the first delivery of an id wins,
    # even when a later one differs (docs/bureau-protocol.md, "Answers").
    event_id = schemas._id_text(raw.get("event_id"))
    if isinstance(event_id, str) and _seen(session, event_id):
        return DUPLICATE
    envelope = schemas.parse(schemas.Envelope, raw, prefix="")
    handler = HANDLERS.get(envelope.type)
    if handler is None:
        raise InvalidEvent({"type": f"不支持的事件类型 {envelope.type}"}, "不支持的事件类型。")
    if envelope.case_no is None and envelope.type != "consultation.submitted":
        raise InvalidEvent({"case_no": "不能为空"})
    session.add(
        ReceivedEvent(
            event_id=envelope.event_id,
            type=envelope.type,
            case_no=envelope.case_no,
            received_at=utcnow(),
        )
    )
    try:
        # Claims the id before any work: a concurrent copy of this event waits on the
        # unique index here and then fails, and is answered as a duplicate.
        session.flush()
    except IntegrityError:
        session.rollback()
        return DUPLICATE
    handler(session, envelope, store)
    return OK


def _seen(session: Session, event_id: str) -> bool:
    query = select(ReceivedEvent.id).where(ReceivedEvent.event_id == event_id)
    return session.scalar(query) is not None


def _existing_case(session: Session, envelope: schemas.Envelope) -> BureauCase:
    case = find_case(session, envelope.case_no, for_update=True)
    if case is None:
        raise UnknownCase(envelope.case_no)
    return case


def _check_files(store: BlobStore, materials: list[schemas.Material]) -> None:
    """Every file an event names must have been PUT before (the contract's ordering)."""
    missing: dict[str, str] = {}
    for i, material in enumerate(materials):
        for j, ref in enumerate(material.files):
            held = store.size(ref.sha256)
            path = f"data.materials.{i}.files.{j}.sha256"
            if held is None:
                missing[path] = "文件尚未上传（应先 PUT /v1/blobs/{sha256}）"
            elif held != ref.size:
                missing[f"data.materials.{i}.files.{j}.size"] = f"与已上传文件的大小 {held} 不符"
    if missing:
        raise InvalidEvent(missing, "事件引用的材料文件不存在或不一致。")


def _dump(model: schemas.BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def _case_submitted(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """A case for (pre-)review: new, or resubmitted after a return, or formally after a pass."""
    data = schemas.parse(schemas.CaseSubmitted, envelope.data, prefix="data")
    _check_files(store, data.materials)
    assert envelope.case_no is not None
    case = find_case(session, envelope.case_no, for_update=True)
    if case is None:
        case = BureauCase(case_no=envelope.case_no, status=Status.NEW, received_at=utcnow())
        session.add(case)
    changes: dict[str, Any] = {
        "item_code": data.item.code,
        "item_name": data.item.name,
        "applicant": _dump(data.applicant),
        "applicant_name": data.applicant.name,
        "form": dict(data.form),
        "materials": [_dump(m) for m in data.materials],
        "commitment": _dump(data.commitment) if data.commitment else None,
        "bundle": _dump(data.bundle) if data.bundle else None,
    }
    if data.delivery is not None:
        changes["delivery"] = _dump(data.delivery)
    # A formal submission that names no round keeps the round its pre-review reached.
    if "round" in data.model_fields_set or case.status == Status.NEW:
        changes["round"] = data.round
    _transition(session, case, f"case.submitted:{data.stage}", envelope, changes)


def _case_withdrawn(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """The applicant withdraws before acceptance."""
    data = schemas.parse(schemas.CaseWithdrawn, envelope.data, prefix="data")
    case = _existing_case(session, envelope)
    _transition(session, case, envelope.type, envelope, {"closing_reason": data.reason})


def _delivery_selected(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """How the licence should reach the holder (pickup hall or express address)."""
    data = schemas.parse(schemas.Delivery, envelope.data, prefix="data")
    case = _existing_case(session, envelope)
    _transition(session, case, envelope.type, envelope, {"delivery": _dump(data)})


def _originals_posted(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """How the applicant hands in the originals (post with a waybill number, or the counter)."""
    schemas.parse(schemas.OriginalsPosted, envelope.data, prefix="data")
    case = _existing_case(session, envelope)
    # Kept in the case's history only; bureau.originals reads the latest from there.
    _transition(session, case, envelope.type, envelope)


RATING_LABELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


def _rating_submitted(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """A 好差评 rating of a finished case (level 1..5, code 6 − level)."""
    data = schemas.parse(schemas.RatingSubmitted, envelope.data, prefix="data")
    case = _existing_case(session, envelope)
    rating = {
        "level": data.level,
        "code": 6 - data.level,
        "label": RATING_LABELS[data.level],
        "comment": data.comment or "",
    }
    changes = {"rating": rating, "rated_at": utcnow()}
    _transition(session, case, envelope.type, envelope, changes)


def _materials_supplemented(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """Materials handed in later under 容缺受理 replace the case's entries."""
    data = schemas.parse(schemas.MaterialsSupplemented, envelope.data, prefix="data")
    _check_files(store, data.materials)
    case = _existing_case(session, envelope)
    states.ensure_fits(case, envelope.type)
    by_code = {m["code"]: m for m in case.materials}
    stamp = envelope.occurred_at.isoformat()
    for material in data.materials:
        entry = _dump(material)
        entry["deferred"] = False
        entry["supplemented_at"] = stamp
        by_code[material.code] = {**by_code.get(material.code, {}), **entry}
    # A new list (not an in-place edit) so the JSON column is seen as changed.
    _transition(session, case, envelope.type, envelope, {"materials": list(by_code.values())})


def _case_corrected(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """补正 handed in: the named materials replace the case's entries, the form is whole."""
    data = schemas.parse(schemas.CaseCorrected, envelope.data, prefix="data")
    _check_files(store, data.materials)
    case = _existing_case(session, envelope)
    states.ensure_fits(case, envelope.type)
    by_code = {m["code"]: m for m in case.materials}
    stamp = envelope.occurred_at.isoformat()
    for material in data.materials:
        entry = _dump(material) | {"corrected_at": stamp}
        by_code[material.code] = {**by_code.get(material.code, {}), **entry}
    correction = {**(case.correction or {}), "rounds": data.round, "handed_in_at": stamp}
    changes = {
        "materials": list(by_code.values()),
        "form": dict(data.form) or case.form,
        "correction": correction,
    }
    _transition(session, case, envelope.type, envelope, changes)


def _appointment_booked(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """A slot at a hall, for on-site handling or collecting the licence."""
    data = schemas.parse(schemas.AppointmentBooked, envelope.data, prefix="data")
    case = _existing_case(session, envelope)
    states.ensure_fits(case, envelope.type)
    taken = session.scalar(
        select(Appointment.id).where(Appointment.appointment_id == data.appointment_id)
    )
    if taken is not None:
        raise Conflict(f"预约 {data.appointment_id} 已经登记过。")
    session.add(
        Appointment(
            case_id=case.id,
            appointment_id=data.appointment_id,
            purpose=data.purpose,
            hall=_dump(data.hall),
            window=data.window,
            date=data.date,
            period=data.period,
            status="booked",
            booked_at=utcnow(),
        )
    )
    _transition(session, case, envelope.type, envelope)


def _appointment_cancelled(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """The applicant cancels a booked slot."""
    data = schemas.parse(schemas.AppointmentCancelled, envelope.data, prefix="data")
    case = _existing_case(session, envelope)
    states.ensure_fits(case, envelope.type)
    appointment = session.scalars(
        select(Appointment).where(
            Appointment.appointment_id == data.appointment_id, Appointment.case_id == case.id
        )
    ).first()
    if appointment is None:
        raise Conflict(f"办件 {case.case_no} 没有预约 {data.appointment_id}。")
    if appointment.status == "cancelled":
        raise Conflict(f"预约 {data.appointment_id} 已经取消。")
    appointment.status = "cancelled"
    appointment.cancelled_at = utcnow()
    _transition(session, case, envelope.type, envelope)


def _consultation_submitted(session: Session, envelope: schemas.Envelope, store: BlobStore) -> None:
    """A 12345 question or complaint, about a case or none."""
    data = schemas.parse(schemas.ConsultationSubmitted, envelope.data, prefix="data")
    taken = session.scalar(
        select(Consultation.id).where(Consultation.consultation_id == data.consultation_id)
    )
    if taken is not None:
        raise Conflict(f"咨询投诉 {data.consultation_id} 已经登记过。")
    session.add(
        Consultation(
            consultation_id=data.consultation_id,
            consultation_ref=envelope.data["consultation_id"],
            case_no=envelope.case_no,
            kind=data.kind,
            subject=data.subject,
            body=data.body,
            contact=_dump(data.contact),
            received_at=utcnow(),
        )
    )
    # Not a case transition (a question may concern no case, or one the bureau never
    # received); when the case is known it still shows on its history.
    case = find_case(session, envelope.case_no)
    if case is not None:
        states.record_event(
            session,
            case=case,
            direction="in",
            event_id=envelope.event_id,
            event_type=envelope.type,
            occurred_at=envelope.occurred_at,
            data=envelope.data,
            actor=PORTAL,
        )


def _transition(
    session: Session,
    case: BureauCase,
    key: str,
    envelope: schemas.Envelope,
    changes: dict[str, Any] | None = None,
) -> None:
    """Through the state table; `changes` are applied after its check."""
    states.transition(
        session,
        case=case,
        key=key,
        data=envelope.data,
        actor=PORTAL,
        event_id=envelope.event_id,
        occurred_at=envelope.occurred_at,
        changes=changes,
    )


HANDLERS: dict[str, Handler] = {
    "case.submitted": _case_submitted,
    "case.withdrawn": _case_withdrawn,
    "delivery.selected": _delivery_selected,
    "rating.submitted": _rating_submitted,
    "materials.supplemented": _materials_supplemented,
    "case.corrected": _case_corrected,
    "appointment.booked": _appointment_booked,
    "appointment.cancelled": _appointment_cancelled,
    "consultation.submitted": _consultation_submitted,
    "originals.posted": _originals_posted,
}
