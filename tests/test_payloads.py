"""The events the portal sends, field by field, against docs/bureau-protocol.md.

The field lists below are transcribed by hand from the contract's "POST /v1/events"
table and its "Additions to portal → bureau events" (docs/bureau-protocol.md); no
expectation is built with portal code. Cases are made through the citizen API, and
what is checked is the outbox row: the exact bytes the dispatcher signs and sends.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, date, datetime

from sqlalchemy import select

from portal.appointments.models import Appointment
from portal.catalogue.models import Hall
from portal.consultations.models import Consultation
from portal.exchange import payloads
from portal.exchange.models import OutboxMessage
from portal.exchange.outbox import envelope_bytes
from portal.ratings.models import Rating
from tests.conftest import PDF_BYTES, valid_form
from tests.factories import envelope, fill_everything, item_with, new_case, send

# "Envelope": every event, both directions.
ENVELOPE = {"event_id", "type", "occurred_at", "case_no", "data"}
# `case.submitted` `data`: the fields always present ...
SUBMITTED = {"stage", "round", "item", "applicant", "form", "materials"}
# ... and the optional ones (`commitment`, `delivery`; `bundle`, `application` additions).
SUBMITTED_OPTIONAL = {"commitment", "delivery", "bundle", "application"}
ITEM = {"code", "name"}
APPLICANT = {"kind", "name", "id_type", "id_number", "phone", "verified"}  # `agent` optional
VERIFIED = {"by", "level", "at"}
MATERIAL = {"code", "name", "deferred", "files"}  # `due_date`, `provided_by` optional
FILE = {"filename", "content_type", "size", "sha256"}
# `commitment` {`text`, `signed_at`} plus the additions `kind` and `deferred_materials`.
RONGQUE_COMMITMENT = {"text", "signed_at", "kind", "deferred_materials"}
# "delivery.selected": express `address`, `postcode` optional.
ADDRESS = {"recipient", "phone", "province", "city", "district", "detail"}

RFC3339_CST = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+08:00")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
DATE = re.compile(r"\d{4}-\d\d-\d\d")
PDF_FILE = {
    "filename": "scan.pdf",
    "content_type": "application/pdf",
    "size": len(PDF_BYTES),
    "sha256": hashlib.sha256(PDF_BYTES).hexdigest(),
}


def sent(db, type_: str, case_no: str) -> list[dict]:
    """The events of the case as the outbox holds them, oldest first (parsed JSON)."""
    with db.session() as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == type_, OutboxMessage.case_no == case_no)
            .order_by(OutboxMessage.id)
        ).all()
        return [json.loads(r.payload) for r in rows]


def check_envelope(event: dict, type_: str, case_no: str) -> dict:
    assert set(event) == ENVELOPE
    assert event["type"] == type_ and event["case_no"] == case_no
    # event_id: a version 4 UUID in its canonical lowercase text form.
    assert str(uuid.UUID(event["event_id"])) == event["event_id"]
    assert uuid.UUID(event["event_id"]).version == 4
    assert RFC3339_CST.fullmatch(event["occurred_at"]), event["occurred_at"]
    return event["data"]


def check_applicant(client, applicant: dict, person: dict) -> None:
    assert set(applicant) == APPLICANT  # a person filing for themselves: no `agent`
    assert applicant["kind"] == "person" and applicant["id_type"] == "RIC"
    assert applicant["name"] == person["name"]
    assert applicant["id_number"] == person["id_number"]
    assert applicant["phone"] == person["phone"]
    if client.app.state.settings.register_code_required:  # the phone was proven by SMS
        verified = applicant["verified"]
        assert set(verified) == VERIFIED
        assert verified["by"] == "sms" and verified["level"] == 1
        assert RFC3339.fullmatch(verified["at"])
    else:  # only typed in
        assert applicant["verified"] is None


def test_prereview_case_submitted_has_exactly_the_contracts_fields(client, auth, person, db):
    item = item_with(client, lambda i: i["prereview"])
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202

    [event] = sent(db, "case.submitted", case_no)
    data = check_envelope(event, "case.submitted", case_no)
    assert set(data) == SUBMITTED  # no commitment, delivery, bundle or application
    assert data["stage"] == "prereview"
    assert data["round"] == 1
    assert data["item"] == {"code": item["code"], "name": item["name"]}
    assert set(data["item"]) == ITEM
    check_applicant(client, data["applicant"], person)
    assert data["form"] == valid_form(item)
    # One entry per material with a file: each required one got the same PDF.
    required = {m["code"]: m["name"] for m in item["materials"] if m["required"]}
    assert [m["code"] for m in data["materials"]] == list(required)
    for entry in data["materials"]:
        assert set(entry) == MATERIAL
        assert entry["name"] == required[entry["code"]]
        assert entry["deferred"] is False
        assert entry["files"] == [PDF_FILE]
        assert all(set(f) == FILE for f in entry["files"])


def test_formal_case_submitted_with_rongque_and_delivery(client, auth, person, db):
    item = item_with(
        client,
        lambda i: i["express"] and any(m["deferrable"] and m["required"] for m in i["materials"]),
    )
    deferred = [m["code"] for m in item["materials"] if m["deferrable"] and m["required"]]
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no, skip_deferrable=True)
    address = {
        "recipient": "李经办",
        "phone": "13912345678",
        "province": "江苏省",
        "city": "常州市",
        "district": "武进区",
        "detail": "湖塘镇人民中路 88 号",
    }
    chosen = client.put(
        f"/api/v1/cases/{case_no}/delivery",
        json={"method": "express", "address": address},
        headers=auth,
    )
    assert chosen.status_code == 200, chosen.text
    if item["prereview"]:  # pre-review lets deferrable materials wait too
        assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
        assert send(client, envelope(case_no, "prereview.passed", {})).status_code == 200
    submitted = client.post(
        f"/api/v1/cases/{case_no}/submission",
        json={"commitment": {"deferred_materials": deferred, "accepted": True}},
        headers=auth,
    )
    assert submitted.status_code == 202, submitted.text

    event = sent(db, "case.submitted", case_no)[-1]
    data = check_envelope(event, "case.submitted", case_no)
    assert set(data) == SUBMITTED | {"commitment", "delivery"}
    assert not set(data) & (SUBMITTED_OPTIONAL - {"commitment", "delivery"})
    assert data["stage"] == "formal"
    assert data["round"] == 1
    check_applicant(client, data["applicant"], person)
    commitment = data["commitment"]
    assert set(commitment) == RONGQUE_COMMITMENT
    assert commitment["kind"] == "rongque"
    assert commitment["deferred_materials"] == deferred
    assert isinstance(commitment["text"], str) and commitment["text"]
    assert RFC3339_CST.fullmatch(commitment["signed_at"]), commitment["signed_at"]
    by_code = {m["code"]: m for m in data["materials"]}
    for code in deferred:
        # A deferred material: `deferred` true, no files, and the promised `due_date`.
        assert set(by_code[code]) == MATERIAL | {"due_date"}
        assert by_code[code]["deferred"] is True and by_code[code]["files"] == []
        assert DATE.fullmatch(by_code[code]["due_date"])
    for code, entry in by_code.items():
        if code not in deferred:
            assert set(entry) == MATERIAL and entry["deferred"] is False
            assert entry["files"] == [PDF_FILE]
    # `delivery` as in delivery.selected; no postcode was given, so none is sent.
    assert data["delivery"] == {"method": "express", "address": address}
    assert set(data["delivery"]["address"]) == ADDRESS
    # Chosen while a draft: the choice travels inside case.submitted, not on its own.
    assert sent(db, "delivery.selected", case_no) == []


def test_case_withdrawn_carries_only_the_reason(client, auth, db):
    item = item_with(client, lambda i: i["prereview"])
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
    response = client.post(
        f"/api/v1/cases/{case_no}/withdrawal",
        json={"reason": "信息填写有误，重新申请"},
        headers=auth,
    )
    assert response.status_code in (200, 202), response.text
    [event] = sent(db, "case.withdrawn", case_no)
    assert check_envelope(event, "case.withdrawn", case_no) == {"reason": "信息填写有误，重新申请"}


# The `data` of the contract's "Examples, one per event" (docs/bureau-protocol.md,
# "Portal → bureau"), copied byte for byte: the outbox writes compact JSON, as they are.
RATING_EXAMPLE = '{"level":2,"code":4,"comment":"等待时间太长"}'
BOOKED_EXAMPLE = (
    '{"appointment_id":"0b5c2d1e-7f8a-4c3b-9e21-6d4f0a9b8c7d","purpose":"visit",'
    '"hall":{"code":"WJ-ZWZX","name":"武进区政务服务中心"},"window":1,"date":"2026-11-25",'
    '"period":"am"}'
)
CANCELLED_EXAMPLE = '{"appointment_id":"0b5c2d1e-7f8a-4c3b-9e21-6d4f0a9b8c7d"}'


def wire_data(type_: str, data: dict) -> str:
    """The `data` of the event exactly as the outbox stores and the dispatcher signs it."""
    wire = envelope_bytes(
        event_id=str(uuid.uuid4()),
        type=type_,
        occurred_at=datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
        case_no="WJ20261123000003",
        data=data,
    )
    _, sep, tail = wire.partition(',"data":')
    assert sep and tail.endswith("}")
    return tail[:-1]


def booking() -> Appointment:
    return Appointment(
        appointment_id="0b5c2d1e-7f8a-4c3b-9e21-6d4f0a9b8c7d",
        purpose="visit",
        hall_code="WJ-ZWZX",
        window=1,
        date=date(2026, 11, 25),
        period="am",
        status="booked",
    )


def test_rating_submitted_is_the_contracts_example():
    rating = Rating(level=2, code=4, comment="等待时间太长", tags=["等待时间长"])
    data = payloads.rating_data(rating)
    assert wire_data("rating.submitted", data) == RATING_EXAMPLE
    # The quick tags stay in the portal ("好差评 quick tags"): the contract has no field.
    assert set(data) == {"level", "code", "comment"}


def test_rating_submitted_without_a_comment_carries_level_and_code_only():
    # `code` is GB/T 39046's: 6 − `level`, so 5 非常满意 is code 1; no comment, no field.
    rating = Rating(level=5, code=1, comment="", tags=[])
    assert wire_data("rating.submitted", payloads.rating_data(rating)) == '{"level":5,"code":1}'


def test_appointment_booked_is_the_contracts_example():
    hall = Hall(code="WJ-ZWZX", name="武进区政务服务中心", address="武进区延政中大道 1 号")
    data = payloads.appointment_booked_data(booking(), hall)
    assert wire_data("appointment.booked", data) == BOOKED_EXAMPLE
    # `window`: the window number at the hall, an integer; `date`: YYYY-MM-DD.
    assert type(data["window"]) is int and data["date"] == "2026-11-25"


def test_appointment_cancelled_carries_only_the_id():
    cancelled = booking()
    cancelled.status = "cancelled"
    data = payloads.appointment_cancelled_data(cancelled)
    assert wire_data("appointment.cancelled", data) == CANCELLED_EXAMPLE


# docs/bureau-protocol.md, the worked `consultation.submitted` example.
CONSULTATION_EXAMPLE = (
    '{"consultation_id":"5d0e6f3a-2b1c-4d8e-a7f6-1c2b3a4d5e6f","kind":"consult",'
    '"subject":"能否网上办理","body":"请问食品经营许可能否全程网上办理？",'
    '"contact":{"name":"李经办","phone":"13912345678"}}'
)


def test_consultation_submitted_is_the_contracts_example():
    question = Consultation(
        consultation_id="5d0e6f3a-2b1c-4d8e-a7f6-1c2b3a4d5e6f",
        kind="consult",
        subject="能否网上办理",
        body="请问食品经营许可能否全程网上办理？",
        contact_name="李经办",
        contact_phone="13912345678",
    )
    data = payloads.consultation_data(question)
    assert wire_data("consultation.submitted", data) == CONSULTATION_EXAMPLE
