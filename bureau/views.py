"""What staff see of a case, computed once for the console's templates and the JSON API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bureau import actions, originals, states
from bureau.clock import CST, format_cst, rfc3339, today_cst, utcnow
from bureau.licence import mask_person_id
from bureau.models import BureauCase, Consultation, OutboxEvent, ReceivedEvent
from bureau.settings import Settings

APPLICANT_KINDS = {"person": "自然人", "enterprise": "企业/组织"}
ID_TYPES = {"RIC": "居民身份证", "USCC": "统一社会信用代码"}
DELIVERY_METHODS = {"pickup": "窗口自取", "express": "快递邮寄"}
PURPOSES = {"visit": "现场办理", "pickup": "领取证照"}
PERIODS = {"am": "上午", "pm": "下午"}
COMMITMENT_KINDS = {"rongque": "容缺受理", "gaozhi": "告知承诺制"}
CONSULTATION_KINDS = {"consult": "咨询", "complaint": "投诉"}
OUTBOX_LABELS = {"pending": "待发送", "delivered": "已送达", "dead": "已搁置"}
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})


def masked_id(id_type: str | None, id_number: str | None) -> str:
    """统一社会信用代码 is public; a person's 身份证 number is shown as 3204************1X."""
    if not id_number:
        return ""
    return id_number if id_type == "USCC" else mask_person_id(id_number)


def _iso(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def preview_kind(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/pdf":
        return "pdf"
    if media in INLINE_TYPES:
        return "image"
    return "file"


def applicant_view(applicant: dict[str, Any]) -> dict[str, Any]:
    view = {
        "kind": applicant.get("kind"),
        "kind_label": APPLICANT_KINDS.get(applicant.get("kind", ""), ""),
        "name": applicant.get("name", ""),
        "id_type": applicant.get("id_type"),
        "id_type_label": ID_TYPES.get(applicant.get("id_type", ""), ""),
        "id_number_masked": masked_id(applicant.get("id_type"), applicant.get("id_number")),
        "phone": applicant.get("phone", ""),
    }
    agent = applicant.get("agent")
    if agent:
        view["agent"] = {
            "name": agent.get("name", ""),
            "id_number_masked": mask_person_id(agent.get("id_number", "")),
            "phone": agent.get("phone", ""),
        }
    return view


def materials_view(case: BureauCase) -> list[dict[str, Any]]:
    out = []
    for material in case.materials:
        files = [
            {**f, "preview": preview_kind(f.get("content_type", ""))}
            for f in material.get("files", [])
        ]
        out.append({**material, "files": files})
    return out


def delivery_view(delivery: dict[str, Any] | None) -> dict[str, Any] | None:
    if not delivery:
        return None
    view = {**delivery, "method_label": DELIVERY_METHODS.get(delivery.get("method", ""), "")}
    hall = delivery.get("hall")
    if isinstance(hall, dict):
        view["hall"] = hall.get("code", "")
        view["hall_name"] = hall.get("name", "")
    address = delivery.get("address")
    if address:
        parts = [address.get(k, "") for k in ("province", "city", "district", "detail")]
        view["address_text"] = "".join(parts)
    return view


def display_value(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if value is None:
        return "—"
    if isinstance(value, list):
        return "、".join(display_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def form_rows(form: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, display_value(value)) for name, value in form.items()]


def redact(value: Any) -> Any:
    """A copy with every personal ID number masked (history shows raw event data)."""
    if isinstance(value, list):
        return [redact(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: redact(v) for k, v in value.items()}
    if isinstance(out.get("id_number"), str):
        out["id_number"] = masked_id(out.get("id_type"), out["id_number"])
    return out


def history_view(
    case: BureauCase, outbox: dict[str, OutboxEvent] | None = None
) -> list[dict[str, Any]]:
    outbox = outbox or {}
    entries = []
    for event in case.events:
        sent = outbox.get(event.event_id)
        data = redact(event.data)
        entries.append(
            {
                "direction": event.direction,
                "event_id": event.event_id,
                "type": event.type,
                "label": states.EVENT_LABELS.get(event.type, event.type),
                "occurred_at": _iso(event.occurred_at),
                "occurred_at_text": format_cst(event.occurred_at),
                "actor": event.actor,
                "data": data,
                "data_text": json.dumps(data, ensure_ascii=False, indent=1),
                "delivery": sent.status if sent else None,
                "delivery_label": OUTBOX_LABELS.get(sent.status, "") if sent else "",
            }
        )
    return entries


def licence_view(case: BureauCase, settings: Settings) -> dict[str, Any] | None:
    licence = case.licence
    if licence is None:
        return None
    return {
        "name": licence.name,
        "number": licence.number,
        "valid_from": licence.valid_from.isoformat(),
        "valid_to": licence.valid_to.isoformat() if licence.valid_to else None,
        "decision_no": licence.decision_no,
        "filename": licence.filename,
        "content_type": licence.content_type,
        "sha256": licence.sha256,
        "verify_url": settings.verify_url(licence.number),
    }


def case_summary(case: BureauCase) -> dict[str, Any]:
    return {
        "case_no": case.case_no,
        "status": case.status,
        "status_label": states.status_label(case.status),
        "round": case.round,
        "item": {"code": case.item_code, "name": case.item_name},
        "applicant_name": case.applicant_name,
        "acceptance_no": case.acceptance_no,
        "received_at": _iso(case.received_at),
        "updated_at": _iso(case.updated_at),
    }


def case_detail(
    case: BureauCase, *, settings: Settings, outbox: dict[str, OutboxEvent]
) -> dict[str, Any]:
    """The whole case (needs events, appointments and licence loaded)."""
    return {
        **case_summary(case),
        "applicant": applicant_view(case.applicant),
        "form": case.form,
        "materials": case.materials,
        "commitment": case.commitment,
        "delivery": case.delivery,
        "bundle": case.bundle,
        "due_date": case.due_date.isoformat() if case.due_date else None,
        "accepted_at": _iso(case.accepted_at),
        "inspection": (
            {"date": case.inspection_date.isoformat(), "note": case.inspection_note or ""}
            if case.inspection_date
            else None
        ),
        "decision_no": case.decision_no,
        "correction": case.correction,
        "suspension": case.suspension,
        "closing_reason": case.closing_reason,
        "licence": licence_view(case, settings),
        "handover": case.handover,
        "handover_label": states.HANDOVER_LABELS.get(case.handover, case.handover),
        "handover_info": case.handover_info,
        "rating": case.rating,
        "rating_reply": case.rating_reply,
        "appointments": [
            {
                "appointment_id": a.appointment_id,
                "purpose": a.purpose,
                "hall": a.hall,
                "window": a.window,
                "date": a.date.isoformat(),
                "period": a.period,
                "status": a.status,
            }
            for a in case.appointments
        ],
        "history": [
            {k: v for k, v in entry.items() if k != "data_text"}
            for entry in history_view(case, outbox)
        ],
        "originals": originals.view(case),
        "actions": [a.name for a in actions.available_actions(case)],
    }


def action_defaults(session: Session, case: BureauCase) -> dict[str, dict[str, str]]:
    """Values the console pre-fills in each action's form."""
    # By the application: a renewal's term runs on from the earlier one (applications.py).
    name, valid_from, valid_to = actions.approval_terms(session, case)
    return {
        "approve": {
            "licence_name": name,
            "valid_from": valid_from.isoformat(),
            "valid_to": valid_to.isoformat() if valid_to else "",
        },
        "deny": {"remedy": actions.DEFAULT_REMEDY},
        "ready-for-pickup": {"hall": actions.default_hall(session, case)},
        "ship": {"carrier": "EMS"},
        "deliver": {"signed_at": utcnow().astimezone(CST).strftime("%Y-%m-%dT%H:%M")},
        "originals-received": {"received_at": utcnow().astimezone(CST).strftime("%Y-%m-%dT%H:%M")},
        "inspection": {"date": (today_cst() + timedelta(days=3)).isoformat()},
    }


def procedure_view(case: BureauCase) -> dict[str, Any]:
    """The 补正 request in force and the clock, as the console shows them."""
    suspension = case.suspension
    correction = case.correction if case.status == states.Status.CORRECTION_REQUIRED else None
    return {
        "correction": correction,
        "suspended": suspension,
        "suspended_label": states.CLOCK_REASONS.get(str((suspension or {}).get("reason_code")), "")
        if suspension
        else "",
        "rounds": (case.correction or {}).get("rounds", 0),
    }


def consultation_view(consultation: Consultation) -> dict[str, Any]:
    return {
        "consultation_id": consultation.consultation_ref,
        "case_no": consultation.case_no,
        "kind": consultation.kind,
        "kind_label": CONSULTATION_KINDS.get(consultation.kind, consultation.kind),
        "subject": consultation.subject,
        "body": consultation.body,
        "contact": consultation.contact,
        "received_at": _iso(consultation.received_at),
        "answer": consultation.answer,
        "answered_at": _iso(consultation.answered_at),
        "answered_by": consultation.answered_by,
    }


def outbox_view(message: OutboxEvent) -> dict[str, Any]:
    return {
        "id": message.id,
        "event_id": message.event_id,
        "type": message.type,
        "case_no": message.case_no,
        "status": message.status,
        "status_label": OUTBOX_LABELS.get(message.status, message.status),
        "attempts": message.attempts,
        "created_at": _iso(message.created_at),
        "next_attempt_at": _iso(message.next_attempt_at) if message.status == "pending" else None,
        "last_attempt_at": _iso(message.last_attempt_at),
        "last_status": message.last_status,
        "last_error": message.last_error,
        "delivered_at": _iso(message.delivered_at),
    }


def received_view(event: ReceivedEvent) -> dict[str, Any]:
    return {
        "seq": event.id,
        "event_id": event.event_id,
        "type": event.type,
        "case_no": event.case_no,
        "received_at": _iso(event.received_at),
    }
