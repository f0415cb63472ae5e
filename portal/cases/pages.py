"""What a case page shows and allows, computed in Python so templates only display."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.cases import service, states
from portal.cases.forms import missing_fields
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.catalogue.service import halls_of
from portal.clock import is_working_day, to_cst, today_cst
from portal.delivery.models import Delivery
from portal.delivery.service import delivery_info
from portal.originals.service import originals_info
from portal.ratings.models import Rating
from portal.ratings.service import rating_info
from portal.status.service import receipt_info


def case_context(session: Session, *, case: Case, item: Item, account: Account) -> dict[str, Any]:
    files = service.files_by_material(session, case=case)
    missing_form = missing_fields(item.fields, case.form)
    required = [m for m in item.materials if m["required"]]
    uploaded_required = [m for m in required if files.get(m["code"])]
    deferred = {
        d["code"]: d["due_date"] for d in (case.commitment or {}).get("deferred_materials", [])
    }
    delivery = session.get(Delivery, case.id)
    rating = session.get(Rating, case.id)
    editable = case.status in states.EDITABLE
    materials = []
    for m in item.materials:
        materials.append(
            {
                **m,
                "files": files.get(m["code"], []),
                "comment": (case.corrections or {}).get(m["code"]),
                "deferred_until": deferred.get(m["code"]),
                "outstanding": m["code"] in service.outstanding_deferred(case),
            }
        )
    corrections = [m for m in materials if m["comment"]]
    extras = _commitment_bundle_and_booking_context(
        session, case=case, item=item, account=account, files=files
    )
    for m in materials:
        m["provided_by"] = extras["provided"].get(m["code"])
        m["offers"] = extras["offers"].get(m["code"], [])
        m["gaozhi_replaceable"] = m["code"] in extras["gaozhi_replaced"]
    may = states.permissions(case, item)
    # Filed by an agent for an enterprise: the enterprise applies, the agent files.
    applicant, filer = account, None
    timeline = service.timeline(session, case=case)
    if case.on_behalf_of_id:
        applicant = session.get(Account, case.on_behalf_of_id) or account
        filer = session.get(Account, case.account_id)
    return {
        "applicant": applicant,
        "filer": filer,
        "case": case,
        "item": item,
        "status_label": states.STATUS_LABELS[case.status],
        "status_tag": states.STATUS_TAGS[case.status],
        "editable": editable,
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
            for d in service.documents_view(case)
        ],
        "required_count": len(required),
        "uploaded_required_count": len(uploaded_required),
        "outstanding_deferred": [m for m in materials if m["outstanding"]],
        "answers": service.answers(item, case),
        "timeline": timeline,
        "stages": stages(case, (entry.type for entry in timeline)),
        "due": service.due_info(case),
        "delivery": delivery,
        "delivery_open": may.delivery,
        "halls": halls_of(session, item),
        "rating": rating,
        # After the decision: the licence's way home, 好差评 and the receipt.
        "delivery_info": delivery_info(session, case=case, item=item),
        "originals_info": originals_info(session, case=case, item=item),
        "rating_info": rating_info(case, rating),
        "receipt": receipt_info(case, item),
        "licence": case.licence if case.status == states.APPROVED else None,
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
    view = service.clock_view(case)
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
    session: Session, *, case: Case, item: Item, account: Account, files: dict
) -> dict[str, Any]:
    """Bundle link, 告知承诺, 补交 task, library offers and appointments of the case page."""
    from portal.appointments import service as appointments
    from portal.library import service as library

    editable = case.status in states.EDITABLE
    provided = case.provided_materials or {}
    offers = {}
    if editable:
        for m in item.materials:
            if m["code"] in provided:
                continue
            have = {f.sha256 for f in files.get(m["code"], [])}
            offers[m["code"]] = library.offers_for(
                session, account=account, kind=m["kind"], exclude=have
            )
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
    bundle = None
    if case.bundle_application_id is not None:
        bundle = service.bundle_reference(session, case=case)
        bundle["application_id"] = case.bundle_application_id
    replaced = set(service.gaozhi_replaced(item))
    return {
        "provided": provided,
        "offers": offers,
        "gaozhi_replaced": replaced,
        "can_gaozhi": states.permissions(case, item).gaozhi,
        "gaozhi_materials": [m for m in item.materials if m["code"] in replaced],
        "supplement": supplement if states.allowed(case, "materials.supplemented") else [],
        "supplement_ready": [s for s in supplement if s["files"]],
        "appointments": [
            appointments.appointment_view(session, a)
            for a in appointments.case_appointments(session, case=case)
        ],
        "book_purposes": [
            (p, appointments.PURPOSES[p])
            for p in appointments.purposes_for(session, case=case, item=item)
            if (live := appointments.live_appointment(session, case=case, purpose=p)) is None
            or not is_working_day(live.date)  # a later notice closed that day: rebook
        ],
        "bundle": bundle,
    }
