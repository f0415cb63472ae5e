"""One case view: what the case page and the case answer of the API show, loaded once.

`load` reads everything a case shows with one statement per table that can hold many
rows (files, timeline) and one for the rows a case has at most one of (delivery,
rating, originals); `case_view` shapes it for the API, `page_context` for the pages.
Both read `states.permissions`, so page and API decide what to show the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.appointments import service as appointments
from portal.appointments.models import Appointment
from portal.cases import service, states
from portal.cases.forms import missing_fields
from portal.cases.models import Case, TimelineEntry
from portal.catalogue.models import Item
from portal.catalogue.service import halls_of
from portal.clock import is_working_day, to_cst, today_cst
from portal.delivery.models import Delivery
from portal.delivery.service import delivery_info_given
from portal.exchange.payloads import bundle_reference, delivery_event_data
from portal.library import service as library
from portal.licences import kinds
from portal.licences.application import application_of
from portal.materials.models import CaseFile
from portal.originals.carriers import tracking_url
from portal.originals.models import Originals
from portal.originals.service import originals_info
from portal.originals.views import originals_view
from portal.ratings.models import Rating
from portal.ratings.service import rating_info
from portal.status.service import receipt_info


@dataclass(frozen=True)
class CaseRecords:
    """The rows one case shows, read together (see `load`)."""

    case: Case
    item: Item
    may: states.Permissions
    files: dict[str, list[CaseFile]]
    timeline: list[TimelineEntry]  # newest first
    delivery: Delivery | None
    rating: Rating | None
    originals: Originals | None
    appointments: list[Appointment]  # newest first

    @property
    def licence(self) -> dict[str, Any] | None:
        return issued_licence(self.case)


def issued_licence(case: Case) -> dict[str, Any] | None:
    """The licence the case issued, once approved (a 注销 issues none): page, API, download."""
    return case.licence if case.status == states.APPROVED else None


def load(session: Session, *, case: Case, item: Item) -> CaseRecords:
    """Every row the case shows: files, timeline, and its delivery, rating and originals."""
    timeline = service.timeline(session, case=case)
    # The rows a case has at most one of ride along with its files in one statement: a
    # row per file (one when it has none), each repeating the same delivery, rating and
    # originals, so the result grows with the files only, never files x anything.
    rows = session.execute(
        select(Delivery, Rating, Originals, CaseFile)
        .select_from(Case)
        .outerjoin(Delivery, Delivery.case_id == Case.id)
        .outerjoin(Rating, Rating.case_id == Case.id)
        .outerjoin(Originals, Originals.case_id == Case.id)
        .outerjoin(CaseFile, CaseFile.case_id == Case.id)
        .where(Case.id == case.id)
        .order_by(CaseFile.id)
    ).all()
    delivery, rating, originals, _ = rows[0]
    files: dict[str, list[CaseFile]] = defaultdict(list)
    for *_, case_file in rows:
        if case_file is not None:
            files[case_file.material_code].append(case_file)
    # Booking is the only way an appointment comes to be, and it records
    # appointment.booked in the same transaction: a case without that entry has none.
    booked = any(e.type == "appointment.booked" for e in timeline)
    return CaseRecords(
        case=case,
        item=item,
        may=states.permissions(case, item),
        files=files,
        timeline=timeline,
        delivery=delivery,
        rating=rating,
        originals=originals,
        appointments=appointments.case_appointments(session, case=case) if booked else [],
    )


# --- the API's case answer --------------------------------------------------------------


def case_view(session: Session, *, case: Case, item: Item) -> dict[str, Any]:
    """A case as the JSON API returns it: always the same shape, whatever the status."""
    return records_view(session, load(session, case=case, item=item))


def records_view(session: Session, records: CaseRecords) -> dict[str, Any]:
    """The API's case answer from the loaded rows."""
    case, item, files = records.case, records.item, records.files
    corrections = case.corrections or {}
    deferred_materials = (case.commitment or {}).get("deferred_materials", [])
    deferred = {d["code"]: d["due_date"] for d in deferred_materials}
    supplemented = {d["code"]: d.get("supplemented_at") for d in deferred_materials}
    provided = case.provided_materials or {}
    licence = None
    if records.licence:
        licence = {
            "number": records.licence.get("number"),
            "name": records.licence.get("name"),
            "valid_from": records.licence.get("valid_from"),
            "valid_to": records.licence.get("valid_to"),
            "download_url": f"/api/v1/cases/{case.case_no}/licence"
            if records.licence.get("stored")
            else None,
        }
    return {
        "case_no": case.case_no,
        "item_code": case.item_code,
        "item_name": item.name,
        "application": _application_view(session, case),
        "status": case.status,
        "status_label": states.STATUS_LABELS[case.status],
        "created_at": case.created_at,
        "submitted_at": case.submitted_at,
        "due_date": case.due_date,
        "due_date_provisional": bool(case.due_date and case.due_date_provisional),
        "acceptance_no": case.acceptance_no,
        "form": case.form,
        "timeline": [
            {"at": e.at, "type": e.type, "label": e.label, "detail": e.detail}
            for e in records.timeline
        ],
        "materials": [
            {
                "code": m["code"],
                "name": m["name"],
                "required": m["required"],
                "deferrable": bool(m.get("deferrable")),
                "deferred_until": deferred.get(m["code"]),
                "supplemented_at": supplemented.get(m["code"]),
                "provided_by": provided.get(m["code"]),
                "comment": corrections.get(m["code"]),
                "files": [
                    {
                        "id": f.id,
                        "filename": f.filename,
                        "content_type": f.content_type,
                        "size": f.size,
                        "sha256": f.sha256,
                    }
                    for f in files.get(m["code"], [])
                ],
            }
            for m in item.materials
        ],
        "review_comment": case.review_comment,
        "inspection_date": case.inspection_date,
        "correction": correction_view(case) if records.may.correct else None,
        "clock": clock_view(case),
        "documents": documents_view(case),
        "outcome_reason": case.outcome_reason,
        "remedy": case.remedy,
        "delivery": _delivery_view(records.delivery),
        "originals": originals_view(item, records.originals),
        "licence": licence,
        "rating": _rating_view(records.rating),
        "commitment": _commitment_view(case.commitment),
        "bundle": _bundle(session, case),
    }


def _bundle(session: Session, case: Case) -> dict[str, Any] | None:
    """The 一件事 a case was filed in, as page and API name it."""
    if case.bundle_application_id is None:
        return None
    return bundle_reference(session, case=case) | {"application_id": case.bundle_application_id}


def _application_view(session: Session, case: Case) -> dict[str, Any] | None:
    application = application_of(session, case)
    if application is None:
        return None
    return application | {"kind_label": kinds.KIND_LABELS[application["kind"]]}


def _commitment_view(commitment: dict[str, Any] | None) -> dict[str, Any] | None:
    if not commitment:
        return None
    return {
        "kind": commitment["kind"],
        "text": commitment["text"],
        "signed_at": commitment["signed_at"],
        "deferred_materials": [
            {
                "code": d["code"],
                "due_date": d["due_date"],
                "due_date_provisional": bool(d.get("provisional")),
                "supplemented_at": d.get("supplemented_at"),
            }
            for d in commitment.get("deferred_materials", [])
        ],
        "replaced_materials": list(commitment.get("replaced_materials", [])),
    }


def _delivery_view(delivery: Delivery | None) -> dict[str, Any] | None:
    if delivery is None:
        return None
    view = delivery_event_data(delivery) or {}
    view.update(
        {
            "carrier": delivery.carrier,
            "tracking_no": delivery.tracking_no,
            "tracking_url": tracking_url(delivery.carrier, delivery.tracking_no),
            "pickup_code": delivery.pickup_code,
            "shipped_at": delivery.shipped_at,
            "ready_at": delivery.ready_at,
            "delivered_at": delivery.delivered_at,
        }
    )
    return view


def _rating_view(rating: Rating | None) -> dict[str, Any] | None:
    if rating is None:
        return None
    return {
        "level": rating.level,
        "code": rating.code,
        "comment": rating.comment,
        "created_at": rating.created_at,
        "reply": rating.reply,
    }


def correction_view(case: Case) -> dict[str, Any] | None:
    """The one-time notice of a 待补正 case as the API shows it."""
    if not case.correction:
        return None
    c = case.correction
    return {
        "requested_at": c["requested_at"],
        "due_date": c.get("due_date"),
        "comment": c.get("comment") or "",
        "materials": [{"code": k, "comment": v} for k, v in (case.corrections or {}).items()],
        "ask_by": c.get("ask_by"),
        "late": bool(c.get("late")),
    }


def clock_view(case: Case) -> dict[str, Any] | None:
    """Whether the statutory clock runs; null before acceptance."""
    if case.accepted_at is None:
        return None
    s = case.suspension
    return {
        "running": s is None and case.status == states.ACCEPTED,
        "suspended_since": s["since"] if s else None,
        "reason_code": s["reason_code"] if s else None,
        "reason": s["reason"] if s else None,
        "expected_days": s.get("expected_days") if s else None,
    }


def documents_view(case: Case) -> list[dict[str, Any]]:
    """The documents (文书) the bureau issued, oldest first; a link once the file is held."""
    return [
        {
            "name": d["name"],
            "number": d["number"],
            "at": d["at"],
            "download_url": f"/api/v1/cases/{case.case_no}/documents/{quote(d['number'], safe='')}"
            if d.get("stored")
            else None,
        }
        for d in case.documents or []
    ]


# --- the case pages ---------------------------------------------------------------------


def page_context(session: Session, *, case: Case, item: Item, account: Account) -> dict[str, Any]:
    """What a case page (case, review, submitted, withdraw, 补交, 补正) shows and allows."""
    records = load(session, case=case, item=item)
    files, may = records.files, records.may
    missing_form = missing_fields(item.fields, case.form)
    required = [m for m in item.materials if m["required"]]
    uploaded_required = [m for m in required if files.get(m["code"])]
    deferred = {
        d["code"]: d["due_date"] for d in (case.commitment or {}).get("deferred_materials", [])
    }
    outstanding = service.outstanding_deferred(case)
    materials = []
    for m in item.materials:
        materials.append(
            {
                **m,
                "files": files.get(m["code"], []),
                "comment": (case.corrections or {}).get(m["code"]),
                "deferred_until": deferred.get(m["code"]),
                "outstanding": m["code"] in outstanding,
            }
        )
    corrections = [m for m in materials if m["comment"]]
    extras = _commitment_bundle_and_booking_context(session, records=records, account=account)
    for m in materials:
        m["provided_by"] = extras["provided"].get(m["code"])
        m["offers"] = extras["offers"].get(m["code"], [])
        m["gaozhi_replaceable"] = m["code"] in extras["gaozhi_replaced"]
    # Filed by an agent for an enterprise: the enterprise applies, the agent files.
    applicant, filer = account, None
    if case.on_behalf_of_id:
        applicant = session.get(Account, case.on_behalf_of_id) or account
        filer = session.get(Account, case.account_id)
    halls = halls_of(session, item)
    return {
        "applicant": applicant,
        "filer": filer,
        "case": case,
        "item": item,
        "status_label": states.STATUS_LABELS[case.status],
        "status_tag": states.STATUS_TAGS[case.status],
        "editable": may.edit,
        "finished": case.status in states.FINISHED,
        "may": may,
        "can_withdraw": may.withdraw,
        "can_prereview": may.prereview,
        "can_formal": may.formal,
        "form_done": not missing_form,
        "materials": materials,
        "corrections": corrections,
        "correction": _correction_context(case, item, files) if may.correct else None,
        # Only these may change while 待补正; the others stay as submitted.
        "correction_materials": corrections if may.correct else [],
        "clock": _clock_context(case),
        "documents": [
            {**d, "page_url": d["download_url"].removeprefix("/api/v1")} if d["download_url"] else d
            for d in documents_view(case)
        ],
        "required_count": len(required),
        "uploaded_required_count": len(uploaded_required),
        "outstanding_deferred": [m for m in materials if m["outstanding"]],
        "answers": service.answers(item, case),
        "timeline": records.timeline,
        "stages": stages(case, (entry.type for entry in records.timeline)),
        "due": service.due_info(case),
        "delivery": records.delivery,
        "delivery_open": may.delivery,
        "halls": halls,
        "rating": records.rating,
        # After the decision: the licence's way home, 好差评 and the receipt.
        "delivery_info": delivery_info_given(
            session, case=case, item=item, delivery=records.delivery
        ),
        "originals_info": originals_info(session, case=case, item=item, row=records.originals),
        "rating_info": rating_info(case, records.rating),
        "receipt": receipt_info(case, item),
        "licence": records.licence,
        "rongque_text": service.RONGQUE_TEXT,
        "defer_days": service.DEFER_WORKING_DAYS,
        **extras,
    }


def stages(case: Case, entry_types: Iterable[str]) -> list[states.Stage]:
    """The stepper's stages from the case and its timeline's entry types (the case page
    and the public status page)."""
    seen = set(entry_types)
    return states.stage_of(
        case, delivered="licence.delivered" in seen, formal="formal.submitted" in seen
    )


def _correction_context(case: Case, item: Item, files: dict) -> dict[str, Any]:
    """The 补正 request of a 待补正 case: what to change, by when, and what §32 says."""
    c = case.correction or {}
    missing = service.correction_missing(case, item, files)
    return {
        "comment": c.get("comment") or "",
        "requested_at": datetime.fromisoformat(c["requested_at"])
        if c.get("requested_at")
        else None,
        "due_date": date.fromisoformat(c["due_date"]) if c.get("due_date") else None,
        "ask_by": date.fromisoformat(c["ask_by"]) if c.get("ask_by") else None,
        "late": bool(c.get("late")),
        "submitted_on": to_cst(case.submitted_at).date() if case.submitted_at else None,
        "missing": missing,
        "ready": not missing,
        "round": c.get("round", case.correction_round + 1),
    }


def _clock_context(case: Case) -> dict[str, Any] | None:
    """计时暂停（专家评审）since …: the clock of an accepted case, worded for the page."""
    view = clock_view(case)
    if view is None or view["running"] or not view["suspended_since"]:
        return None
    since = to_cst(datetime.fromisoformat(view["suspended_since"]))
    label = states.CLOCK_REASONS.get(view["reason_code"], "其他")
    return {
        "label": f"计时暂停（{label}）",
        "since": since.date(),
        "reason": view["reason"],
        "expected_days": view["expected_days"],
    }


def _commitment_bundle_and_booking_context(
    session: Session, *, records: CaseRecords, account: Account
) -> dict[str, Any]:
    """Bundle link, 告知承诺, 补交 task, library offers and appointments of the case page."""
    case, item, files = records.case, records.item, records.files
    provided = case.provided_materials or {}
    offers: dict[str, list] = {}
    if records.may.edit:
        wanted = [m for m in item.materials if m["code"] not in provided]
        # One query for every material's kind, then each material drops the files it has.
        found = library.offers_by_kind(session, account=account, kinds={m["kind"] for m in wanted})
        for m in wanted:
            have = {f.sha256 for f in files.get(m["code"], [])}
            offers[m["code"]] = [d for d in found.get(m["kind"], []) if d.sha256 not in have]
    outstanding = service.outstanding_deferred(case)
    provisional = {
        d["code"]
        for d in (case.commitment or {}).get("deferred_materials", [])
        if d.get("provisional")
    }
    today = today_cst()
    supplement = [
        {
            "material": m,
            "due_date": date.fromisoformat(outstanding[m["code"]]),
            "overdue": date.fromisoformat(outstanding[m["code"]]) < today,
            "provisional": m["code"] in provisional,
            "files": files.get(m["code"], []),
        }
        for m in item.materials
        if m["code"] in outstanding
    ]
    replaced = set(service.gaozhi_replaced(item))
    live = {a.purpose: a for a in reversed(records.appointments) if a.status == "booked"}
    return {
        "provided": provided,
        "offers": offers,
        "gaozhi_replaced": replaced,
        "can_gaozhi": records.may.gaozhi,
        "gaozhi_materials": [m for m in item.materials if m["code"] in replaced],
        "supplement": supplement if states.allowed(case, "materials.supplemented") else [],
        "supplement_ready": [s for s in supplement if s["files"]],
        "appointments": [appointments.appointment_view(session, a) for a in records.appointments],
        "book_purposes": [
            (p, appointments.PURPOSES[p])
            for p in appointments.purposes_given(case, item, records.delivery)
            if (booked := live.get(p)) is None
            or not is_working_day(booked.date)  # a later notice closed that day: rebook
        ],
        "bundle": _bundle(session, case),
    }
