"""委托授权 end to end (identity.md; citizen-api.md v1.1): a legal person verified through
the reference identity platform authorises an agent for two items; the agent switches
to the company and files; the bureau is told who filed under which authorisation; the
enterprise sees the case; a revoked authorisation stops the next submission at once.

The portal and the identity platform run as real servers (tests/test_sso.py's stack);
every call is the public API or the real redirect flow.
"""

from __future__ import annotations

import httpx

from idp.identities import BY_KEY
from tests.conftest import csrf_of, make_uscc
from tests.kit import code_token, sso_api, sso_fill, sso_login, sso_submitted_events

LINA, HUIMIN = BY_KEY["lina"], BY_KEY["huimin"]


def _formal_items(api: httpx.Client, n: int) -> list[dict]:
    codes = [
        s["code"]
        for s in api.get("/api/v1/items").json()["items"]
        if not s["prereview"] and s["online"]
    ]
    assert len(codes) > n, "the catalogue needs items without pre-review"
    return [api.get(f"/api/v1/items/{c}").json() for c in codes[: n + 1]]


def test_an_enterprise_authorises_an_agent_who_files_for_it_until_revoked(stack):  # noqa: F811
    # The agent: a person's account, verified at level 3 through the platform.
    sso_login(stack, "lina")
    agent = sso_api(stack, code_token(stack, LINA.phone))
    # The enterprise signs in through the platform as itself (level 3).
    sso_login(stack, "huimin")
    company = sso_api(stack, code_token(stack, HUIMIN.phone))
    assert company.get("/api/v1/me").json()["kind"] == "enterprise"

    first, second, other = _formal_items(company, 2)
    granted = company.post(
        "/api/v1/authorisations",
        json={
            "agent_phone": LINA.phone,
            "items": [first["code"], second["code"]],
            "valid_to": "2027-06-30",
        },
    )
    assert granted.status_code == 201, granted.text
    auth = granted.json()
    assert auth["items"] == [first["code"], second["code"]] and auth["valid_to"] == "2027-06-30"
    assert auth["agent"]["name"] == LINA.name and auth["agent"]["phone"] != LINA.phone  # masked
    assert auth["revoked_at"] is None
    assert [a["id"] for a in company.get("/api/v1/authorisations").json()["authorisations"]] == [
        auth["id"]
    ]
    assert [a["id"] for a in agent.get("/api/v1/authorisations").json()["authorisations"]] == [
        auth["id"]
    ]

    subjects = agent.get("/api/v1/me").json()["subjects"]
    assert [(s["kind"], s["authorisation_id"]) for s in subjects] == [
        ("person", None),
        ("enterprise", auth["id"]),
    ]
    assert subjects[1]["name"] == HUIMIN.name and subjects[1]["id_number"] != HUIMIN.id_number

    # An item outside the authorisation, or an enterprise that never authorised: 403.
    outside = agent.post(
        "/api/v1/cases", json={"item_code": other["code"], "on_behalf_of": HUIMIN.id_number}
    )
    assert outside.status_code == 403 and outside.json()["error"]["code"] == "not_authorised"
    stranger = agent.post(
        "/api/v1/cases",
        json={"item_code": first["code"], "on_behalf_of": BY_KEY["jianan"].id_number},
    )
    assert stranger.status_code == 403

    # Filed for the company: the bureau sees the company as applicant, and who filed.
    created = agent.post(
        "/api/v1/cases", json={"item_code": first["code"], "on_behalf_of": HUIMIN.id_number}
    )
    assert created.status_code == 201, created.text
    case_no = created.json()["case_no"]
    sso_fill(agent, case_no, first)
    submitted = agent.post(f"/api/v1/cases/{case_no}/submission")
    assert submitted.status_code == 202, submitted.text
    (event,) = sso_submitted_events(stack, case_no)
    applicant = event["data"]["applicant"]
    assert (applicant["kind"], applicant["name"], applicant["id_number"]) == (
        "enterprise",
        HUIMIN.name,
        HUIMIN.id_number,
    )
    assert applicant["verified"]["level"] == HUIMIN.level
    assert applicant["agent"]["name"] == LINA.name
    assert applicant["agent"]["id_number"] == LINA.id_number
    assert applicant["agent"]["authorisation"] == {
        "id": auth["id"],
        "granted_by": HUIMIN.legal_rep,
        "valid_to": "2027-06-30",
    }
    # The enterprise sees every case filed in its name.
    assert case_no in [c["case_no"] for c in company.get("/api/v1/cases").json()["cases"]]
    assert company.get(f"/api/v1/cases/{case_no}").status_code == 200

    # A draft for the second item, then the company revokes: the draft stays, unsent.
    draft = agent.post(
        "/api/v1/cases", json={"item_code": second["code"], "on_behalf_of": HUIMIN.id_number}
    ).json()["case_no"]
    sso_fill(agent, draft, second)
    assert company.delete(f"/api/v1/authorisations/{auth['id']}").status_code == 204
    refused = agent.post(f"/api/v1/cases/{draft}/submission")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "verification_required"
    assert "撤销" in refused.json()["error"]["message"]
    assert sso_submitted_events(stack, draft) == []
    assert company.get(f"/api/v1/cases/{draft}").json()["status"] == "draft"
    assert [s["kind"] for s in agent.get("/api/v1/me").json()["subjects"]] == ["person"]
    listed = company.get("/api/v1/authorisations").json()["authorisations"]
    assert listed[0]["revoked_at"] and listed[0]["valid"] is False
    # Revoking is the enterprise's alone; another account's id is a 404 like a missing one.
    assert agent.delete(f"/api/v1/authorisations/{auth['id']}").status_code == 404


def test_only_a_verified_legal_person_grants_and_bad_grants_say_why(stack):  # noqa: F811
    person = stack.register()
    as_person = sso_api(stack, stack.token(person["phone"]).json()["token"])
    lina = stack.register(phone=LINA.phone)
    body = {"agent_phone": lina["phone"], "items": "all", "valid_to": "2027-01-31"}
    refused = as_person.post("/api/v1/authorisations", json=body)
    assert refused.status_code == 403

    # An enterprise that only typed its USCC in (not verified) may not grant either.
    typed = stack.register(kind="enterprise", name="某某商贸有限公司", id_number=make_uscc())
    as_typed = sso_api(stack, stack.token(typed["phone"]).json()["token"])
    assert as_typed.post("/api/v1/authorisations", json=body).status_code == 403

    sso_login(stack, "huimin")
    company = sso_api(stack, code_token(stack, HUIMIN.phone))
    assert (
        company.post(
            "/api/v1/authorisations", json={**body, "agent_phone": "13900000001"}
        ).status_code
        == 404
    )
    for bad, field in (
        ({"valid_to": "2020-01-01"}, "valid_to"),
        ({"valid_to": "2027-02-30"}, "valid_to"),
        ({"valid_to": "2099-01-01"}, "valid_to"),
        ({"items": ["NO-SUCH"]}, "items"),
        ({"items": []}, "items"),
        ({"agent_phone": "12"}, "agent_phone"),
    ):
        answer = company.post("/api/v1/authorisations", json={**body, **bad})
        assert answer.status_code == 422, (bad, answer.text)
        assert field in answer.json()["error"]["fields"], answer.text
    assert company.get("/api/v1/authorisations").json()["authorisations"] == []
    ok = company.post("/api/v1/authorisations", json=body)
    assert ok.status_code == 201 and ok.json()["items"] == "all"


def test_the_pages_grant_switch_subject_file_and_revoke(stack):  # noqa: F811
    agent_browser, _ = sso_login(stack, "lina")
    company_browser, _ = sso_login(stack, "huimin")
    page = company_browser.get("/account/authorisations")
    assert page.status_code == 200 and "新增授权" in page.text

    # Nothing filled in: 422, a summary at the top and each error next to its field.
    empty = company_browser.post(
        "/account/authorisations", data={"csrf_token": csrf_of(page.text), "scope": "items"}
    )
    assert empty.status_code == 422
    assert "error-summary" in empty.text
    for field in ("agent_phone", "items", "valid_to"):
        assert f'href="#f-{field}"' in empty.text and f'id="f-{field}-error"' in empty.text
    no_csrf = company_browser.post(
        "/account/authorisations",
        data={"scope": "all", "agent_phone": LINA.phone, "valid_to": "2027-06-30"},
    )
    assert no_csrf.status_code == 403

    item = _formal_items(sso_api(stack, code_token(stack, LINA.phone)), 1)[0]
    granted = company_browser.post(
        "/account/authorisations",
        data={
            "csrf_token": csrf_of(empty.text),
            "agent_phone": LINA.phone,
            "scope": "items",
            "items": item["code"],
            "valid_to": "2027-06-30",
        },
    )
    assert granted.status_code == 200 and "已授权" in granted.text and LINA.name in granted.text

    # The agent's item page offers the company as 当前办事主体; choosing it files for it.
    item_page = agent_browser.get(f"/items/{item['code']}")
    assert f"代 {HUIMIN.name} 办理" in item_page.text
    created = agent_browser.post(
        "/cases",
        data={
            "csrf_token": csrf_of(item_page.text),
            "item_code": item["code"],
            "on_behalf_of": HUIMIN.id_number,
        },
    )
    assert created.status_code == 200 and "/form" in str(created.url)
    case_no = str(created.url).split("/cases/")[1].split("/")[0]
    review = agent_browser.get(f"/cases/{case_no}/review")
    assert HUIMIN.name in review.text and "经办人（受托代办）" in review.text
    assert HUIMIN.id_number not in review.text  # masked on the page

    # Revoked from the company's page: the agent's item page offers only the agent.
    listing = company_browser.get("/account/authorisations")
    auth_id = listing.text.split("/account/authorisations/")[1].split("/")[0]
    revoked = company_browser.post(
        f"/account/authorisations/{auth_id}/revoke", data={"csrf_token": csrf_of(listing.text)}
    )
    assert revoked.status_code == 200 and "已撤销" in revoked.text
    assert f"代 {HUIMIN.name} 办理" not in agent_browser.get(f"/items/{item['code']}").text
    assert case_no in company_browser.get("/cases").text  # the draft stays, the company sees it
