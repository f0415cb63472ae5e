"""The `data` of the events the portal sends the bureau, as docs/bureau-protocol.md defines them.

Only the wire format lives here: each function turns what the portal holds into the
object an event carries. When an event is sent, and whether it may be, stays with the
use cases (cases, delivery, originals, appointments, ratings, 12345) and `states.apply`;
so the bytes the bureau receives are written in one place, and a change to them shows
up in one diff.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts import authorisations
from portal.accounts.filing import require_number
from portal.accounts.models import Account
from portal.appointments.models import Appointment
from portal.bundles.models import BundleApplication
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.models import Bundle, Hall, Item
from portal.consultations.models import Consultation
from portal.delivery.models import Delivery
from portal.licences.application import application_of
from portal.materials.models import CaseFile
from portal.originals.models import Originals
from portal.ratings.models import Rating

# originals.posted: the methods that hand the parcel to a carrier, so carry a waybill.
_POSTED_METHODS = ("courier_pickup", "dropoff")
# The address object of delivery.selected, which originals.posted reuses.
_ADDRESS_KEYS = ("recipient", "phone", "province", "city", "district", "detail", "postcode")


def applicant_of(session: Session, *, case: Case, account: Account) -> dict[str, Any]:
    """`applicant` of case.submitted / case.corrected: the enterprise and its agent under
    the authorisation, or the account itself (bureau-protocol.md v1.1)."""
    if not case.on_behalf_of_id:
        return _applicant(account)
    enterprise = session.get(Account, case.on_behalf_of_id)
    auth = session.get(authorisations.Authorisation, case.authorisation_id)
    agent = session.get(Account, case.account_id)
    assert enterprise is not None and auth is not None and agent is not None
    applicant = _applicant(enterprise)
    applicant["agent"] = {
        "name": agent.name,
        "id_number": agent.id_number,
        "phone": agent.phone,
        "verified": agent.verified,
        "authorisation": {
            "id": auth.id,
            "granted_by": enterprise.legal_rep_name or enterprise.name,
            "valid_to": auth.valid_to.isoformat(),
        },
    }
    return applicant


def _applicant(account: Account) -> dict[str, Any]:
    require_number(account)  # FilingRule.check refused it before; never file it anyway
    applicant: dict[str, Any] = {
        "kind": account.kind,
        "name": account.name,
        "id_type": account.id_type,
        "id_number": account.id_number,
        "phone": account.phone,
        # bureau-protocol.md "The applicant, as verified": null while only typed in.
        "verified": account.verified,
    }
    if account.agent_name and account.agent_id_number:
        applicant["agent"] = {
            "name": account.agent_name,
            "id_number": account.agent_id_number,
            "phone": account.phone,
        }
    return applicant


def delivery_event_data(delivery: Delivery | None) -> dict[str, Any] | None:
    """A delivery choice as `delivery.selected` carries it."""
    if delivery is None:
        return None
    if delivery.method == "pickup":
        return {"method": "pickup", "hall": delivery.hall_code}
    address = {
        "recipient": delivery.recipient,
        "phone": delivery.phone,
        "province": delivery.province,
        "city": delivery.city,
        "district": delivery.district,
        "detail": delivery.detail,
    }
    if delivery.postcode:
        address["postcode"] = delivery.postcode
    return {"method": "express", "address": address}


def bundle_reference(session: Session, *, case: Case) -> dict[str, Any]:
    """`bundle` of case.submitted: the same list of case numbers on every case of the bundle."""
    application = session.get(BundleApplication, case.bundle_application_id)
    assert application is not None
    bundle = session.get(Bundle, application.bundle_code)
    linked = session.scalars(
        select(Case).where(Case.bundle_application_id == application.id).order_by(Case.id)
    ).all()
    return {
        "code": application.bundle_code,
        "name": bundle.name if bundle else application.bundle_code,
        # A draft deleted before anything was sent is no longer part of the bundle.
        "cases": [c.case_no for c in linked if not states.deleted_draft(c)],
    }


def file_entries(case_files: list[CaseFile]) -> list[dict[str, Any]]:
    """Files of one material as the protocol's events carry them."""
    return [
        {"filename": f.filename, "content_type": f.content_type, "size": f.size, "sha256": f.sha256}
        for f in case_files
    ]


def submission_data(
    session: Session,
    *,
    case: Case,
    item: Item,
    account: Account,
    stage: str,
    files: dict[str, list[CaseFile]],
) -> tuple[dict[str, Any], set[str]]:
    """`case.submitted` of either stage, and the blobs it names (sent before it)."""
    deferred = {
        d["code"]: d["due_date"] for d in (case.commitment or {}).get("deferred_materials", [])
    }
    provided = case.provided_materials or {}
    materials = []
    blobs: set[str] = set()
    for m in item.materials:
        entry_files = file_entries(files.get(m["code"], []))
        blobs.update(f["sha256"] for f in entry_files)
        shared = provided.get(m["code"]) if not entry_files else None
        if not entry_files and m["code"] not in deferred and not shared:
            continue
        entry: dict[str, Any] = {
            "code": m["code"],
            "name": m["name"],
            "deferred": m["code"] in deferred,
            "files": entry_files,
        }
        if m["code"] in deferred:
            entry["due_date"] = deferred[m["code"]]
        if shared:
            entry["provided_by"] = dict(shared)
        materials.append(entry)
    data: dict[str, Any] = {
        "stage": stage,
        "round": max(1, case.prereview_round),
        "item": {"code": item.code, "name": item.name},
        "applicant": applicant_of(session, case=case, account=account),
        "form": case.form,
        "materials": materials,
    }
    if case.commitment and stage == "formal":
        data["commitment"] = {
            "text": case.commitment["text"],
            "signed_at": case.commitment["signed_at"],
            "kind": case.commitment["kind"],
            "deferred_materials": [
                d["code"] for d in case.commitment.get("deferred_materials", [])
            ],
        }
        if case.commitment["kind"] == "gaozhi":
            data["commitment"]["replaced_materials"] = list(
                case.commitment.get("replaced_materials", [])
            )
    # `application` (v1.1): absent for a new application.
    if application := application_of(session, case):
        data["application"] = application
    if case.bundle_application_id is not None:
        data["bundle"] = bundle_reference(session, case=case)
    delivery = session.get(Delivery, case.id)
    if delivery_data := delivery_event_data(delivery):
        data["delivery"] = delivery_data
    return data, blobs


def _materials_handed_in(
    materials: list[dict[str, Any]], files: dict[str, list[CaseFile]]
) -> tuple[list[dict[str, Any]], set[str]]:
    """Materials handed in after the submission, each with all its files as they now stand."""
    entries: list[dict[str, Any]] = []
    blobs: set[str] = set()
    for m in materials:
        entry_files = file_entries(files.get(m["code"], []))
        blobs.update(f["sha256"] for f in entry_files)
        entries.append(
            {"code": m["code"], "name": m["name"], "deferred": False, "files": entry_files}
        )
    return entries, blobs


def correction_data(
    session: Session,
    *,
    case: Case,
    account: Account,
    materials: list[dict[str, Any]],
    files: dict[str, list[CaseFile]],
) -> tuple[dict[str, Any], set[str]]:
    """`case.corrected`: the materials named in the notice, new and kept files together."""
    entries, blobs = _materials_handed_in(materials, files)
    data = {
        "round": case.correction_round,
        # Who hands in, as in case.submitted (v1.1 "The applicant, as verified").
        "applicant": applicant_of(session, case=case, account=account),
        "materials": entries,
        "form": case.form,
    }
    return data, blobs


def supplement_data(
    materials: list[dict[str, Any]], files: dict[str, list[CaseFile]]
) -> tuple[dict[str, Any], set[str]]:
    """`materials.supplemented`: only the 容缺 materials handed in this time."""
    entries, blobs = _materials_handed_in(materials, files)
    return {"materials": entries}, blobs


def withdrawal_data(reason: str) -> dict[str, Any]:
    """`case.withdrawn`."""
    return {"reason": reason}


def originals_posted_data(row: Originals) -> dict[str, Any]:
    """`originals.posted` as docs/bureau-protocol.md defines it."""
    data: dict[str, Any] = {"method": row.method, "materials": list(row.materials)}
    if row.method in _POSTED_METHODS:
        data["carrier"] = row.carrier
        data["tracking_no"] = row.tracking_no
    if row.method == "courier_pickup" and row.address:
        address = {k: row.address.get(k) for k in _ADDRESS_KEYS}
        if not address["postcode"]:
            del address["postcode"]
        data["address"] = address
    if row.method == "counter":
        data["hall"] = row.hall_code
    return data


def rating_data(rating: Rating) -> dict[str, Any]:
    """`rating.submitted`: exactly the contract's `level`, `code` and `comment` (only when
    given); the quick tags stay in the portal (bureau-protocol.md "好差评 quick tags")."""
    data: dict[str, Any] = {"level": rating.level, "code": rating.code}
    if rating.comment:
        data["comment"] = rating.comment
    return data


def appointment_booked_data(appointment: Appointment, hall: Hall) -> dict[str, Any]:
    """`appointment.booked` as docs/bureau-protocol.md documents it."""
    return {
        "appointment_id": appointment.appointment_id,
        "purpose": appointment.purpose,
        "hall": {"code": hall.code, "name": hall.name},
        "window": appointment.window,
        "date": appointment.date.isoformat(),
        "period": appointment.period,
    }


def appointment_cancelled_data(appointment: Appointment) -> dict[str, Any]:
    """`appointment.cancelled`: only the id the bureau knows the booking by."""
    return {"appointment_id": appointment.appointment_id}


def consultation_data(consultation: Consultation) -> dict[str, Any]:
    """`consultation.submitted` (12345): the question or complaint and who to answer."""
    return {
        "consultation_id": consultation.consultation_id,
        "kind": consultation.kind,
        "subject": consultation.subject,
        "body": consultation.body,
        "contact": {"name": consultation.contact_name, "phone": consultation.contact_phone},
    }
