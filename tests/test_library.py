"""材料一套清: the document library, reuse without uploading again, validity, deletion."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from sqlalchemy import func, select

from portal.clock import today_cst
from portal.exchange.models import OutboxMessage
from portal.materials.models import Blob, CaseFile
from tests.conftest import PDF_BYTES, bearer, csrf_of, register, valid_form, web_login
from tests.factories import (
    approved_with_licence,
    fill_everything,
    licence_item,
    new_case,
    upload,
)


def items_sharing_a_kind(client) -> tuple[dict, dict, dict]:
    """Two items that both require a material of the same (reusable) kind."""
    seen: dict[str, dict] = {}
    for summary in client.get("/api/v1/items").json()["items"]:
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        for m in item["materials"]:
            if not m["required"] or m["kind"] == "application_form" or not summary["online"]:
                continue
            if m["kind"] in seen and seen[m["kind"]]["code"] != item["code"]:
                return seen[m["kind"]], item, m
            seen.setdefault(m["kind"], item)
    raise AssertionError("no two items share a material kind")


def material_of_kind(item: dict, kind: str) -> dict:
    return next(m for m in item["materials"] if m["kind"] == kind)


def blob_count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Blob))


def test_every_upload_lands_in_the_library_once_by_hash(client, auth):
    first, second, material = items_sharing_a_kind(client)
    a = new_case(client, auth, first)["case_no"]
    b = new_case(client, auth, first)["case_no"]
    assert (
        upload(client, auth, a, material_of_kind(first, material["kind"])["code"]).status_code
        == 201
    )
    assert (
        upload(client, auth, b, material_of_kind(first, material["kind"])["code"]).status_code
        == 201
    )
    documents = client.get("/api/v1/library", headers=auth).json()["documents"]
    assert len(documents) == 1
    assert documents[0]["kind"] == material["kind"]
    assert documents[0]["source"] == "upload" and documents[0]["expired"] is False
    assert documents[0]["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()


def test_reusing_a_library_file_does_not_upload_it_again(client, person, auth, db, settings):
    first, second, material = items_sharing_a_kind(client)
    content = PDF_BYTES + b"%lease, signed 2026"
    old = new_case(client, auth, first)["case_no"]
    code_old = material_of_kind(first, material["kind"])["code"]
    uploaded = upload(client, auth, old, code_old, content, "租赁合同.pdf").json()
    blobs_before = blob_count(db)
    files_before = [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]

    new = new_case(client, auth, second)["case_no"]
    code_new = material_of_kind(second, material["kind"])["code"]
    offers = client.get(f"/api/v1/library?kind={material['kind']}", headers=auth).json()[
        "documents"
    ]
    assert [d["sha256"] for d in offers] == [uploaded["sha256"]]
    picked = client.post(
        f"/api/v1/cases/{new}/materials/{code_new}/library-files",
        json={"document_id": offers[0]["id"]},
        headers=auth,
    )
    assert picked.status_code == 201, picked.text
    assert picked.json()["sha256"] == uploaded["sha256"]
    assert picked.json()["filename"] == "租赁合同.pdf"
    assert blob_count(db) == blobs_before
    assert [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()] == files_before
    twice = client.post(
        f"/api/v1/cases/{new}/materials/{code_new}/library-files",
        json={"document_id": offers[0]["id"]},
        headers=auth,
    )
    assert twice.status_code == 409
    # The reused file leaves with the case like any other.
    fill_everything(client, auth, second, new)
    endpoint = "prereview" if second["prereview"] else "submission"
    assert client.post(f"/api/v1/cases/{new}/{endpoint}", headers=auth).status_code == 202
    with db.session() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.case_no == new)).one()
    data = json.loads(row.payload)["data"]
    entry = next(m for m in data["materials"] if m["code"] == code_new)
    assert uploaded["sha256"] in {f["sha256"] for f in entry["files"]}
    assert uploaded["sha256"] in row.blobs
    # The page offers it with one tap, too.
    third = new_case(client, auth, second)["case_no"]
    blobs_before = blob_count(db)
    web_login(client, person)
    page = client.get(f"/cases/{third}")
    assert "材料库中已有" in page.text and "选用“租赁合同.pdf”" in page.text
    tapped = client.post(
        f"/cases/{third}/materials/{code_new}/library",
        data={"csrf_token": csrf_of(page.text), "document_id": str(offers[0]["id"])},
        follow_redirects=False,
    )
    assert tapped.status_code == 303
    assert blob_count(db) == blobs_before


def test_a_document_of_another_kind_cannot_stand_in(client, auth):
    first, second, material = items_sharing_a_kind(client)
    case_no = new_case(client, auth, first)["case_no"]
    upload(client, auth, case_no, material_of_kind(first, material["kind"])["code"])
    document = client.get("/api/v1/library", headers=auth).json()["documents"][0]
    other = next(
        m
        for m in second["materials"]
        if m["kind"] != material["kind"] and m["kind"] != "application_form"
    )
    target = new_case(client, auth, second)["case_no"]
    answer = client.post(
        f"/api/v1/cases/{target}/materials/{other['code']}/library-files",
        json={"document_id": document["id"]},
        headers=auth,
    )
    assert answer.status_code == 422
    assert "类型" in answer.json()["error"]["message"]


def test_issued_licences_join_the_library_and_expired_ones_are_not_offered(client, auth, app):
    item = licence_item(client)
    yesterday = (today_cst() - timedelta(days=1)).isoformat()
    approved_with_licence(client, auth, app, item, valid_to=yesterday, number="OLD-1")
    approved_with_licence(client, auth, app, item, valid_to=None, number="NEW-2")
    documents = client.get("/api/v1/library", headers=auth).json()["documents"]
    licences = {d["licence_number"]: d for d in documents if d["source"] == "licence"}
    assert set(licences) == {"OLD-1", "NEW-2"}
    assert licences["OLD-1"]["expired"] is True and licences["NEW-2"]["expired"] is False
    assert {d["kind"] for d in licences.values()} == {"business_licence"}
    offered = client.get("/api/v1/library?kind=business_licence", headers=auth).json()["documents"]
    assert [d["licence_number"] for d in offered] == ["NEW-2"]
    # An item needing a 营业执照: only the valid one is offered, the expired one is refused.
    needing = None
    for summary in client.get("/api/v1/items").json()["items"]:
        candidate = client.get(f"/api/v1/items/{summary['code']}").json()
        if summary["online"] and any(
            m["kind"] == "business_licence" for m in candidate["materials"]
        ):
            needing = candidate
            break
    assert needing is not None
    case_no = new_case(client, auth, needing)["case_no"]
    code = material_of_kind(needing, "business_licence")["code"]
    refused = client.post(
        f"/api/v1/cases/{case_no}/materials/{code}/library-files",
        json={"document_id": licences["OLD-1"]["id"]},
        headers=auth,
    )
    assert refused.status_code == 422 and "过期" in refused.json()["error"]["message"]
    ok = client.post(
        f"/api/v1/cases/{case_no}/materials/{code}/library-files",
        json={"document_id": licences["NEW-2"]["id"]},
        headers=auth,
    )
    assert ok.status_code == 201
    # A licence's validity is the issuer's, not the citizen's to change.
    assert (
        client.patch(
            f"/api/v1/library/{licences['NEW-2']['id']}", json={"valid_to": ""}, headers=auth
        ).status_code
        == 409
    )


def test_uploaded_document_validity_can_be_recorded(client, person, auth):
    first, _, material = items_sharing_a_kind(client)
    case_no = new_case(client, auth, first)["case_no"]
    upload(client, auth, case_no, material_of_kind(first, material["kind"])["code"])
    document = client.get("/api/v1/library", headers=auth).json()["documents"][0]
    bad = client.patch(
        f"/api/v1/library/{document['id']}", json={"valid_to": "2026-13-40"}, headers=auth
    )
    assert bad.status_code == 422 and "valid_to" in bad.json()["error"]["fields"]
    past = (today_cst() - timedelta(days=3)).isoformat()
    assert client.patch(
        f"/api/v1/library/{document['id']}", json={"valid_to": past}, headers=auth
    ).json()["expired"]
    assert (
        client.get(f"/api/v1/library?kind={material['kind']}", headers=auth).json()["documents"]
        == []
    )
    web_login(client, person)
    page = client.get("/library")
    assert "已过期" in page.text
    wrong = client.post(
        f"/library/{document['id']}/validity",
        data={"csrf_token": csrf_of(page.text), "valid_to": "明年"},
    )
    assert wrong.status_code == 422
    assert (
        f'id="f-valid_to-{document["id"]}-error"' in wrong.text
        and 'id="error-summary"' in wrong.text
    )


def test_deleting_from_the_library_never_breaks_a_submitted_case(client, person, auth, db):
    item = next(
        client.get(f"/api/v1/items/{s['code']}").json()
        for s in client.get("/api/v1/items").json()["items"]
        if s["online"] and not s["prereview"]
    )
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    client.patch(f"/api/v1/cases/{case_no}", json={"form": valid_form(item)}, headers=auth)
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    case_before = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    with db.session() as s:
        payload_before = s.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.case_no == case_no)
        ).one()
    for document in client.get("/api/v1/library", headers=auth).json()["documents"]:
        assert client.delete(f"/api/v1/library/{document['id']}", headers=auth).status_code == 204
    assert client.get("/api/v1/library", headers=auth).json()["documents"] == []
    assert (
        client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["materials"]
        == case_before["materials"]
    )
    with db.session() as s:
        assert (
            s.scalars(select(OutboxMessage.payload).where(OutboxMessage.case_no == case_no)).one()
            == payload_before
        )
        assert s.scalar(select(func.count()).select_from(CaseFile)) > 0
    file_id = next(f["id"] for m in case_before["materials"] for f in m["files"])
    web_login(client, person)
    served = client.get(f"/cases/{case_no}/files/{file_id}")
    assert served.status_code == 200 and served.content.startswith(b"%PDF")


def test_another_accounts_document_is_404_like_a_missing_one(client, auth):
    first, second, material = items_sharing_a_kind(client)
    case_no = new_case(client, auth, first)["case_no"]
    upload(client, auth, case_no, material_of_kind(first, material["kind"])["code"])
    document = client.get("/api/v1/library", headers=auth).json()["documents"][0]
    other = bearer(client, register(client))
    assert client.get("/api/v1/library", headers=other).json()["documents"] == []
    mine = new_case(client, other, second)["case_no"]
    stolen = client.post(
        f"/api/v1/cases/{mine}/materials/{material_of_kind(second, material['kind'])['code']}/library-files",
        json={"document_id": document["id"]},
        headers=other,
    )
    missing = client.post(
        f"/api/v1/cases/{mine}/materials/{material_of_kind(second, material['kind'])['code']}/library-files",
        json={"document_id": 99999},
        headers=other,
    )
    assert stolen.status_code == missing.status_code == 404
    assert stolen.json()["error"]["message"] == missing.json()["error"]["message"]
    assert client.delete(f"/api/v1/library/{document['id']}", headers=other).status_code == 404
    assert (
        client.patch(
            f"/api/v1/library/{document['id']}", json={"valid_to": ""}, headers=other
        ).status_code
        == 404
    )
    assert client.delete("/api/v1/library/99999999999", headers=other).status_code == 422
    assert len(client.get("/api/v1/library", headers=auth).json()["documents"]) == 1
