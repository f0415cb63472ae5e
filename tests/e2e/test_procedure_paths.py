"""The procedure after submission through the real portal and the real back office:
补正 after the formal submission, then the clock (suspended, resumed, extended), then approval.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest

from portal.clock import add_working_days, is_working_day, today_cst
from portal.exchange import signing
from tests.conftest import PDF_BYTES
from tests.e2e.harness import SECRET, wait_for
from tests.live import bureau_has, file_a_case, status_is

pytestmark = pytest.mark.e2e


def as_bureau(portal, case_no: str, type_: str, data: dict, day: date):
    """A callback signed with the bureau's secret, at a chosen date.

    The back office stamps its events with the wall clock, so no weekend can pass inside
    a test; this leg is sent by the test through the same signed endpoint instead.
    """
    body = {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": f"{day.isoformat()}T10:00:00+08:00",
        "case_no": case_no,
        "data": data,
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    return portal.http.post(
        "/api/bureau/v1/events",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Bureau-Signature": signing.sign(SECRET, raw),
        },
    )


def next_weekday(day: date, weekday: int) -> date:
    day += timedelta(days=1)
    while day.weekday() != weekday or not is_working_day(day):
        day += timedelta(days=1)
    return day


def test_correction_then_clock_then_approved(running):
    portal, bureau = running
    portal.register()
    case_no, item = file_a_case(portal, prereview=False)
    assert portal.post(f"/api/v1/cases/{case_no}/submission").status_code == 202
    wait_for(bureau_has(bureau, case_no, "submitted"), what="formal submission at the bureau")

    # 补正: the bureau names one material; only that one may change.
    required = [m for m in item["materials"] if m["required"]]
    named = required[0]["code"]
    bureau.act(
        case_no,
        "correction",
        {
            "comment": "申请材料不符合法定形式",
            "materials": [{"code": named, "comment": "请加盖公章"}],
        },
    )
    wait_for(status_is(portal, case_no, "correction_required"), what="correction_required")
    case = portal.case(case_no)
    assert case["correction"]["materials"] == [{"code": named, "comment": "请加盖公章"}]
    if len(required) > 1:
        other = portal.post(
            f"/api/v1/cases/{case_no}/materials/{required[1]['code']}/files",
            files={"file": ("x.pdf", PDF_BYTES + b"%other", "application/pdf")},
        )
        assert other.status_code == 409
    assert portal.post(f"/api/v1/cases/{case_no}/correction").status_code == 422
    stamped = PDF_BYTES + b"%stamped"
    r = portal.post(
        f"/api/v1/cases/{case_no}/materials/{named}/files",
        files={"file": ("盖章.pdf", stamped, "application/pdf")},
    )
    assert r.status_code == 201
    assert portal.post(f"/api/v1/cases/{case_no}/correction").status_code == 202
    wait_for(bureau_has(bureau, case_no, "submitted"), what="corrections at the bureau")
    held = {m["code"]: m for m in bureau.case(case_no)["materials"]}[named]
    assert r.json()["sha256"] in {f["sha256"] for f in held["files"]}  # the blob came first
    assert bureau.case(case_no)["correction"]["rounds"] == 1

    # Accepted: the portal computes the due date.
    bureau.act(case_no, "accept", {"notice": True})
    wait_for(status_is(portal, case_no, "accepted"), what="accepted")
    # The 受理通知书: fetched from the back office, hash-checked, downloadable by its owner.
    url = wait_for(
        lambda: (portal.case(case_no)["documents"] or [{}])[0].get("download_url"),
        what="the acceptance notice fetched",
    )
    pdf = portal.get(url)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert portal.case(case_no)["documents"][0]["name"] == "受理通知书"
    due = date.fromisoformat(portal.case(case_no)["due_date"])
    assert portal.case(case_no)["clock"]["running"] is True

    # Suspended across a weekend: Friday to the Tuesday after.
    friday = next_weekday(today_cst(), 4)
    tuesday = friday + timedelta(days=4)
    suspend = {"reason_code": "expert_review", "reason": "组织专家评审", "expected_days": 3}
    assert as_bureau(portal, case_no, "clock.suspended", suspend, friday).status_code == 200
    clock = portal.case(case_no)["clock"]
    assert clock["running"] is False and clock["reason_code"] == "expert_review"
    # A second suspension: 409, nothing changes.
    assert as_bureau(portal, case_no, "clock.suspended", suspend, friday).status_code == 409
    assert portal.case(case_no)["clock"] == clock
    assert as_bureau(portal, case_no, "clock.resumed", {}, tuesday).status_code == 200
    days = sum(is_working_day(friday + timedelta(days=i)) for i in range(4))
    moved = date.fromisoformat(portal.case(case_no)["due_date"])
    assert moved == add_working_days(due, days)
    # Resumed while running: 409, the due date stays.
    assert as_bureau(portal, case_no, "clock.resumed", {}, tuesday).status_code == 409
    assert portal.case(case_no)["due_date"] == moved.isoformat()

    # The back office's own clock actions, same day: suspend, refused twice, resume.
    bureau.act(case_no, "suspend", {"reason_code": "testing", "reason": "送检"})
    wait_for(lambda: portal.case(case_no)["clock"]["running"] is False, what="suspended")
    again = bureau.http.post(
        f"/staff/api/v1/cases/{case_no}/suspend", json={"reason_code": "testing", "reason": "x"}
    )
    assert again.status_code == 409
    bureau.act(case_no, "resume", {"note": "检测完成"})
    wait_for(lambda: portal.case(case_no)["clock"]["running"] is True, what="resumed")
    assert portal.case(case_no)["due_date"] == moved.isoformat()  # no working day passed

    # An extension not later than the due date: 409 at the portal, nothing changes.
    same = {"due_date": moved.isoformat(), "reason": "情况复杂"}
    assert as_bureau(portal, case_no, "deadline.extended", same, today_cst()).status_code == 409
    later = moved + timedelta(days=14)
    bureau.act(
        case_no, "extend", {"due_date": later.isoformat(), "reason": "情况复杂，经负责人批准"}
    )
    wait_for(
        lambda: portal.case(case_no)["due_date"] == later.isoformat(), what="the extended date"
    )
    # A correction request no longer fits an accepted case.
    late = {"materials": [{"code": named, "comment": "x"}]}
    assert as_bureau(portal, case_no, "correction.requested", late, today_cst()).status_code == 409

    bureau.act(case_no, "approve", {})
    wait_for(status_is(portal, case_no, "approved"), what="approved")
    case = portal.case(case_no)
    types = [e["type"] for e in case["timeline"]]
    for t in ("correction.requested", "case.corrected", "clock.suspended", "deadline.extended"):
        assert t in types, t
    assert types.count("clock.suspended") == 2 and types.count("clock.resumed") == 2
    assert case["due_date"] == later.isoformat()
