"""A licence over its life on the real portal and the real back office: approved, in the
wallet, renewed from the wallet inside its window (the portal's test clock moved there),
replaced, then cancelled (延续 / 变更 / 注销 / 补办)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import PDF_BYTES, valid_form
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e
FOOD = "SC0004"


def bureau_status(bureau, case_no):
    def check():
        return bureau.status(case_no)

    return check


def upload_required(portal, case_no: str, materials: list[dict]) -> None:
    for m in materials:
        if m["required"]:
            content = PDF_BYTES + f"%{case_no}{m['code']}".encode()
            answer = portal.post(
                f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                files={"file": ("m.pdf", content, "application/pdf")},
            )
            assert answer.status_code == 201, answer.text


def decide(portal, bureau, case_no: str, approval: dict) -> None:
    """The bureau accepts and approves a formally submitted case; the portal hears it."""
    wait_for(lambda: bureau.status(case_no) == "submitted", what="the bureau to receive it")
    bureau.act(case_no, "accept", {})
    wait_for(lambda: portal.case(case_no)["status"] == "accepted", what="accepted")
    bureau.act(case_no, "approve", approval)
    wait_for(lambda: portal.case(case_no)["status"] == "approved", what="approved")


def wallet(portal) -> dict:
    answer = portal.get("/api/v1/licences")
    assert answer.status_code == 200, answer.text
    return {lic["number"]: lic for lic in answer.json()["licences"]}


def test_approve_renew_from_the_wallet_replace_and_cancel(system):
    portal, bureau = system.start_both()
    portal.register()
    item = portal.http.get(f"/api/v1/items/{FOOD}").json()
    form = valid_form(item)

    # 1. A 食品经营许可 applied for, passed, accepted and approved: five years from today.
    case_no = portal.post("/api/v1/cases", json={"item_code": FOOD, "form": form}).json()["case_no"]
    upload_required(portal, case_no, item["materials"])
    assert portal.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
    wait_for(lambda: bureau.status(case_no) == "prereview", what="pre-review at the bureau")
    bureau.act(case_no, "pass", {"comment": "材料齐全"})
    wait_for(lambda: portal.case(case_no)["status"] == "prereview_passed", what="passed")
    assert portal.post(f"/api/v1/cases/{case_no}/submission").status_code == 202
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    valid_to = date(today.year + 5, today.month, 1) - timedelta(days=1)
    decide(
        portal,
        bureau,
        case_no,
        {
            "licence_number": "JY13204120000017",
            "valid_from": today.isoformat(),
            "valid_to": valid_to.isoformat(),
        },
    )

    # 2. It is in the wallet; years before expiry a renewal is not open (409, nothing made).
    mine = wallet(portal)["JY13204120000017"]
    assert mine["status"] == "valid" and mine["case_no"] == case_no
    assert "renewal" not in mine["actions"] and "cancellation" in mine["actions"]
    cases_before = len(portal.get("/api/v1/cases").json()["cases"])
    early = portal.post("/api/v1/licences/JY13204120000017/applications", json={"kind": "renewal"})
    assert early.status_code == 409, early.text
    assert "延续申请期" in early.json()["error"]["message"]
    assert len(portal.get("/api/v1/cases").json()["cases"]) == cases_before

    # 3. The portal's test clock moved to 60 days before expiry: inside 90–15 working days.
    headers = portal.headers
    system.portal_server.stop()
    inside = valid_to - timedelta(days=60)
    portal = system.start_portal(PORTAL_TEST_CLOCK_DAYS=str((inside - today).days))
    portal.headers = headers
    mine = wallet(portal)["JY13204120000017"]
    assert mine["status"] == "expiring" and "renewal" in mine["actions"]

    # The scheduled reminder: the renewal window has opened, said once, and not again
    # when the portal starts once more on the same day.
    def window_reminders() -> list[dict]:
        messages = portal.get("/api/v1/messages").json()["messages"]
        return [m for m in messages if m["type"] == "licence.reminder.window"]

    wait_for(lambda: len(window_reminders()) == 1, what="the renewal-window reminder")
    system.portal_server.stop()

    def runs() -> int:
        return system.portal_server.log.read_text().count("licence reminders checked")

    before = runs()
    portal = system.start_portal(PORTAL_TEST_CLOCK_DAYS=str((inside - today).days))
    portal.headers = headers
    wait_for(lambda: runs() > before, what="the restarted portal's first reminder run")
    assert len(window_reminders()) == 1

    # 4. Renewal from the wallet: a draft filled from the licence and the first case.
    answer = portal.post("/api/v1/licences/JY13204120000017/applications", json={"kind": "renewal"})
    assert answer.status_code == 201, answer.text
    renewal = answer.json()
    assert renewal["item_name"] == "食品经营许可（延续）"
    assert renewal["form"]["business_name"] == form["business_name"]
    assert renewal["form"]["business_address"] == form["business_address"]
    patch = portal.patch(
        f"/api/v1/cases/{renewal['case_no']}", json={"form": {"conditions_changed": "未发生变化"}}
    )
    assert patch.status_code == 200, patch.text
    upload_required(portal, renewal["case_no"], renewal["materials"])
    assert portal.post(f"/api/v1/cases/{renewal['case_no']}/submission").status_code == 202

    # 5. The bureau receives `application` renewal naming the licence, and shows it.
    wait_for(bureau_status(bureau, renewal["case_no"]), what="the renewal at the bureau")
    received = bureau.case(renewal["case_no"])
    assert received["application"]["kind"] == "renewal"
    assert received["application"]["licence"]["number"] == "JY13204120000017"
    assert received["item"]["name"] == "食品经营许可（延续）"

    # 6. Approved with the defaults: same number, a term running on from the old one.
    decide(portal, bureau, renewal["case_no"], {})
    licences = wallet(portal)
    assert list(licences) == ["JY13204120000017"]  # replaced, not one beside the other
    renewed = licences["JY13204120000017"]
    assert renewed["valid_from"] == (valid_to + timedelta(days=1)).isoformat()
    assert renewed["case_no"] == renewal["case_no"] and renewed["status"] == "valid"

    # 7. 注销 from the wallet: approved, the licence is cancelled and nothing is issued.
    answer = portal.post(
        "/api/v1/licences/JY13204120000017/applications", json={"kind": "cancellation"}
    )
    assert answer.status_code == 201, answer.text
    cancellation = answer.json()
    patch = portal.patch(
        f"/api/v1/cases/{cancellation['case_no']}", json={"form": {"cancel_reason": "终止食品经营"}}
    )
    assert patch.status_code == 200, patch.text
    upload_required(portal, cancellation["case_no"], cancellation["materials"])
    assert portal.post(f"/api/v1/cases/{cancellation['case_no']}/submission").status_code == 202
    decide(portal, bureau, cancellation["case_no"], {})
    assert bureau.case(cancellation["case_no"])["licence"] is None
    mine = wallet(portal)["JY13204120000017"]
    assert mine["status"] == "cancelled" and mine["actions"] == []

    # 8. A change of the cancelled licence: a clear 409, and no case is created.
    cases_before = len(portal.get("/api/v1/cases").json()["cases"])
    change = portal.post("/api/v1/licences/JY13204120000017/applications", json={"kind": "change"})
    assert change.status_code == 409 and "注销" in change.json()["error"]["message"]
    assert len(portal.get("/api/v1/cases").json()["cases"]) == cases_before
