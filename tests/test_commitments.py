"""容缺受理 (with the 补交 task afterwards) and 告知承诺制."""

from __future__ import annotations

from sqlalchemy import select

from portal.exchange.models import OutboxMessage
from tests.conftest import PDF_BYTES, csrf_of, valid_form, web_login
from tests.factories import (
    deferrable_item,
    envelope,
    fill_everything,
    item_with,
    new_case,
    ready_for_formal,
    send,
    upload,
)
from tests.factories import sent_data as events

KEPT_KINDS = {"application_form", "id_card", "business_licence", "power_of_attorney"}


# --- 容缺受理 -----------------------------------------------------------------------------


def test_missing_deferrable_material_is_accepted_only_under_a_signed_commitment(client, auth, db):
    item = deferrable_item(client)
    deferred = [m["code"] for m in item["materials"] if m["deferrable"] and m["required"]]
    firm = next(m["code"] for m in item["materials"] if m["required"] and not m["deferrable"])
    case_no = ready_for_formal(client, auth, item)
    url = f"/api/v1/cases/{case_no}/submission"

    plain = client.post(url, headers=auth)
    assert plain.status_code == 422
    fields = plain.json()["error"]["fields"]
    assert {f"materials.{c}" for c in deferred} <= set(fields)
    assert all("容缺" in fields[f"materials.{c}"] for c in deferred)

    unsigned = client.post(
        url, json={"commitment": {"deferred_materials": deferred, "accepted": False}}, headers=auth
    )
    assert unsigned.status_code == 422
    assert "commitment.accepted" in unsigned.json()["error"]["fields"]

    not_deferrable = client.post(
        url, json={"commitment": {"deferred_materials": [firm], "accepted": True}}, headers=auth
    )
    assert not_deferrable.status_code == 422
    assert events(db, "case.submitted", case_no)[-1]["stage"] != "formal"

    signed = client.post(
        url, json={"commitment": {"deferred_materials": deferred, "accepted": True}}, headers=auth
    )
    assert signed.status_code == 202, signed.text
    case = signed.json()
    assert case["status"] == "submitted"
    assert case["commitment"]["kind"] == "rongque"
    assert [d["code"] for d in case["commitment"]["deferred_materials"]] == deferred
    data = events(db, "case.submitted", case_no)[-1]
    assert data["stage"] == "formal"
    assert data["commitment"]["kind"] == "rongque" and data["commitment"]["signed_at"]
    assert data["commitment"]["deferred_materials"] == deferred
    for entry in (m for m in data["materials"] if m["code"] in deferred):
        assert entry["deferred"] is True and entry["files"] == [] and entry["due_date"]


def test_supplement_task_uploads_deferred_materials_and_sends_them(client, auth, db):
    item = deferrable_item(client)
    deferred = [m["code"] for m in item["materials"] if m["deferrable"] and m["required"]]
    firm = next(m["code"] for m in item["materials"] if m["required"] and not m["deferrable"])
    case_no = ready_for_formal(client, auth, item)
    base = f"/api/v1/cases/{case_no}"
    # Nothing to hand in before the formal submission.
    early = client.post(
        f"{base}/materials/{deferred[0]}/supplement-files",
        files={"file": ("x.pdf", PDF_BYTES, "application/pdf")},
        headers=auth,
    )
    assert early.status_code == 409
    client.post(
        f"{base}/submission",
        json={"commitment": {"deferred_materials": deferred, "accepted": True}},
        headers=auth,
    )
    assert (
        send(client, envelope(case_no, "case.accepted", {"acceptance_no": "SL1"})).status_code
        == 200
    )
    assert client.post(f"{base}/supplement", headers=auth).status_code == 422  # nothing uploaded
    wrong = client.post(
        f"{base}/materials/{firm}/supplement-files",
        files={"file": ("x.pdf", PDF_BYTES, "application/pdf")},
        headers=auth,
    )
    assert wrong.status_code == 409
    content = PDF_BYTES + b"%supplemented"
    upload_answer = client.post(
        f"{base}/materials/{deferred[0]}/supplement-files",
        files={"file": ("补交.pdf", content, "application/pdf")},
        headers=auth,
    )
    assert upload_answer.status_code == 201, upload_answer.text
    assert events(db, "materials.supplemented", case_no) == []  # not sent until handed in
    handed = client.post(f"{base}/supplement", headers=auth)
    assert handed.status_code == 202, handed.text
    sent = events(db, "materials.supplemented", case_no)
    assert len(sent) == 1
    assert [m["code"] for m in sent[0]["materials"]] == [deferred[0]]
    assert sent[0]["materials"][0]["files"][0]["sha256"] == upload_answer.json()["sha256"]
    assert sent[0]["materials"][0]["deferred"] is False
    case = handed.json()
    done = {d["code"]: d for d in case["commitment"]["deferred_materials"]}
    assert done[deferred[0]]["supplemented_at"]
    # The same material cannot be handed in twice.
    again = client.post(
        f"{base}/materials/{deferred[0]}/supplement-files",
        files={"file": ("again.pdf", PDF_BYTES + b"%2", "application/pdf")},
        headers=auth,
    )
    assert again.status_code == 409
    with db.session() as s:
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "materials.supplemented")
        ).one()
        assert upload_answer.json()["sha256"] in row.blobs  # the file is PUT before the event


def test_supplement_task_on_the_case_page(client, person, auth, db):
    item = deferrable_item(client)
    deferred = [m for m in item["materials"] if m["deferrable"] and m["required"]]
    case_no = ready_for_formal(client, auth, item)
    client.post(
        f"/api/v1/cases/{case_no}/submission",
        json={
            "commitment": {"deferred_materials": [m["code"] for m in deferred], "accepted": True}
        },
        headers=auth,
    )
    web_login(client, person)
    page = client.get(f"/cases/{case_no}")
    assert "待办：补交容缺材料" in page.text
    assert deferred[0]["name"] in page.text
    uploaded = client.post(
        f"/cases/{case_no}/supplements/{deferred[0]['code']}/files",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("健康证.pdf", PDF_BYTES + b"%page", "application/pdf")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303
    review = client.get(f"/cases/{case_no}/supplement")
    assert "核对补交材料" in review.text and "健康证.pdf" in review.text
    done = client.post(
        f"/cases/{case_no}/supplement",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert len(events(db, "materials.supplemented", case_no)) == 1
    after = client.get(f"/cases/{case_no}").text
    if len(deferred) == 1:
        assert "待办：补交容缺材料" not in after
    assert "补交容缺材料" in after  # on the timeline


# --- 告知承诺制 ---------------------------------------------------------------------------


def gaozhi_item(client) -> dict:
    return item_with(
        client,
        lambda i: (
            i["commitment"]
            and i["prereview"]
            and any(m["required"] and m["kind"] not in KEPT_KINDS for m in i["materials"])
        ),
    )


def test_gaozhi_promise_replaces_the_proofs_and_skips_prereview(client, auth, db):
    item = gaozhi_item(client)
    case_no = new_case(client, auth, item)["case_no"]
    client.patch(f"/api/v1/cases/{case_no}", json={"form": valid_form(item)}, headers=auth)
    kept = [m for m in item["materials"] if m["required"] and m["kind"] in KEPT_KINDS]
    replaced = [m["code"] for m in item["materials"] if m["kind"] not in KEPT_KINDS]
    url = f"/api/v1/cases/{case_no}/submission"
    # The kept materials are still needed.
    missing = client.post(
        url, json={"commitment": {"kind": "gaozhi", "accepted": True}}, headers=auth
    )
    assert missing.status_code == 422
    assert {f"materials.{m['code']}" for m in kept} <= set(missing.json()["error"]["fields"])
    for m in kept:
        assert upload(client, auth, case_no, m["code"]).status_code == 201
    # Without the promise this item needs pre-review first.
    assert client.post(url, headers=auth).status_code == 409
    unsigned = client.post(
        url, json={"commitment": {"kind": "gaozhi", "accepted": False}}, headers=auth
    )
    assert unsigned.status_code == 422
    assert "commitment.accepted" in unsigned.json()["error"]["fields"]
    mixed = client.post(
        url,
        json={
            "commitment": {"kind": "gaozhi", "accepted": True, "deferred_materials": replaced[:1]}
        },
        headers=auth,
    )
    assert mixed.status_code == 422
    signed = client.post(
        url, json={"commitment": {"kind": "gaozhi", "accepted": True}}, headers=auth
    )
    assert signed.status_code == 202, signed.text
    assert signed.json()["status"] == "submitted"
    data = events(db, "case.submitted", case_no)[-1]
    assert data["stage"] == "formal"
    assert data["commitment"]["kind"] == "gaozhi"
    assert data["commitment"]["text"] == item["commitment"]
    assert set(data["commitment"]["replaced_materials"]) == set(replaced)
    assert {m["code"] for m in data["materials"]} == {m["code"] for m in kept}


def test_gaozhi_is_refused_for_an_item_without_it(client, auth):
    item = item_with(client, lambda i: not i["commitment"] and not i["prereview"])
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    answer = client.post(
        f"/api/v1/cases/{case_no}/submission",
        json={"commitment": {"kind": "gaozhi", "accepted": True}},
        headers=auth,
    )
    assert answer.status_code == 422
    assert "告知承诺" in answer.json()["error"]["fields"]["commitment.kind"]
    odd = client.post(
        f"/api/v1/cases/{case_no}/submission",
        json={"commitment": {"kind": "whatever", "accepted": True}},
        headers=auth,
    )
    assert odd.status_code == 422


def test_gaozhi_on_the_check_your_answers_page(client, person, auth, db):
    item = gaozhi_item(client)
    case_no = new_case(client, auth, item)["case_no"]
    client.patch(f"/api/v1/cases/{case_no}", json={"form": valid_form(item)}, headers=auth)
    for m in item["materials"]:
        if m["required"] and m["kind"] in KEPT_KINDS:
            upload(client, auth, case_no, m["code"])
    web_login(client, person)
    review = client.get(f"/cases/{case_no}/review")
    assert item["commitment"][:20] in review.text
    assert "告知承诺可免交" in client.get(f"/cases/{case_no}").text
    refused = client.post(
        f"/cases/{case_no}/submission",
        data={"csrf_token": csrf_of(review.text), "commitment_kind": "gaozhi"},
    )
    assert refused.status_code == 422
    assert 'id="f-gaozhi_accepted-error"' in refused.text
    assert 'href="#f-gaozhi_accepted"' in refused.text
    done = client.post(
        f"/cases/{case_no}/submission",
        data={
            "csrf_token": csrf_of(review.text),
            "commitment_kind": "gaozhi",
            "gaozhi_accepted": "true",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert events(db, "case.submitted", case_no)[-1]["commitment"]["kind"] == "gaozhi"
