"""Drafts, forms, uploads and submission through the JSON API and the pages."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from portal.exchange.models import OutboxMessage
from portal.materials.models import Blob
from tests.conftest import (
    PDF_BYTES,
    bearer,
    csrf_of,
    jpeg_bytes,
    pick_item,
    png_bytes,
    register,
    valid_form,
    web_login,
)
from tests.factories import fill_everything, new_case, upload


def test_case_number_and_shape(client, auth):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    assert case["status"] == "draft"
    assert case["status_label"] == "草稿"
    assert case["case_no"].startswith("WJ") and len(case["case_no"]) == 16
    assert [m["code"] for m in case["materials"]] == [m["code"] for m in item["materials"]]
    assert case["timeline"][0]["type"] == "case.created"
    assert (
        client.get("/api/v1/cases", headers=auth).json()["cases"][0]["case_no"] == case["case_no"]
    )


def test_form_values_are_validated_by_type(client, auth):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    fields = {f["type"]: f for f in item["fields"]}
    bad = {}
    if "number" in fields:
        bad[fields["number"]["name"]] = "很多"
    if "date" in fields:
        bad[fields["date"]["name"]] = "2026-02-30"
    if "select" in fields:
        bad[fields["select"]["name"]] = "不存在的选项"
    if "phone" in fields:
        bad[fields["phone"]["name"]] = "12"
    bad["no_such_field"] = "x"
    response = client.patch(f"/api/v1/cases/{case['case_no']}", json={"form": bad}, headers=auth)
    assert response.status_code == 422
    problems = response.json()["error"]["fields"]
    assert set(problems) == {f"form.{name}" for name in bad}
    assert all(isinstance(text, str) and text for text in problems.values())
    good = client.patch(
        f"/api/v1/cases/{case['case_no']}", json={"form": valid_form(item)}, headers=auth
    )
    assert good.status_code == 200
    assert good.json()["form"] == {k: v for k, v in valid_form(item).items()}


def test_uploads_checked_by_content(client, auth):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    code = item["materials"][0]["code"]
    pdf = upload(client, auth, case["case_no"], code)
    assert pdf.status_code == 201
    assert pdf.json()["content_type"] == "application/pdf"
    png = upload(client, auth, case["case_no"], code, png_bytes(), "照片.png", "image/png")
    assert png.status_code == 201
    jpg = upload(client, auth, case["case_no"], code, jpeg_bytes(), "photo.JPG", "image/jpeg")
    assert jpg.status_code == 201 and jpg.json()["filename"] == "photo.jpg"
    # An executable renamed .pdf, declared as a PDF: refused by its content.
    exe = b"MZ\x90\x00" + b"\x00" * 200
    response = upload(client, auth, case["case_no"], code, exe, "申请书.pdf", "application/pdf")
    assert response.status_code == 415
    assert "PDF" in response.json()["error"]["message"]
    # A JPEG declared as PDF is still a JPEG.
    response = upload(client, auth, case["case_no"], code, jpeg_bytes(), "x.pdf", "application/pdf")
    assert response.status_code == 201 and response.json()["content_type"] == "image/jpeg"
    files = client.get(f"/api/v1/cases/{case['case_no']}", headers=auth).json()["materials"][0][
        "files"
    ]
    assert len(files) == 4


def test_oversize_upload_is_413_and_nothing_kept(client, auth, settings):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    big = b"%PDF-1.4\n" + b"0" * (settings.max_upload_bytes + 10)
    response = upload(client, auth, case["case_no"], item["materials"][0]["code"], big)
    assert response.status_code == 413
    assert "MB" in response.json()["error"]["message"]
    assert list((settings.data_dir / "tmp").iterdir()) == []
    assert not any(p.is_file() for p in (settings.data_dir / "blobs").rglob("*"))


def test_same_file_in_two_cases_is_stored_once_and_encrypted(client, auth, person, db, settings):
    item = pick_item(client, prereview=True)
    one, two = new_case(client, auth, item), new_case(client, auth, item)
    code = item["materials"][0]["code"]
    a = upload(client, auth, one["case_no"], code).json()
    b = upload(client, auth, two["case_no"], code).json()
    assert a["sha256"] == b["sha256"] and a["id"] != b["id"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Blob)) == 1
    stored = [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert not stored[0].read_bytes().startswith(b"%PDF")
    # Served back byte for byte to its owner only.
    assert (
        client.get(f"/cases/{one['case_no']}/files/{a['id']}", follow_redirects=False).status_code
        == 303
    )
    web_login(client, person)
    served = client.get(f"/cases/{one['case_no']}/files/{a['id']}")
    assert served.status_code == 200 and served.content == PDF_BYTES
    assert served.headers["content-type"] == "application/pdf"


def test_other_accounts_case_is_404_like_a_missing_one(client, auth):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    stranger = bearer(client, register(client, name="陌生人"))
    for method, path in [
        ("get", f"/api/v1/cases/{case['case_no']}"),
        ("patch", f"/api/v1/cases/{case['case_no']}"),
        ("post", f"/api/v1/cases/{case['case_no']}/prereview"),
        ("post", f"/api/v1/cases/{case['case_no']}/withdrawal"),
    ]:
        kwargs = {"json": {"form": {}}} if method == "patch" else {}
        theirs = getattr(client, method)(path, headers=stranger, **kwargs)
        missing = getattr(client, method)(
            path.replace(case["case_no"], "WJ20000101000001"), headers=stranger, **kwargs
        )
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json() == missing.json()
    response = upload(client, stranger, case["case_no"], item["materials"][0]["code"])
    assert response.status_code == 404


def test_prereview_lists_everything_missing_then_goes(client, auth, db):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    response = client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth)
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    # What the account already holds is filled in on creation (accounts/prefill.py).
    required_fields = {
        f"form.{f['name']}"
        for f in item["fields"]
        if f["required"] and f["name"] not in case["form"]
    }
    required_materials = {
        f"materials.{m['code']}" for m in item["materials"] if m["required"] and not m["deferrable"]
    }
    assert required_fields | required_materials == set(fields)
    fill_everything(client, auth, item, case["case_no"])
    response = client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth)
    assert response.status_code == 202
    assert response.json()["status"] == "prereview"
    # Not editable any more; a second submission is a conflict.
    assert (
        client.patch(
            f"/api/v1/cases/{case['case_no']}", json={"form": {}}, headers=auth
        ).status_code
        == 409
    )
    assert upload(client, auth, case["case_no"], item["materials"][0]["code"]).status_code == 409
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth).status_code == 409
    )
    with db.session() as session:
        message = session.scalars(select(OutboxMessage)).one()
    envelope = json.loads(message.payload)
    assert envelope["type"] == "case.submitted" and envelope["case_no"] == case["case_no"]
    data = envelope["data"]
    assert data["stage"] == "prereview" and data["round"] == 1
    assert data["item"] == {"code": item["code"], "name": item["name"]}
    assert data["applicant"]["id_type"] == "RIC"
    assert set(message.blobs) == {f["sha256"] for m in data["materials"] for f in m["files"]}


def test_formal_submission_needs_prereview_when_the_item_has_it(client, auth):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    fill_everything(client, auth, item, case["case_no"])
    response = client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth)
    assert response.status_code == 409


def test_item_without_prereview_goes_straight_to_submitted(client, auth):
    item = pick_item(client, prereview=False)
    case = new_case(client, auth, item)
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth).status_code == 409
    )
    fill_everything(client, auth, item, case["case_no"])
    response = client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "submitted"


def test_withdraw_a_draft_and_a_submitted_case(client, auth, db):
    item = pick_item(client, prereview=True)
    draft = new_case(client, auth, item)
    response = client.post(
        f"/api/v1/cases/{draft['case_no']}/withdrawal", json={"reason": "填错了"}, headers=auth
    )
    assert response.status_code == 200 and response.json()["status"] == "withdrawn"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert (
        client.post(f"/api/v1/cases/{draft['case_no']}/withdrawal", headers=auth).status_code == 409
    )


def test_delete_file_from_draft(client, auth):
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    code = item["materials"][0]["code"]
    file_id = upload(client, auth, case["case_no"], code).json()["id"]
    assert (
        client.delete(
            f"/api/v1/cases/{case['case_no']}/materials/{code}/files/{file_id}", headers=auth
        ).status_code
        == 204
    )
    assert (
        client.delete(
            f"/api/v1/cases/{case['case_no']}/materials/{code}/files/{file_id}", headers=auth
        ).status_code
        == 404
    )


def test_unknown_item_and_material(client, auth):
    assert (
        client.post("/api/v1/cases", json={"item_code": "XX9999"}, headers=auth).status_code == 404
    )
    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    assert upload(client, auth, case["case_no"], "NOPE").status_code == 404


def test_pages_walk_from_item_to_check_your_answers(client, person):
    item = pick_item(client, prereview=True)
    web_login(client, person)
    page = client.get(f"/items/{item['code']}")
    assert page.status_code == 200 and item["name"] in page.text
    created = client.post(
        "/cases",
        data={"item_code": item["code"], "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert created.status_code == 303
    form_url = created.headers["location"]
    case_no = form_url.split("/")[2]
    form_page = client.get(form_url)
    data = {f"form.{k}": ("true" if v is True else str(v)) for k, v in valid_form(item).items()}
    data["csrf_token"] = csrf_of(form_page.text)
    saved = client.post(form_url, data=data, follow_redirects=False)
    assert saved.status_code == 303
    case_page = client.get(f"/cases/{case_no}")
    token = csrf_of(case_page.text)
    for m in item["materials"]:
        if m["required"]:
            r = client.post(
                f"/cases/{case_no}/materials/{m['code']}/files",
                data={"csrf_token": token},
                files={"file": ("扫描件.pdf", PDF_BYTES, "application/pdf")},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text
    review = client.get(f"/cases/{case_no}/review")
    assert review.status_code == 200
    assert "核对申请内容" in review.text and "扫描件.pdf" in review.text
    assert person["id_number"] not in review.text


def test_page_upload_without_csrf_is_403_and_writes_nothing(client, person, settings):
    item = pick_item(client, prereview=True)
    web_login(client, person)
    page = client.get(f"/items/{item['code']}")
    created = client.post(
        "/cases",
        data={"item_code": item["code"], "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    case_no = created.headers["location"].split("/")[2]
    response = client.post(
        f"/cases/{case_no}/materials/{item['materials'][0]['code']}/files",
        files={"file": ("a.pdf", PDF_BYTES, "application/pdf")},
    )
    assert response.status_code == 403
    assert list((settings.data_dir / "tmp").iterdir()) == []


def test_page_upload_error_shows_next_to_material(client, person):
    item = pick_item(client, prereview=True)
    web_login(client, person)
    page = client.get(f"/items/{item['code']}")
    created = client.post(
        "/cases",
        data={"item_code": item["code"], "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    case_no = created.headers["location"].split("/")[2]
    case_page = client.get(f"/cases/{case_no}")
    code = item["materials"][0]["code"]
    response = client.post(
        f"/cases/{case_no}/materials/{code}/files",
        data={"csrf_token": csrf_of(case_page.text)},
        files={"file": ("virus.pdf", b"#!/bin/sh\nrm -rf /\n", "application/pdf")},
    )
    assert response.status_code == 415
    assert 'id="error-summary"' in response.text and f'id="err-{code}"' in response.text
