"""No ID number and no phone number in the logs of a real run (PIPL art. 51, GB/T 35273).

`portal serve` with JSON logs and the reference back office run as real
processes; citizens register (a person, an enterprise with its agent), log in
(wrongly first), file cases with their numbers in the forms, the bureau decides
through its signed callbacks, the licence is fetched, the back office goes down
and events are retried — and numbers turn up where they should not: in paths
that 404, in a broken login, in a withdrawal reason. Then every line the portal
wrote is searched for every number, in each way a citizen could type it.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import (
    PASSWORD,
    PDF_BYTES,
    csrf_of,
    make_phone,
    make_ric,
    make_uscc,
    valid_form,
)
from tests.e2e.harness import wait_for
from tests.live import bureau_has, choose_item, status_is

pytestmark = pytest.mark.e2e


def ric_ending_in_x() -> str:
    number = make_ric()
    while not number.endswith("X"):
        number = make_ric()
    return number


def spellings(number: str) -> set[str]:
    """How a number may be typed: as registered, lowercase x, with the country code."""
    found = {number, number.lower()}
    if len(number) == 11:
        found |= {f"+86{number}", f"86{number}"}
    return found


def register(http: httpx.Client, **body) -> dict:
    body = {"kind": "person", "name": "吴隐私", "password": PASSWORD, **body}
    response = http.post("/api/v1/accounts", json=body)
    assert response.status_code == 201, response.text
    return body


def token(http: httpx.Client, phone: str) -> dict:
    response = http.post("/api/v1/tokens", json={"phone": phone, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_a_full_run_writes_no_id_number_or_phone_to_the_log(system):
    portal, bureau = system.start_both(PORTAL_LOG_JSON="true")
    http = portal.http

    person = register(http, id_number=ric_ending_in_x(), phone=make_phone())
    agent_id, other_phone = make_ric(), make_phone()
    enterprise = register(
        http,
        kind="enterprise",
        name="常州隐私测试有限公司",
        id_number=make_uscc(),
        phone=other_phone,
        agent_name="钱经办",
        agent_id_number=agent_id.lower(),
    )
    numbers = [person["id_number"], person["phone"], enterprise["id_number"], other_phone, agent_id]

    # Refused: a duplicate, a bad password over the API and on the login page.
    assert http.post("/api/v1/accounts", json=person).status_code == 409
    wrong = {"phone": person["phone"], "password": "wrong-password"}
    assert http.post("/api/v1/tokens", json=wrong).status_code == 401
    browser = httpx.Client(base_url=portal.server.url, timeout=30)
    page = browser.get("/login")
    failed = browser.post("/login", data={**wrong, "csrf_token": csrf_of(page.text)})
    assert failed.status_code == 401
    page = browser.get("/login")
    login = {"phone": person["phone"], "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    assert browser.post("/login", data=login).status_code == 303
    assert browser.get("/account").status_code == 200
    auth = token(http, person["phone"])

    # A case whose form carries the applicant's numbers, through to an issued licence.
    item = choose_item(portal, prereview=True)
    form = valid_form(item)
    for field in item["fields"]:
        if field["type"] == "phone":
            form[field["name"]] = person["phone"]
        elif field["type"] in ("text", "textarea"):
            form[field["name"]] = f"法定代表人身份证 {person['id_number']}"[
                : field.get("max_length") or 200
            ]
    created = http.post("/api/v1/cases", json={"item_code": item["code"], "form": {}}, headers=auth)
    case_no = created.json()["case_no"]
    patched = http.patch(f"/api/v1/cases/{case_no}", json={"form": form}, headers=auth)
    assert patched.status_code == 200, patched.text
    for material in item["materials"]:
        if material["required"]:
            content = PDF_BYTES + b"%" + person["id_number"].encode() + b"\n"
            uploaded = http.post(
                f"/api/v1/cases/{case_no}/materials/{material['code']}/files",
                files={"file": (f"{person['id_number']}身份证.pdf", content, "application/pdf")},
                headers=auth,
            )
            assert uploaded.status_code == 201, uploaded.text
    assert http.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
    wait_for(bureau_has(bureau, case_no, "prereview"), what="the case at the bureau")
    bureau.act(case_no, "pass", {"comment": f"联系电话 {person['phone']} 已核实"})
    wait_for(
        lambda: status_is(portal_with(http, auth), case_no, "prereview_passed")(), what="passed"
    )
    assert http.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    wait_for(bureau_has(bureau, case_no, "submitted"), what="the formal submission")
    bureau.act(case_no, "accept", {})
    bureau.act(case_no, "approve", {})
    wait_for(
        lambda: (http.get(f"/api/v1/cases/{case_no}", headers=auth).json()["licence"] or {}).get(
            "download_url"
        ),
        what="the licence fetched",
    )

    # Numbers where they do not belong: in paths, in a bad callback, in a reason.
    for path in (
        f"/api/v1/cases/{person['id_number'].lower()}",
        f"/cases/{person['id_number']}",
        f"/items/{person['phone']}",
        f"/api/v1/items/+86{other_phone}",
        f"/library/{agent_id}/file",
    ):
        client = http if path.startswith("/api/") else browser  # pages: logged in
        assert client.get(path, headers=auth).status_code in (404, 422), path
    forged = http.post(
        "/api/bureau/v1/events",
        content=f'{{"case_no": "{case_no}", "phone": "{person["phone"]}"}}'.encode(),
        headers={"Content-Type": "application/json", "X-Bureau-Signature": "t=1,v1=00"},
    )
    assert forged.status_code == 401
    second = http.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": form}, headers=auth
    )
    second_no = second.json()["case_no"]
    for material in item["materials"]:
        if material["required"]:
            http.post(
                f"/api/v1/cases/{second_no}/materials/{material['code']}/files",
                files={"file": ("m.pdf", PDF_BYTES + b"%second\n", "application/pdf")},
                headers=auth,
            )

    # The back office goes away: the submission and the withdrawal wait and are retried.
    system.bureau_server.kill()
    assert http.post(f"/api/v1/cases/{second_no}/prereview", headers=auth).status_code == 202
    reason = f"身份证号 {person['id_number']} 填错了，手机 {person['phone']}"
    withdrawn = http.post(
        f"/api/v1/cases/{second_no}/withdrawal", json={"reason": reason}, headers=auth
    )
    assert withdrawn.status_code == 200
    log = system.portal_server.log
    wait_for(lambda: "retry in" in log.read_text(), what="a failed delivery in the log")
    system.portal_server.stop()

    text = log.read_text(encoding="utf-8")
    # The run was logged: requests, decisions, the failed deliveries — masked.
    assert '"status": 404' in text and "bureau event case.approved" in text
    assert person["id_number"][:4] + "*" * 12 in text  # the 404 paths, masked
    leaked = {s for n in numbers for s in spellings(n) if s in text}
    lines = [line for line in text.splitlines() if any(s in line for s in leaked)]
    assert not leaked, f"personal numbers in the log: {leaked}\n" + "\n".join(lines[:10])
    # Nothing shaped like a mobile number or an ID number either, whoever it belongs to.
    for line in text.splitlines():
        assert not re.search(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])", line), line


def portal_with(http: httpx.Client, auth: dict):
    class View:
        def case(self, case_no):
            return http.get(f"/api/v1/cases/{case_no}", headers=auth).json()

    return View()
