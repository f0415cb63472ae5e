"""Every path of a case through the real portal and the real reference back office."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from portal.clock import today_cst
from tests.conftest import PDF_BYTES
from tests.e2e.harness import wait_for
from tests.live import bureau_has, file_a_case, status_is

pytestmark = pytest.mark.e2e


def to_prereview(portal, bureau, prereview=True):
    portal.register()
    case_no, item = file_a_case(portal, prereview=prereview)
    endpoint = "prereview" if prereview else "submission"
    assert portal.post(f"/api/v1/cases/{case_no}/{endpoint}").status_code == 202
    wait_for(
        bureau_has(bureau, case_no, "prereview" if prereview else "submitted"),
        what="the bureau to receive the case",
    )
    return case_no, item


def test_pass_first_time_then_approved_with_licence(running):
    portal, bureau = running
    case_no, item = to_prereview(portal, bureau)
    received = bureau.case(case_no)
    # The bureau holds every file the event named, byte for byte.
    assert received["materials"]
    bureau.act(case_no, "pass", {"comment": "材料齐全"})
    wait_for(status_is(portal, case_no, "prereview_passed"), what="prereview_passed")
    assert portal.post(f"/api/v1/cases/{case_no}/submission").status_code == 202
    wait_for(bureau_has(bureau, case_no, "submitted"), what="formal submission at the bureau")
    bureau.act(case_no, "accept", {})
    wait_for(status_is(portal, case_no, "accepted"), what="accepted")
    case = portal.case(case_no)
    assert case["acceptance_no"] and case["due_date"]
    bureau.act(case_no, "approve", {})
    wait_for(status_is(portal, case_no, "approved"), what="approved")
    licence = wait_for(
        lambda: (portal.case(case_no)["licence"] or {}).get("download_url"), what="licence fetched"
    )
    pdf = portal.get(licence)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    issued = bureau.case(case_no)
    sha = hashlib.sha256(pdf.content).hexdigest()
    assert sha in str(issued)  # the bureau's record names the same hash


def test_returned_then_passed(running):
    portal, bureau = running
    case_no, item = to_prereview(portal, bureau)
    code = item["materials"][0]["code"]
    bureau.act(
        case_no,
        "return",
        {"comment": "请补正", "materials": [{"code": code, "comment": "请上传加盖公章的版本"}]},
    )
    wait_for(status_is(portal, case_no, "returned"), what="returned")
    case = portal.case(case_no)
    assert case["materials"][0]["comment"] == "请上传加盖公章的版本"
    r = portal.post(
        f"/api/v1/cases/{case_no}/materials/{code}/files",
        files={"file": ("v2.pdf", PDF_BYTES + b"%stamped", "application/pdf")},
    )
    assert r.status_code == 201
    assert portal.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
    wait_for(
        lambda: (lambda c: c["status"] == "prereview" and c["round"] == 2)(bureau.case(case_no)),
        what="round 2",
    )
    bureau.act(case_no, "pass", {})
    wait_for(status_is(portal, case_no, "prereview_passed"), what="passed after correction")
    types = [e["type"] for e in portal.case(case_no)["timeline"]]
    assert types.count("prereview.submitted") == 2 and "prereview.returned" in types


def test_not_accepted(running):
    portal, bureau = running
    case_no, _ = to_prereview(portal, bureau, prereview=False)
    bureau.act(case_no, "reject", {"reason": "不属于本机关受理范围"})
    wait_for(status_is(portal, case_no, "rejected"), what="rejected")
    case = portal.case(case_no)
    assert case["outcome_reason"] == "不属于本机关受理范围" and case["remedy"]


def test_accepted_inspection_approved(running):
    portal, bureau = running
    case_no, _ = to_prereview(portal, bureau, prereview=False)
    bureau.act(case_no, "accept", {})
    wait_for(status_is(portal, case_no, "accepted"), what="accepted")
    day = (today_cst() + timedelta(days=3)).isoformat()
    bureau.act(case_no, "inspection", {"date": day, "note": "请准备原件"})
    wait_for(lambda: portal.case(case_no)["inspection_date"] == day, what="inspection date")
    bureau.act(case_no, "approve", {})
    url = wait_for(
        lambda: (portal.case(case_no)["licence"] or {}).get("download_url"), what="licence"
    )
    content = portal.get(url).content
    assert hashlib.sha256(content).hexdigest() in str(bureau.case(case_no))


def test_denied(running):
    portal, bureau = running
    case_no, _ = to_prereview(portal, bureau, prereview=False)
    bureau.act(case_no, "accept", {})
    wait_for(status_is(portal, case_no, "accepted"), what="accepted")
    bureau.act(case_no, "deny", {"reason": "现场核查不符合条件"})
    wait_for(status_is(portal, case_no, "denied"), what="denied")
    case = portal.case(case_no)
    assert case["outcome_reason"] == "现场核查不符合条件" and "行政复议" in case["remedy"]
    assert portal.get(f"/api/v1/cases/{case_no}/licence").status_code == 404


def test_withdrawn(running):
    portal, bureau = running
    case_no, _ = to_prereview(portal, bureau)
    assert (
        portal.post(f"/api/v1/cases/{case_no}/withdrawal", json={"reason": "不再需要"}).status_code
        == 200
    )
    wait_for(bureau_has(bureau, case_no, "withdrawn"), what="withdrawal at the bureau")
    assert portal.case(case_no)["status"] == "withdrawn"
