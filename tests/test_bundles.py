"""一件事 bundles: one form, one checklist (uploaded once), one submission, computed savings."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from portal.exchange.models import OutboxMessage
from portal.library.models import LibraryDocument
from portal.materials.models import Blob, CaseFile
from tests.conftest import PDF_BYTES, bearer, csrf_of, register, web_login
from tests.factories import RESTAURANT, envelope, items_of, send, upload_kind
from tests.factories import fill_bundle as fill
from tests.factories import start_bundle as start


def sent(db, type_="case.submitted") -> list[dict]:
    with db.session() as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == type_)
            .order_by(OutboxMessage.id)
        ).all()
        return [json.loads(r.payload) for r in rows]


# --- the catalogue's bundles and their savings ------------------------------------------


def test_at_least_five_bundles_each_with_savings_computed_from_the_catalogue(client):
    bundles = client.get("/api/v1/bundles").json()["bundles"]
    assert len(bundles) >= 5
    for bundle in bundles:
        assert set(bundle) >= {"code", "name", "items", "savings"}
        items = items_of(client, bundle)
        savings = bundle["savings"]
        # Applying item by item is the plain sum of what each item's guide lists.
        assert savings["steps"]["separate"] == sum(len(i["steps"]) for i in items)
        assert savings["materials"]["separate"] == sum(
            1 for i in items for m in i["materials"] if m["required"]
        )
        assert savings["days"]["separate"] == sum(i["promised_days"] for i in items)
        assert savings["steps"]["bundled"] == len({s["name"] for i in items for s in i["steps"]})
        assert savings["days"]["bundled"] >= max(i["promised_days"] for i in items)
        for measure in savings.values():
            assert 0 < measure["bundled"] <= measure["separate"]
        assert client.get(f"/api/v1/bundles/{bundle['code']}").json() == bundle


def test_restaurant_bundle_saves_what_the_reform_promised(client):
    bundle = client.get(f"/api/v1/bundles/{RESTAURANT}").json()
    items = items_of(client, bundle)
    kinds = {m["kind"] for i in items for m in i["materials"] if m["required"]}
    # The 营业执照 the company registration issues is shared inside the bureau, not asked for.
    assert "business_licence" in kinds
    assert bundle["savings"]["materials"]["bundled"] == len(kinds) - 1 == 12
    # 并联: the food licence waits only for the company's licence (1 + 5 working days).
    by_code = {i["code"]: i for i in items}
    chain = by_code["SC0001"]["promised_days"] + by_code["SC0004"]["promised_days"]
    assert bundle["savings"]["days"]["bundled"] == chain
    page = client.get(f"/bundles/{RESTAURANT}")
    assert page.status_code == 200
    for row in ("办理环节", "申请材料", "承诺办结时间"):
        assert row in page.text
    assert f"{bundle['savings']['materials']['separate']} 份" in page.text
    assert "这些数字是怎么算的" in page.text


def test_unknown_bundle_is_404_in_chinese(client, auth):
    assert client.get("/api/v1/bundles/no-such").status_code == 404
    answer = client.post("/api/v1/bundles/no-such/cases", json={}, headers=auth)
    assert answer.status_code == 404 and "一件事" in answer.json()["error"]["message"]
    assert client.get("/bundles/no-such").status_code == 404


# --- one form -------------------------------------------------------------------------


def test_a_shared_field_is_asked_once_and_reaches_every_item(client, person, auth):
    web_login(client, person)
    page = client.get(f"/bundles/{RESTAURANT}")
    response = client.post(
        f"/bundles/{RESTAURANT}/applications",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    form_url = response.headers["location"]
    app_id = int(re.search(r"/bundle-applications/(\d+)/form", form_url).group(1))
    form_page = client.get(form_url)
    names = re.findall(r'name="(form\.[a-z_0-9]+)"', form_page.text)
    assert names.count("form.business_name") == 1
    assert len(names) == len(set(names)), "every field is asked once"
    application = client.get(f"/api/v1/bundle-applications/{app_id}", headers=auth).json()
    shared = [f for f in application["fields"] if len(f["used_by"]) > 1]
    assert {"business_name", "contact_phone"} <= {f["name"] for f in shared}

    values = {f"form.{f['name']}": "" for f in application["fields"]}
    values["form.business_name"] = "常州味道餐饮有限公司"
    values["form.contact_phone"] = "13912345678"
    saved = client.post(
        form_url, data={**values, "csrf_token": csrf_of(form_page.text)}, follow_redirects=False
    )
    assert saved.status_code == 303
    cases = [
        client.get(f"/api/v1/cases/{c['case_no']}", headers=auth).json()
        for c in application["cases"]
    ]
    having = [c for c in cases if any(f["name"] == "business_name" for f in _fields(client, c))]
    assert len(having) == len(cases) == 4
    assert {c["form"]["business_name"] for c in having} == {"常州味道餐饮有限公司"}


def _fields(client, case):
    return client.get(f"/api/v1/items/{case['item_code']}").json()["fields"]


def test_a_wrong_shared_value_is_refused_for_every_item_and_nothing_saved(client, person, auth):
    application = start(client, auth)

    def forms():
        return [
            client.get(f"/api/v1/cases/{linked['case_no']}", headers=auth).json()["form"]
            for linked in application["cases"]
        ]

    before = forms()  # what the prefill put in (the account's phone)
    response = client.patch(
        f"/api/v1/bundle-applications/{application['id']}",
        json={"form": {"contact_phone": "12", "business_name": "某某餐饮"}},
        headers=auth,
    )
    assert response.status_code == 422
    assert "form.contact_phone" in response.json()["error"]["fields"]
    assert forms() == before
    # On the page: the error next to the field and in the summary at the top.
    web_login(client, person)
    url = f"/bundle-applications/{application['id']}/form"
    page = client.get(url)
    values = {f"form.{f['name']}": "" for f in application["fields"]}
    values["form.contact_phone"] = "12"
    answer = client.post(url, data={**values, "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 422
    assert 'id="error-summary"' in answer.text and 'id="f-form.contact_phone-error"' in answer.text


# --- one checklist --------------------------------------------------------------------


def test_one_file_uploaded_once_reaches_two_items_and_is_stored_once(client, auth, app, db):
    # A bundle where a real document (not the combined form) is needed by two items.
    chosen = None
    for bundle in client.get("/api/v1/bundles").json()["bundles"]:
        application = start(client, auth, bundle["code"])
        for group in application["materials"]:
            if (
                group["kind"] != "application_form"
                and len(group["items"]) >= 2
                and not group["provided_by"]
            ):
                chosen = (application, group)
                break
        if chosen:
            break
    assert chosen, "the catalogue has a bundle sharing a material between two items"
    application, group = chosen
    content = PDF_BYTES + b"%lease contract, one copy"
    response = upload_kind(client, auth, application["id"], group["kind"], content, "租赁合同.pdf")
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["cases"]) == len(group["items"]) >= 2
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Blob).where(Blob.sha256 == body["sha256"]))
            == 1
        )
        rows = s.scalars(select(CaseFile).where(CaseFile.sha256 == body["sha256"])).all()
        assert len(rows) == len(group["items"])
        assert len({r.case_id for r in rows}) == len(group["items"])
        assert s.scalar(select(func.count()).select_from(LibraryDocument)) == 1
    stored = list((app.state.store.root).rglob(body["sha256"]))
    assert len(stored) == 1
    view = client.get(f"/api/v1/bundle-applications/{application['id']}", headers=auth).json()
    files = next(g for g in view["materials"] if g["kind"] == group["kind"])["files"]
    assert [f["sha256"] for f in files] == [body["sha256"]]
    # Each item's own case shows the file against its own material.
    for case_no in body["cases"]:
        case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
        assert any(f["sha256"] == body["sha256"] for m in case["materials"] for f in m["files"])
    # Removing it takes it off every item.
    removed = client.delete(
        f"/api/v1/bundle-applications/{application['id']}/materials/{group['kind']}/files/{body['sha256']}",
        headers=auth,
    )
    assert removed.status_code == 204
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CaseFile)) == 0


def test_a_licence_issued_inside_the_bundle_is_not_asked_for(client, auth):
    application = start(client, auth)
    group = next(g for g in application["materials"] if g["kind"] == "business_licence")
    assert group["provided_by"] == "SC0001"
    answer = upload_kind(client, auth, application["id"], "business_licence")
    assert answer.status_code == 409
    assert "内部共享" in answer.json()["error"]["message"]
    food = next(c for c in application["cases"] if c["item_code"] == "SC0004")
    case = client.get(f"/api/v1/cases/{food['case_no']}", headers=auth).json()
    licence = next(m for m in case["materials"] if m["name"] == "营业执照")
    company = next(c for c in application["cases"] if c["item_code"] == "SC0001")
    assert licence["provided_by"]["case_no"] == company["case_no"]
    assert upload_kind(client, auth, application["id"], "no_such_kind").status_code == 404


# --- one submission -------------------------------------------------------------------


def test_one_submission_sends_each_case_with_the_bundle_reference(client, auth, db):
    application = fill(client, auth, start(client, auth))
    response = client.post(
        f"/api/v1/bundle-applications/{application['id']}/submission", headers=auth
    )
    assert response.status_code == 202, response.text
    after = response.json()
    numbers = [c["case_no"] for c in after["cases"]]
    by_item = {c["item_code"]: c for c in after["cases"]}
    # Each item takes its own first step: 网上预审 where it has one, straight in otherwise.
    for code, linked in by_item.items():
        item = client.get(f"/api/v1/items/{code}").json()
        assert linked["status"] == ("prereview" if item["prereview"] else "submitted")
    events = sent(db)
    assert sorted(e["case_no"] for e in events) == sorted(numbers)
    for event in events:
        assert event["data"]["bundle"] == {
            "code": RESTAURANT,
            "name": "开办餐饮店",
            "cases": numbers,
        }
    food = next(e for e in events if e["data"]["item"]["code"] == "SC0004")
    licence = next(m for m in food["data"]["materials"] if m["name"] == "营业执照")
    assert licence["files"] == [] and licence["provided_by"]["item_code"] == "SC0001"
    # The combined application form is one file named in every case's event.
    forms = {
        f["sha256"]
        for e in events
        for m in e["data"]["materials"]
        if m["code"] == "M01"
        for f in m["files"]
    }
    assert len(forms) == 1
    assert after["status"] == "submitted"
    # Nothing left to send until the pre-reviews answer.
    again = client.post(f"/api/v1/bundle-applications/{application['id']}/submission", headers=auth)
    assert again.status_code == 409


def test_an_incomplete_bundle_sends_nothing_and_lists_every_gap(client, auth, db):
    application = start(client, auth)
    response = client.post(
        f"/api/v1/bundle-applications/{application['id']}/submission", headers=auth
    )
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert "form.business_name" in fields
    assert "materials.application_form" in fields
    assert sent(db) == []
    statuses = client.get(f"/api/v1/bundle-applications/{application['id']}", headers=auth).json()
    assert {c["status"] for c in statuses["cases"]} == {"draft"}


def test_formal_round_after_prereview_with_rongque_by_material_type(client, auth, db):
    application = fill(client, auth, start(client, auth), skip_deferrable=True)
    app_id = application["id"]
    assert (
        client.post(f"/api/v1/bundle-applications/{app_id}/submission", headers=auth).status_code
        == 202
    )
    for linked in client.get(f"/api/v1/bundle-applications/{app_id}", headers=auth).json()["cases"]:
        if linked["status"] == "prereview":
            assert (
                send(client, envelope(linked["case_no"], "prereview.passed", {})).status_code == 200
            )
    view = client.get(f"/api/v1/bundle-applications/{app_id}", headers=auth).json()
    deferrable = [g["kind"] for g in view["materials"] if g["deferrable"] and not g["files"]]
    assert deferrable, "kbcyd has deferrable materials (食品安全规章制度目录, 排水水质检测报告)"
    without = client.post(f"/api/v1/bundle-applications/{app_id}/submission", headers=auth)
    assert without.status_code == 422
    assert any(k.startswith("materials.") for k in without.json()["error"]["fields"])
    unsigned = client.post(
        f"/api/v1/bundle-applications/{app_id}/submission",
        json={"commitment": {"deferred_materials": deferrable, "accepted": False}},
        headers=auth,
    )
    assert unsigned.status_code == 422
    signed = client.post(
        f"/api/v1/bundle-applications/{app_id}/submission",
        json={"commitment": {"deferred_materials": deferrable, "accepted": True}},
        headers=auth,
    )
    assert signed.status_code == 202, signed.text
    assert {c["status"] for c in signed.json()["cases"]} == {"submitted"}
    formal = [e for e in sent(db) if e["data"]["stage"] == "formal" and "commitment" in e["data"]]
    assert formal and all(e["data"]["commitment"]["kind"] == "rongque" for e in formal)


def test_check_your_answers_page_then_submit_and_combined_status(client, person, auth):
    application = fill(client, auth, start(client, auth))
    web_login(client, person)
    review = client.get(f"/bundle-applications/{application['id']}/review")
    assert review.status_code == 200
    assert "核对一件事申请" in review.text
    assert person["id_number"] not in review.text  # masked
    assert review.text.count("<dt>经营者名称</dt>") + review.text.count("<dt>企业名称</dt>") <= 1
    response = client.post(
        f"/bundle-applications/{application['id']}/submission",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "各事项办理进度" in page.text
    for linked in application["cases"]:
        assert linked["case_no"] in page.text
    case_page = client.get(f"/cases/{application['cases'][0]['case_no']}")
    assert f"/bundle-applications/{application['id']}" in case_page.text


def test_another_accounts_bundle_application_is_404_like_a_missing_one(client, auth):
    application = start(client, auth)
    other = bearer(client, register(client))
    base = f"/api/v1/bundle-applications/{application['id']}"
    for response in (
        client.get(base, headers=other),
        client.patch(base, json={"form": {}}, headers=other),
        client.post(f"{base}/submission", headers=other),
        upload_kind(client, other, application["id"], "application_form"),
    ):
        assert response.status_code == 404, response.text
    missing = client.get("/api/v1/bundle-applications/999999", headers=other)
    assert missing.status_code == 404
    assert (
        missing.json()["error"]["message"]
        == client.get(base, headers=other).json()["error"]["message"]
    )
    assert client.get("/api/v1/bundle-applications/99999999999999", headers=auth).status_code == 422
    assert client.get(base).status_code == 401
    listed = client.get("/api/v1/bundle-applications", headers=other).json()["applications"]
    assert listed == []


def test_odd_input_is_a_clear_4xx_never_a_500(app, client, auth):
    application = start(client, auth)
    quiet = TestClient(app, raise_server_exceptions=False)
    base = f"/api/v1/bundle-applications/{application['id']}"
    for response in (
        quiet.get("/api/v1/bundles/a%00b"),
        quiet.get("/bundles/a%00b"),
        quiet.post(
            f"{base}/materials/a%00b/files",
            files={"file": ("a.pdf", PDF_BYTES, "application/pdf")},
            headers=auth,
        ),
        quiet.delete(f"{base}/materials/application_form/files/a%00b", headers=auth),
        quiet.post(
            f"{base}/materials/application_form/library-files",
            json={"document_id": 2**40},
            headers=auth,
        ),
        quiet.patch(base, json={"form": "not an object"}, headers=auth),
        quiet.post(
            "/api/v1/bundles/kbcyd/cases", json={"form": {"business_area": "很多"}}, headers=auth
        ),
        quiet.delete("/api/v1/library/0", headers=auth),
        quiet.post(
            "/api/v1/cases/a%00b/materials/M01/library-files", json={"document_id": 1}, headers=auth
        ),
    ):
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        if response.headers["content-type"].startswith("application/json"):
            message = response.json()["error"]["message"]
            assert re.search(r"[\u4e00-\u9fff]", message), message
    # A filter that matches nothing is just empty; one with a NUL in it is refused.
    assert quiet.get("/api/v1/library?kind=nothing", headers=auth).json() == {"documents": []}
    assert quiet.get("/api/v1/library?kind=a%00b", headers=auth).status_code == 422


def test_deleting_a_draft_bundle_closes_its_drafts(client, person, auth):
    application = start(client, auth)
    web_login(client, person)
    page = client.get(f"/bundle-applications/{application['id']}/delete")
    response = client.post(
        f"/bundle-applications/{application['id']}/delete",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    for linked in application["cases"]:
        assert (
            client.get(f"/api/v1/cases/{linked['case_no']}", headers=auth).json()["status"]
            == "withdrawn"
        )
    assert client.get(f"/bundle-applications/{application['id']}").status_code == 404


def test_an_item_dropped_from_the_bundle_is_left_out(client, auth, db):
    application = start(client, auth)
    dropped = next(c for c in application["cases"] if c["item_code"] == "SC0003")
    assert (
        client.post(f"/api/v1/cases/{dropped['case_no']}/withdrawal", headers=auth).status_code
        == 200
    )
    filled = fill(client, auth, application)
    response = client.post(f"/api/v1/bundle-applications/{filled['id']}/submission", headers=auth)
    assert response.status_code == 202, response.text
    events = sent(db)
    assert dropped["case_no"] not in {e["case_no"] for e in events}
    assert len(events) == len(application["cases"]) - 1
    # Only SC0003 asked for the 身份证明 in kbcyd: nothing left to upload it to.
    only_dropped = [g for g in filled["materials"] if g["items"] == ["SC0003"]]
    for group in only_dropped:
        assert group["files"] == []
