"""`POST /v1/events`: every portal event type, idempotency, and the 404/409/422 answers."""

from __future__ import annotations

import json
import uuid

from tests.bureau.bureau_testkit import Bureau, new_case_no


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["error"]["message"])
    return body["error"]


def test_duplicate_event_id_changes_nothing(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    event_id = str(uuid.uuid4())
    first = bureau.post_event("case.withdrawn", case_no, {"reason": "重复"}, event_id=event_id)
    assert first.json() == {"status": "ok"}
    # Same id, different body: still a duplicate, the first one wins.
    again = bureau.post_event("delivery.selected", case_no, {"bogus": 1}, event_id=event_id)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}

    case = bureau.case(case_no)
    assert case["status"] == "withdrawn"
    assert case["closing_reason"] == "重复"
    received = bureau.api("GET", "/received", params={"case_no": case_no}).json()["events"]
    assert [(e["type"], e["event_id"]) for e in received][-1] == ("case.withdrawn", event_id)
    assert [e["event_id"] for e in received].count(event_id) == 1


def test_malformed_envelopes_are_422(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    good = {
        "event_id": str(uuid.uuid4()),
        "type": "case.withdrawn",
        "occurred_at": "2026-11-22T10:00:00+08:00",
        "case_no": case_no,
        "data": {"reason": "x"},
    }
    broken = [
        b"not json",
        b"[1, 2]",
        json.dumps({k: v for k, v in good.items() if k != "event_id"}).encode(),
        json.dumps({**good, "occurred_at": "2026-11-22T10:00:00"}).encode(),  # no offset
        json.dumps({**good, "occurred_at": "yesterday"}).encode(),
        json.dumps({**good, "data": "reason"}).encode(),
        json.dumps({**good, "type": "case.teleported"}).encode(),
        json.dumps({**good, "case_no": None}).encode(),
    ]
    for body in broken:
        response = bureau.post_raw(body)
        assert response.status_code == 422, body
        assert _error(response)["code"] == "invalid_event"
    assert bureau.case(case_no)["status"] == "prereview"
    # A "Z" offset is fine.
    ok = bureau.post_raw(json.dumps({**good, "occurred_at": "2026-11-22T02:00:00Z"}).encode())
    assert ok.json() == {"status": "ok"}


def test_case_submitted_needs_its_blobs(bureau: Bureau) -> None:
    data = bureau.submitted_data()
    data["materials"][0]["files"][0]["sha256"] = "0" * 64
    response = bureau.post_event("case.submitted", new_case_no(), data)
    assert response.status_code == 422
    error = _error(response)
    assert "data.materials.0.files.0.sha256" in error["fields"]

    wrong_size = bureau.submitted_data()
    wrong_size["materials"][1]["files"][0]["size"] += 1
    response = bureau.post_event("case.submitted", new_case_no(), wrong_size)
    assert response.status_code == 422


def test_case_submitted_field_errors_in_chinese(bureau: Bureau) -> None:
    data = bureau.submitted_data()
    data["stage"] = "final"
    del data["applicant"]["name"]
    response = bureau.post_event("case.submitted", new_case_no(), data)
    assert response.status_code == 422
    fields = _error(response)["fields"]
    assert fields["data.stage"] == "取值不在允许范围内"
    assert fields["data.applicant.name"] == "缺少此项"


def test_prereview_rounds_and_formal_submission(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    assert bureau.case(case_no)["status"] == "prereview"
    # Resubmitting while still in pre-review does not fit.
    again = bureau.post_event("case.submitted", case_no, bureau.submitted_data(round=2))
    assert again.status_code == 409
    assert _error(again)["code"] == "conflict"

    bureau.act(case_no, "return", {"comment": "照片不清晰", "materials": []})
    resubmitted = bureau.post_event("case.submitted", case_no, bureau.submitted_data(round=2))
    assert resubmitted.json() == {"status": "ok"}
    assert bureau.case(case_no)["round"] == 2

    # Formal submission before the pre-review passed does not fit.
    early = bureau.post_event("case.submitted", case_no, bureau.submitted_data(stage="formal"))
    assert early.status_code == 409
    bureau.act(case_no, "pass")
    formal = bureau.submitted_data(
        stage="formal",
        round=2,
        commitment={
            "text": "本人承诺在 2026-12-01 前补交场所照片。",
            "signed_at": "2026-11-22T10:00:00+08:00",
            "kind": "rongque",
            "deferred_materials": ["M02"],
        },
        delivery={"method": "pickup", "hall": "WJ-HALL-01"},
        bundle={"code": "B01", "name": "我要开餐馆", "cases": [case_no]},
    )
    del formal["round"]  # not repeated: the round the pre-review reached stays
    formal["materials"][1] = {
        "code": "M02",
        "name": "场所照片",
        "deferred": True,
        "due_date": "2026-12-01",
        "files": [],
    }
    assert bureau.post_event("case.submitted", case_no, formal).json() == {"status": "ok"}
    case = bureau.case(case_no)
    assert case["status"] == "submitted"
    assert case["round"] == 2
    assert case["commitment"]["kind"] == "rongque"
    assert case["delivery"] == {"method": "pickup", "hall": "WJ-HALL-01"}
    assert case["bundle"]["cases"] == [case_no]
    assert case["materials"][1]["deferred"] is True
    # The applicant's 身份证 number never leaves the bureau unmasked.
    assert case["applicant"]["id_number_masked"] == "3204************3X"
    assert "32041219900101123X" not in json.dumps(case)


def test_item_without_prereview_goes_straight_to_submitted(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    assert bureau.case(case_no)["status"] == "submitted"


def test_withdrawal_fits_only_before_acceptance(bureau: Bureau) -> None:
    unknown = bureau.post_event("case.withdrawn", new_case_no(), {"reason": "x"})
    assert unknown.status_code == 404
    assert _error(unknown)["code"] == "unknown_case"

    case_no = bureau.accepted_case()
    late = bureau.post_event("case.withdrawn", case_no, {"reason": "不想办了"})
    assert late.status_code == 409
    assert bureau.case(case_no)["status"] == "accepted"
    # The refused event was not recorded: the same id may be sent again later.
    assert case_no not in {
        e["case_no"]
        for e in bureau.api("GET", "/received").json()["events"]
        if e["type"] == "case.withdrawn"
    }


def test_delivery_selection(bureau: Bureau) -> None:
    case_no = bureau.accepted_case()
    express = {
        "method": "express",
        "address": {
            "recipient": "张三",
            "phone": "13800138000",
            "province": "江苏省",
            "city": "常州市",
            "district": "武进区",
            "detail": "湖塘镇人民路 1 号",
        },
    }
    assert bureau.post_event("delivery.selected", case_no, express).json()["status"] == "ok"
    assert bureau.case(case_no)["delivery"]["address"]["city"] == "常州市"
    missing = bureau.post_event("delivery.selected", case_no, {"method": "express"})
    assert missing.status_code == 422
    assert bureau.post_event("delivery.selected", new_case_no(), express).status_code == 404

    bureau.act(case_no, "approve")
    bureau.act(case_no, "ship", {"carrier": "EMS", "tracking_no": "EM123456789CN"})
    late = bureau.post_event("delivery.selected", case_no, {"method": "pickup", "hall": "H1"})
    assert late.status_code == 409


def test_rating_rules(bureau: Bureau) -> None:
    case_no = bureau.accepted_case()
    early = bureau.post_event("rating.submitted", case_no, {"level": 5, "code": 1})
    assert early.status_code == 409
    bureau.act(case_no, "approve")
    bad_code = bureau.post_event("rating.submitted", case_no, {"level": 5, "code": 5})
    assert bad_code.status_code == 422
    no_comment = bureau.post_event("rating.submitted", case_no, {"level": 2, "code": 4})
    assert no_comment.status_code == 422
    assert "comment" in _error(no_comment)["fields"]["data"]
    rated = bureau.post_event(
        "rating.submitted", case_no, {"level": 2, "code": 4, "comment": "等太久"}
    )
    assert rated.json()["status"] == "ok"
    assert bureau.case(case_no)["rating"] == {
        "level": 2,
        "code": 4,
        "label": "不满意",
        "comment": "等太久",
    }
    twice = bureau.post_event("rating.submitted", case_no, {"level": 5, "code": 1})
    assert twice.status_code == 409


def test_materials_supplemented(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    too_early = bureau.post_event(
        "materials.supplemented", case_no, {"materials": bureau.submitted_data()["materials"]}
    )
    assert too_early.status_code == 409

    case_no = bureau.accepted_case()
    photo = bureau.put_blob(b"\x89PNG new photo", "image/png")
    supplement = {"materials": [{"code": "M02", "name": "场所照片", "files": [photo]}]}
    assert bureau.post_event("materials.supplemented", case_no, supplement).json() == {
        "status": "ok"
    }
    materials = {m["code"]: m for m in bureau.case(case_no)["materials"]}
    assert materials["M02"]["files"] == [photo]
    assert materials["M02"]["deferred"] is False
    assert "supplemented_at" in materials["M02"]
    empty = bureau.post_event("materials.supplemented", case_no, {"materials": []})
    assert empty.status_code == 422


def test_appointments(bureau: Bureau) -> None:
    case_no = bureau.accepted_case()
    booking = {
        "appointment_id": "A-1001",
        "purpose": "visit",
        "hall": {"code": "WJ-HALL-01", "name": "武进区政务服务中心"},
        "window": 12,
        "date": "2026-11-25",
        "period": "am",
    }
    assert bureau.post_event("appointment.booked", case_no, booking).json()["status"] == "ok"
    again = bureau.post_event("appointment.booked", case_no, booking)
    assert again.status_code == 409
    bad = bureau.post_event("appointment.booked", case_no, {**booking, "period": "noon"})
    assert bad.status_code == 422
    [appointment] = bureau.case(case_no)["appointments"]
    assert appointment["window"] == "12"
    assert appointment["status"] == "booked"

    unknown = bureau.post_event("appointment.cancelled", case_no, {"appointment_id": "nope"})
    assert unknown.status_code == 409
    cancel = {"appointment_id": "A-1001"}
    assert bureau.post_event("appointment.cancelled", case_no, cancel).json()["status"] == "ok"
    assert bureau.post_event("appointment.cancelled", case_no, cancel).status_code == 409
    assert bureau.case(case_no)["appointments"][0]["status"] == "cancelled"


def test_consultation_submitted_and_answered(bureau: Bureau) -> None:
    question = {
        "consultation_id": 42,
        "kind": "consult",
        "subject": "食品经营许可需要哪些材料？",
        "body": "想开一家小吃店，请问需要准备什么？",
        "contact": {"name": "李四", "phone": "13900139000"},
    }
    # Without a case, and about a case the bureau never received: both are fine.
    assert bureau.post_event("consultation.submitted", None, question).json()["status"] == "ok"
    about = {**question, "consultation_id": "C-7", "kind": "complaint"}
    assert bureau.post_event("consultation.submitted", new_case_no(), about).status_code == 200
    assert bureau.post_event("consultation.submitted", None, question).status_code == 409

    listed = bureau.api("GET", "/consultations", params={"unanswered": True}).json()
    assert {c["consultation_id"] for c in listed["consultations"]} == {42, "C-7"}

    blank = bureau.api("POST", "/consultations/42/answer", {"answer": "  "})
    assert blank.status_code == 422
    answered = bureau.api("POST", "/consultations/42/answer", {"answer": "请见办事指南。"})
    assert answered.status_code == 200, answered.text
    [callback] = bureau.portal.wait_for(1)
    assert callback["type"] == "consultation.answered"
    assert callback["case_no"] is None
    # The id goes back exactly as the portal sent it (a number here).
    assert callback["data"] == {"consultation_id": 42, "answer": "请见办事指南。"}
    assert bureau.api("POST", "/consultations/42/answer", {"answer": "再答"}).status_code == 409
    assert bureau.api("POST", "/consultations/none/answer", {"answer": "x"}).status_code == 404


def test_every_event_is_in_the_case_history(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    bureau.post_event("delivery.selected", case_no, {"method": "pickup", "hall": "H1"})
    bureau.act(case_no, "accept")
    history = bureau.case(case_no)["history"]
    assert [(h["direction"], h["type"]) for h in history] == [
        ("in", "case.submitted"),
        ("in", "delivery.selected"),
        ("out", "case.accepted"),
    ]
