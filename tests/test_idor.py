"""IDOR: every route of the app, walked as a second account with the first account's identifiers.

The walker reads `app.routes` (so a route added tomorrow is walked tomorrow), fills
each path parameter with a real identifier of account A — a case number, file,
library document, 一件事 application, appointment, 12345 question, message — and
calls it as account B, logged in on the web *and* holding a bearer token, and
again with no credentials at all. Each must answer as if the thing did not
exist (401/403/404/405; for the JSON API the very body a missing id gets), show
none of A's data, and change nothing of A's. A path parameter the walker does not
know fails the test: teach it (OWNED, PUBLIC or CAPABILITY below) and say why.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from portal.notifications.models import Message
from tests.conftest import PDF_BYTES, bearer, csrf_of, jpeg_bytes, need, register, web_login
from tests.factories import (
    book,
    envelope,
    fill_everything,
    first_day,
    handled_case,
    new_case,
    send,
    upload,
    visit_item,
    visit_window,
)

# Identifiers that belong to an account: another account must never reach what they name.
OWNED = {
    "case_no",
    "file_id",
    "application_id",
    "sha256",
    "document_id",
    "appointment_id",
    "consultation_id",
    "message_id",
    "document_no",
    "authorisation_id",
    "address_id",
    "number",  # a licence's number (我的证照): only its holder applies about it
}
# Catalogue identifiers anyone may read (items, bundles, material codes and kinds, divisions).
PUBLIC = {"code", "kind", "material_code"}
# Signed links that are themselves the permission (a status link a citizen shares):
# a forged one must open nothing.
CAPABILITY = {"token"}

MISSING = {
    "case_no": "WJ20000101000001",
    "file_id": "999999",
    "application_id": "999999",
    "sha256": "0" * 64,
    "document_id": "999999",
    "appointment_id": "00000000-0000-4000-8000-000000000000",
    "consultation_id": "00000000-0000-4000-8000-000000000000",
    "message_id": "999999",
    "document_no": "武审受〔2000〕1号",
    "address_id": "999999",
    "number": "JY0000NOSUCH",
}
FORGED_TOKEN = "eyJjYXNlX25vIjoiV0oyMDAwMDEwMTAwMDAwMSJ9.ZZZZZZ.forged-signature-forged"
DENIED = {401, 403, 404, 405}


def routes_of(app) -> list[tuple[str, str]]:
    """(method, path template) of every route, routers included however they are mounted."""

    def walk(routes):
        for route in routes:
            expand = getattr(route, "effective_candidates", None)  # FastAPI's included routers
            if expand is not None:
                yield from walk(expand())
            elif hasattr(route, "routes") and not hasattr(route, "methods"):
                yield from walk(route.routes)
            else:
                yield route

    found = set()
    for route in walk(app.routes):
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, path))
    return sorted(found)


def params_of(path: str) -> list[str]:
    return re.findall(r"{(\w+)(?::\w+)?}", path)


def fill(path: str, values: dict[str, Any]) -> str:
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: str(values[m.group(1)]), path)


# --- account A and everything it owns -----------------------------------------------------


@pytest.fixture
def owner(app, client, db):
    """Account A with one of everything; returns its identifiers and private strings."""
    person = register(client, name="欧阳测甲")
    auth = bearer(client, person)
    marker = "甲的私密内容7f3a"
    ids: dict[str, Any] = {}

    items = [
        client.get(f"/api/v1/items/{s['code']}").json()
        for s in client.get("/api/v1/items").json()["items"]
    ]
    item = next(i for i in items if i["prereview"] and i["online"])
    draft = new_case(client, auth, item)["case_no"]
    code = item["materials"][0]["code"]
    # The marker rides in a JPEG comment segment: bytes after the end of the image are refused.
    comment = marker.encode()
    jpeg = jpeg_bytes((64, 48))
    photo = jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]
    file = upload(client, auth, draft, code, photo, "甲的照片.jpg", "image/jpeg").json()
    ids |= {"case_no": draft, "material_code": code, "file_id": file["id"], "code": item["code"]}

    # A case the bureau has handled: pre-review passed, which leaves a message for A.
    handled = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, handled)
    assert client.post(f"/api/v1/cases/{handled}/prereview", headers=auth).status_code == 202
    assert send(client, envelope(handled, "prereview.passed", {})).status_code == 200

    documents = client.get("/api/v1/library", headers=auth).json()["documents"]
    ids["document_id"] = documents[0]["id"]

    bundles = client.get("/api/v1/bundles").json()["bundles"]
    need(bool(bundles), "the bundled catalogue (with 一件事 bundles) for the IDOR walk")
    application = client.post(
        f"/api/v1/bundles/{bundles[0]['code']}/cases", json={"form": {}}, headers=auth
    ).json()
    kind = application["materials"][0]["kind"]
    response = client.post(
        f"/api/v1/bundle-applications/{application['id']}/materials/{kind}/files",
        files={"file": ("甲.pdf", PDF_BYTES + marker.encode(), "application/pdf")},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    ids |= {"application_id": application["id"], "kind": kind}
    ids["sha256"] = response.json()["sha256"]

    visit = visit_item(client)
    visiting = handled_case(db, person["account_id"], visit["code"])
    hall, window = visit_window(db, visit)
    day = first_day(client, auth, visiting)
    booked = book(client, auth, visiting, hall, window["number"], day)
    assert booked.status_code == 201, booked.text
    ids["appointment_id"] = booked.json()["appointment_id"]

    asked = client.post(
        "/api/v1/consultations",
        json={"kind": "complaint", "subject": "甲的投诉", "body": marker + "，请尽快处理。"},
        headers=auth,
    )
    assert asked.status_code == 201, asked.text
    ids["consultation_id"] = asked.json()["consultation_id"]

    with db.session() as session:
        message_id = session.scalars(
            select(Message.id).where(Message.account_id == person["account_id"])
        ).first()
    assert message_id is not None, "a bureau decision leaves a message for its applicant"
    ids["message_id"] = message_id
    # An authorisation (委托授权) A's account granted: written directly, since granting
    # needs a platform-verified legal person (tests/test_authorisations.py does that).
    from datetime import date

    from portal.accounts.models import Authorisation

    with db.session(write=True) as session, session.begin():
        granted = Authorisation(
            enterprise_id=person["account_id"],
            agent_id=person["account_id"],
            items=None,
            valid_to=date(2027, 12, 31),
        )
        session.add(granted)
        session.flush()
        ids["authorisation_id"] = granted.id
    ids["document_no"] = "武审受〔2026〕1号"  # A's case; B must get 404 exactly as for none
    # 常用地址: an express address of A's (the marker in its detail) lands in A's book.
    express = next(i for i in items if i["express"] and i["online"])
    posted_to = new_case(client, auth, express)["case_no"]
    address = {"recipient": "欧阳测甲", "phone": person["phone"], "province": "江苏省"}
    address |= {"city": "常州市", "district": "武进区", "detail": marker + "路 1 号"}
    chosen = client.put(
        f"/api/v1/cases/{posted_to}/delivery",
        json={"method": "express", "address": address},
        headers=auth,
    )
    assert chosen.status_code == 200, chosen.text
    ids["address_id"] = client.get("/api/v1/addresses", headers=auth).json()["addresses"][0]["id"]
    ids["token"] = FORGED_TOKEN
    # A licence in A's wallet (registered with its number): B's 延续/变更 about it is 404.
    registered = client.post(
        "/api/v1/licences",
        json={"number": "JY1320412IDOR01", "item_code": "SC0004", "valid_from": "2024-01-02"},
        headers=auth,
    )
    assert registered.status_code == 201, registered.text
    ids["number"] = "JY1320412IDOR01"

    secrets = [person["id_number"], person["phone"], person["name"], marker, draft, handled]
    secrets += [file["sha256"], ids["sha256"], visiting]
    return {
        "ids": ids,
        "auth": auth,
        "secrets": secrets,
        "contexts": {
            "a draft with files": draft,
            "a case in pre-review": handled,
            "a visit": visiting,
        },
        "hall": hall,
        "window": window["number"],
        "day": day,
        "account_id": person["account_id"],
    }


def snapshot(client: TestClient, db, owner: dict) -> str:
    """Everything A can see of A's own data (and the read state of A's messages)."""
    auth, ids = owner["auth"], owner["ids"]
    views = {
        "cases": client.get("/api/v1/cases", headers=auth).json(),
        "library": client.get("/api/v1/library", headers=auth).json(),
        "application": client.get(
            f"/api/v1/bundle-applications/{ids['application_id']}", headers=auth
        ).json(),
        "consultation": client.get(
            f"/api/v1/consultations/{ids['consultation_id']}", headers=auth
        ).json(),
        "appointments": client.get(
            f"/api/v1/cases/{owner['contexts']['a visit']}/appointments", headers=auth
        ).json(),
    }
    with db.session() as session:
        views["messages read"] = [
            str(m.read_at)
            for m in session.scalars(
                select(Message)
                .where(Message.account_id == owner["account_id"])
                .order_by(Message.id)
            )
        ]
    return json.dumps(views, sort_keys=True, ensure_ascii=False, default=str)


# --- calling a route ------------------------------------------------------------------------


def api_body(path: str, owner: dict) -> dict | None:
    """A valid body for each JSON route that takes one, so the call reaches the ownership check."""
    document = owner["ids"]["document_id"]
    return {
        "/api/v1/cases/{case_no}": {"form": {}},
        "/api/v1/cases/{case_no}/withdrawal": {"reason": "不想办了"},
        "/api/v1/cases/{case_no}/submission": {},
        "/api/v1/cases/{case_no}/materials/{material_code}/library-files": {
            "document_id": document
        },
        "/api/v1/cases/{case_no}/appointments": {
            "purpose": "visit",
            "hall": owner["hall"],
            "window": owner["window"],
            "date": owner["day"],
            "period": "am",
        },
        "/api/v1/cases/{case_no}/delivery": {"method": "pickup", "hall": owner["hall"]},
        "/api/v1/cases/{case_no}/originals": {"method": "counter", "hall": owner["hall"]},
        "/api/v1/cases/{case_no}/rating": {"level": 5, "comment": ""},
        "/api/v1/bundle-applications/{application_id}": {"form": {}},
        "/api/v1/bundle-applications/{application_id}/submission": {},
        "/api/v1/bundle-applications/{application_id}/materials/{kind}/library-files": {
            "document_id": document
        },
        "/api/v1/library/{document_id}": {"valid_to": ""},
    }.get(path)


def call(client, method, template, values, *, headers, csrf, owner):
    url = fill(template, values)
    if method in ("GET", "DELETE"):
        return client.request(method, url, headers=headers, follow_redirects=False)
    upload_route = template.endswith("/files") and method == "POST"
    if template.startswith("/api/"):
        if upload_route:
            files = {"file": ("b.pdf", PDF_BYTES + b"%B", "application/pdf")}
            return client.request(method, url, headers=headers, files=files, follow_redirects=False)
        body = api_body(template, owner)
        return client.request(
            method,
            url,
            headers=headers,
            json=body if body is not None else {},
            follow_redirects=False,
        )
    form = {"csrf_token": csrf, "reason": "x", "document_id": str(owner["ids"]["document_id"])}
    files = {"file": ("b.pdf", PDF_BYTES + b"%B", "application/pdf")} if upload_route else None
    return client.request(
        method, url, headers=headers, data=form, files=files, follow_redirects=False
    )


def leaks(response, secrets: list[str]) -> list[str]:
    text = response.content.decode("utf-8", "replace")
    return [s for s in secrets if s and s in text]


# --- the walk -------------------------------------------------------------------------------


def test_every_route_refuses_another_accounts_things(app, client, db, owner):
    stranger = register(client, name="陌生乙")
    b_auth = bearer(client, stranger)
    b_client = TestClient(app)
    web_login(b_client, stranger)
    b_csrf = csrf_of(b_client.get("/account").text)
    anonymous = TestClient(app)
    before = snapshot(client, db, owner)

    routes = routes_of(app)
    assert len(routes) > 80, "the walker found too few routes: is it reading app.routes?"
    unknown: dict[str, list[str]] = {}
    problems: list[str] = []
    walked = 0
    for method, template in routes:
        names = params_of(template)
        for name in names:
            if name not in OWNED | PUBLIC | CAPABILITY:
                unknown.setdefault(name, []).append(f"{method} {template}")
        if any(n not in OWNED | PUBLIC | CAPABILITY for n in names):
            continue
        guarded = [n for n in names if n in OWNED or n in CAPABILITY]
        if not guarded:
            # Public or the caller's own (lists, catalogue): reading it as B shows nothing of A.
            if method == "GET":
                response = b_client.get(fill(template, owner["ids"]), headers=b_auth)
                if leaked := leaks(response, owner["secrets"]):
                    problems.append(f"{method} {template}: shows A's {leaked}")
            continue
        contexts = owner["contexts"].values() if "case_no" in names else [None]
        for case_no in contexts:
            values = dict(owner["ids"])
            if case_no is not None:
                values["case_no"] = case_no
            missing = {**values, **{n: MISSING[n] for n in guarded if n in MISSING}}
            label = f"{method} {fill(template, values)}"
            walked += 1
            theirs = call(
                b_client, method, template, values, headers=b_auth, csrf=b_csrf, owner=owner
            )
            if theirs.status_code not in DENIED:
                problems.append(f"{label} as B: {theirs.status_code} {theirs.text[:200]}")
            elif theirs.status_code == 403 and (
                "csrf" in theirs.text or "页面已过期" in theirs.text
            ):
                problems.append(f"{label}: stopped by CSRF, never reached the ownership check")
            elif theirs.status_code == 422:
                problems.append(f"{label}: give the walker a valid body for this route")
            if leaked := leaks(theirs, owner["secrets"]):
                problems.append(f"{label} as B shows A's {leaked}")
            if template.startswith("/api/") and "token" not in guarded:
                absent = call(
                    b_client, method, template, missing, headers=b_auth, csrf=b_csrf, owner=owner
                )
                if (absent.status_code, absent.content) != (theirs.status_code, theirs.content):
                    problems.append(
                        f"{label}: A's answers {theirs.status_code} {theirs.text[:120]}, "
                        f"a missing one {absent.status_code} {absent.text[:120]}"
                    )
            nobody = call(anonymous, method, template, values, headers={}, csrf="", owner=owner)
            to_login = nobody.status_code == 303 and nobody.headers["location"].startswith("/login")
            if nobody.status_code not in DENIED and not to_login:
                problems.append(f"{label} anonymously: {nobody.status_code} {nobody.text[:200]}")
            if leaked := leaks(nobody, owner["secrets"]):
                problems.append(f"{label} anonymously shows A's {leaked}")

    assert not unknown, (
        "routes with path parameters the IDOR walker cannot fill — add each name to OWNED, "
        f"PUBLIC or CAPABILITY in tests/test_idor.py (and a value to the owner fixture): {unknown}"
    )
    assert walked > 60
    assert not problems, "\n".join(problems)
    assert snapshot(client, db, owner) == before, "B's calls changed A's data"
