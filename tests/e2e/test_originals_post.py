"""材料寄递 on real servers: the citizen posts the originals on the portal's pages, the back
office shows it to staff, the clerk signs for them, and the case page says 已签收."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.e2e.harness import wait_for
from tests.live import bureau_has, draft_with_materials, status_is

pytestmark = pytest.mark.e2e


def originals_item(portal) -> dict:
    for summary in portal.http.get("/api/v1/items").json()["items"]:
        item = portal.http.get(f"/api/v1/items/{summary['code']}").json()
        if summary["online"] and any(m["original"] for m in item["materials"]):
            return item
    raise AssertionError("no item asks for an original")


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def test_posted_originals_reach_the_bureau_and_the_receipt_comes_back(running):
    portal, bureau = running
    person = portal.register()
    item = originals_item(portal)
    case_no = draft_with_materials(portal, item)
    if item["prereview"]:
        assert portal.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
        wait_for(bureau_has(bureau, case_no, "prereview"), what="the case at the bureau")
        bureau.act(case_no, "pass", {})
        wait_for(status_is(portal, case_no, "prereview_passed"), what="prereview_passed")
    assert portal.post(f"/api/v1/cases/{case_no}/submission").status_code == 202
    wait_for(bureau_has(bureau, case_no, "submitted"), what="the formal submission")

    # The citizen, on the pages: form, check page, confirm.
    web = httpx.Client(base_url=portal.server.url, timeout=30, follow_redirects=True)
    login = web.get("/login").text
    answer = web.post(
        "/login", data={"phone": person["phone"], "password": PASSWORD, "csrf_token": csrf(login)}
    )
    assert answer.status_code == 200
    form = web.get(f"/cases/{case_no}/originals")
    assert form.status_code == 200 and "寄送或递交原件" in form.text
    fields = {
        "csrf_token": csrf(form.text),
        "method": "dropoff",
        "carrier": "SF",
        "tracking_no": "SF1234567890123",
    }
    check = web.post(f"/cases/{case_no}/originals", data={**fields, "action": "save"})
    assert check.status_code == 200 and "核对原件寄递信息" in check.text
    done = web.post(f"/cases/{case_no}/originals", data={**fields, "action": "confirm"})
    assert done.status_code == 200 and "已寄出" in done.text and "等待审批局签收" in done.text

    # The bureau holds it and offers 原件已签收.
    def posted():
        originals = bureau.case(case_no).get("originals") or {}
        return originals.get("tracking_no") == "SF1234567890123"

    wait_for(posted, what="originals.posted at the bureau")
    staff_view = bureau.case(case_no)
    assert staff_view["originals"]["method"] == "dropoff"
    assert "originals-received" in staff_view["actions"]
    bureau.act(case_no, "originals-received", {"note": "原件已核验，随证照退还"})

    wait_for(
        lambda: (portal.case(case_no)["originals"] or {}).get("received_at"),
        what="originals.received at the portal",
    )
    page = web.get(f"/cases/{case_no}").text
    assert "审批局已签收" in page and "原件已核验，随证照退还" in page
    assert "SF1234567890123" in page and "sf-express.com" in page
    # Signed for: the choice is final on both sides.
    assert web.get(f"/cases/{case_no}/originals").status_code == 409
    assert "originals-received" not in bureau.case(case_no)["actions"]
