"""The back office's side of the procedure after submission: 补正 requests and the clock,
through the staff API and the console, and the portal's case.corrected coming back."""

from __future__ import annotations

from datetime import timedelta

from bureau.clock import today_cst
from tests.bureau.bureau_testkit import Bureau, csrf_of, staff_login


def test_correction_request_then_corrected_back_to_submitted(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    due = (today_cst() + timedelta(days=10)).isoformat()
    body = {
        "comment": "申请材料不齐全",
        "materials": [{"code": "M02", "comment": "照片需包含门头"}],
        "due_date": due,
    }
    answer = bureau.act(case_no, "correction", body)
    assert answer["case"]["status"] == "correction_required"
    assert "accept" not in answer["case"]["actions"]
    [event] = bureau.portal.wait_for(1, case_no=case_no)
    assert event["type"] == "correction.requested"
    assert event["data"] == body
    # Twice: 409, nothing sent.
    again = bureau.api("POST", f"/cases/{case_no}/correction", body)
    assert again.status_code == 409

    # The portal hands in the corrections: the named material is replaced, back to 待受理.
    photo = bureau.put_blob(b"\x89PNG\r\n\x1a\n" + b"new-photo", "image/png")
    corrected = {
        "round": 1,
        "materials": [{"code": "M02", "name": "场所照片", "deferred": False, "files": [photo]}],
        "form": {"shop_name": "张三小吃店", "area": 45, "online": True},
    }
    response = bureau.post_event("case.corrected", case_no, corrected)
    assert response.status_code == 200, response.text
    case = bureau.case(case_no)
    assert case["status"] == "submitted"
    by_code = {m["code"]: m for m in case["materials"]}
    assert by_code["M02"]["files"][0]["sha256"] == photo["sha256"]
    assert by_code["M01"]["files"]  # untouched
    assert case["correction"]["rounds"] == 1
    # Not again from submitted: 409.
    assert bureau.post_event("case.corrected", case_no, corrected).status_code == 409
    bureau.act(case_no, "accept")


def test_correction_needs_a_named_material_of_the_case(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    empty = bureau.api("POST", f"/cases/{case_no}/correction", {"comment": "x", "materials": []})
    assert empty.status_code == 422
    unknown = bureau.api(
        "POST", f"/cases/{case_no}/correction", {"materials": [{"code": "M99", "comment": "x"}]}
    )
    assert unknown.status_code == 422
    assert bureau.case(case_no)["status"] == "submitted"


def test_suspend_resume_extend(bureau: Bureau) -> None:
    case_no = bureau.accepted_case()
    suspend = {"reason_code": "expert_review", "reason": "组织专家评审", "expected_days": "5"}
    answer = bureau.act(case_no, "suspend", suspend)
    assert "suspend" not in answer["case"]["actions"] and "resume" in answer["case"]["actions"]
    assert bureau.api("POST", f"/cases/{case_no}/suspend", suspend).status_code == 409
    assert bureau.case(case_no)["suspension"]["reason_code"] == "expert_review"
    bureau.act(case_no, "resume", {"note": "评审完成"})
    assert bureau.api("POST", f"/cases/{case_no}/resume", {}).status_code == 409
    past = {"due_date": today_cst().isoformat(), "reason": "情况复杂"}
    assert bureau.api("POST", f"/cases/{case_no}/extend", past).status_code == 422
    later = (today_cst() + timedelta(days=40)).isoformat()
    bureau.act(case_no, "extend", {"due_date": later, "reason": "情况复杂，经负责人批准"})
    bad = {"reason_code": "lunch", "reason": "x"}
    assert bureau.api("POST", f"/cases/{case_no}/suspend", bad).status_code == 422

    _, suspended, resumed, extended = bureau.portal.wait_for(4, case_no=case_no)
    assert suspended["type"] == "clock.suspended"
    assert suspended["data"] == {
        "reason_code": "expert_review",
        "reason": "组织专家评审",
        "expected_days": 5,
    }
    assert resumed["type"] == "clock.resumed" and resumed["data"] == {"note": "评审完成"}
    assert extended["type"] == "deadline.extended"
    assert extended["data"] == {"due_date": later, "reason": "情况复杂，经负责人批准"}
    assert bureau.case(case_no)["due_date"] == later


def test_clock_actions_fit_accepted_only(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    for action in ("suspend", "resume", "extend"):
        response = bureau.api("POST", f"/cases/{case_no}/{action}", {})
        assert response.status_code == 409, action


def test_console_forms_for_correction_and_clock(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    staff_login(bureau)
    page = bureau.client.get(f"/staff/cases/{case_no}")
    assert "通知补正（一次性告知）" in page.text
    token = csrf_of(page.text)
    bureau.client.post(
        f"/staff/cases/{case_no}/actions/correction",
        data={
            "csrf_token": token,
            "comment": "请补正",
            "m0_code": "M01",
            "m0_comment": "",
            "m1_code": "M02",
            "m1_comment": "照片需包含门头",
            "due_date": "",
        },
    )
    [event] = bureau.portal.wait_for(1, case_no=case_no)
    assert event["data"] == {
        "comment": "请补正",
        "materials": [{"code": "M02", "comment": "照片需包含门头"}],
    }
    assert "等待申请人提交" in bureau.client.get(f"/staff/cases/{case_no}").text

    accepted = bureau.accepted_case()
    page = bureau.client.get(f"/staff/cases/{accepted}")
    assert "暂停计时" in page.text and "延长办理期限" in page.text
    assert "专家评审" in page.text  # the reason codes, in 中文
    bureau.client.post(
        f"/staff/cases/{accepted}/actions/suspend",
        data={
            "csrf_token": csrf_of(page.text),
            "reason_code": "testing",
            "reason": "送检",
            "expected_days": "",
        },
    )
    after = bureau.client.get(f"/staff/cases/{accepted}").text
    assert "计时暂停（检验、检测、检疫）" in after and "恢复计时" in after


def test_documents_issued_on_request_and_served_as_blobs(bureau: Bureau) -> None:
    import hashlib

    case_no = bureau.new_case(stage="formal")
    body = {"materials": [{"code": "M02", "comment": "照片需包含门头"}], "notice": True}
    bureau.act(case_no, "correction", body)
    photo = bureau.put_blob(b"\x89PNG\r\n\x1a\n" + b"doc-photo", "image/png")
    corrected = {
        "round": 1,
        "materials": [{"code": "M02", "name": "场所照片", "deferred": False, "files": [photo]}],
        "form": {},
    }
    assert bureau.post_event("case.corrected", case_no, corrected).status_code == 200
    bureau.act(case_no, "accept", {"notice": True})
    later = (today_cst() + timedelta(days=60)).isoformat()
    bureau.act(case_no, "extend", {"due_date": later, "reason": "情况复杂", "notice": True})
    bureau.act(case_no, "approve", {"notice": True})
    events = bureau.portal.wait_for(4, case_no=case_no)
    names = [e["data"]["notice"]["name"] for e in events]
    assert names == ["补正材料通知书", "受理通知书", "延期通知书", "准予行政许可决定书"]
    for event in events:
        notice = event["data"]["notice"]
        assert set(notice) == {"name", "number", "filename", "content_type", "sha256"}
        assert notice["number"].endswith("号") and "〔" in notice["number"]
        served = bureau.get_blob(notice["sha256"])
        assert served.status_code == 200 and served.content.startswith(b"%PDF")
        assert hashlib.sha256(served.content).hexdigest() == notice["sha256"]
    # Without `notice`, no document: a v1 portal sees exactly the v1 fields.
    other = bureau.new_case(stage="formal")
    bureau.act(other, "reject", {"reason": "不属于本机关职权范围"})
    [rejected] = bureau.portal.wait_for(1, case_no=other)
    assert "notice" not in rejected["data"]
