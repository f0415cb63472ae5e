"""Accounts and cases in a given state, built the way a citizen and the bureau would.

Everything goes through the portal's own doors: the JSON API for the citizen, signed
callbacks (as the reference bureau sends them) for the bureau's decisions. Nothing is
written into the database behind the services' backs, except `handled_case`, which
says so. Tests that need "a case, accepted" ask `make_case(client, auth, "accepted")`
instead of copying the steps.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from portal.cases.models import Case
from portal.cases.service import next_case_no
from portal.catalogue.models import Hall
from portal.clock import today_cst, utcnow
from portal.composition import build_dispatcher
from portal.exchange import signing
from portal.exchange.licences import store_licence
from portal.exchange.models import OutboxMessage
from tests.conftest import (
    PDF_BYTES,
    bearer,
    make_phone,
    make_ric,
    make_uscc,
    pick_item,
    register,
    valid_form,
)

# --- drafts: a case, its form, its files ----------------------------------------------


def new_case(client, auth, item, form=None):
    response = client.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": form or {}}, headers=auth
    )
    assert response.status_code == 201, response.text
    return response.json()


def upload(
    client, auth, case_no, code, content=PDF_BYTES, name="scan.pdf", ctype="application/pdf"
):
    return client.post(
        f"/api/v1/cases/{case_no}/materials/{code}/files",
        files={"file": (name, content, ctype)},
        headers=auth,
    )


def fill_everything(client, auth, item, case_no, *, skip_deferrable=False):
    assert (
        client.patch(
            f"/api/v1/cases/{case_no}", json={"form": valid_form(item)}, headers=auth
        ).status_code
        == 200
    )
    for m in item["materials"]:
        if not m["required"] or (skip_deferrable and m["deferrable"]):
            continue
        assert upload(client, auth, case_no, m["code"]).status_code == 201


# --- the bureau's side: signed callbacks in, a fake bureau for the dispatcher ---------

SECRET = "test-bureau-secret"


def envelope(case_no, type_, data, *, event_id=None, occurred_at="2026-11-23T10:00:00+08:00"):
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": type_,
        "occurred_at": occurred_at,
        "case_no": case_no,
        "data": data,
    }


def send(client, body: dict | bytes, *, secret=SECRET, t=None, header=None):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[signing.BUREAU_HEADER] = header
    elif secret is not None:
        headers[signing.BUREAU_HEADER] = signing.sign(secret, raw, now=t)
    return client.post("/api/bureau/v1/events", content=raw, headers=headers)


def status(client, auth, case_no):
    return client.get(f"/api/v1/cases/{case_no}", headers=auth).json()


class FakeBureau:
    """A transport that records what the dispatcher sends and answers from a script."""

    def __init__(self, answers=None):
        self.answers = list(answers or [])
        self.events: list[dict] = []
        self.blobs: dict[str, bytes] = {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = request.read()
        header = request.headers.get(signing.PORTAL_HEADER)
        assert signing.verify(SECRET, header, body), "unsigned or badly signed request"
        if self.answers:
            answer = self.answers.pop(0)
            if answer != 200:
                return httpx.Response(answer, headers={"Retry-After": "0"})
        if request.method == "PUT":
            sha = request.url.path.rsplit("/", 1)[1]
            assert hashlib.sha256(body).hexdigest() == sha
            self.blobs[sha] = body
            return httpx.Response(201, json={"status": "stored"})
        event = json.loads(body)
        for material in event["data"].get("materials", []):
            for f in material["files"]:
                assert f["sha256"] in self.blobs, "event sent before its blob"
        self.events.append(event)
        return httpx.Response(200, json={"status": "ok"})


def drain(settings, db, fake, rounds=20):
    dispatcher = build_dispatcher(settings, db, transport=httpx.MockTransport(fake))

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
            dispatcher.client = client
            for _ in range(rounds):
                if not await dispatcher.run_once():
                    await asyncio.sleep(0.01)
                    with db.session() as session:
                        pending = session.scalars(
                            select(OutboxMessage).where(OutboxMessage.status == "pending")
                        ).all()
                    if not pending or all(
                        p.next_attempt_at.timestamp() > time.time() + 5 for p in pending
                    ):
                        break

    asyncio.run(go())


# --- a case formally submitted, accepted, approved (delivery and licence) -------------

GOOD_ADDRESS = {
    "recipient": "李经办",
    "phone": "13912345678",
    "province": "江苏省",
    "city": "常州市",
    "district": "武进区",
    "detail": "湖塘镇人民中路 88 号",
}


LICENCE = {
    "name": "许可证",
    "number": "XK-001",
    "valid_from": "2026-11-27",
    "filename": "XK-001.pdf",
    "content_type": "application/pdf",
    "sha256": "5" * 64,
}


def bureau(client, case_no, type_, data, **kw):
    response = send(client, envelope(case_no, type_, data, **kw))
    assert response.status_code == 200, response.text
    return response


def submitted_case(client, auth, *, express: bool | None = True) -> tuple[dict, str]:
    """A case formally submitted (an item without pre-review, so one step)."""
    item = pick_item(client, prereview=False, express=express)
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    response = client.post(f"/api/v1/cases/{case_no}/submission", headers=auth)
    assert response.status_code == 202, response.text
    return item, case_no


def accept(client, case_no):
    bureau(client, case_no, "case.accepted", {"acceptance_no": "SL-1", "due_date": "2030-01-10"})


def approve(client, case_no):
    accept(client, case_no)
    bureau(client, case_no, "case.approved", {"decision_no": "决-1", "licence": LICENCE})


def sent_events(db, type_, case_no=None):
    """The outbox's messages of a type (whole envelopes), oldest first."""
    with db.session() as session:
        query = select(OutboxMessage).where(OutboxMessage.event_type == type_)
        if case_no:
            query = query.where(OutboxMessage.case_no == case_no)
        return [json.loads(m.payload) for m in session.scalars(query.order_by(OutboxMessage.id))]


def put_delivery(client, auth, case_no, body):
    return client.put(f"/api/v1/cases/{case_no}/delivery", json=body, headers=auth)


# --- 补正 after the formal submission ---------------------------------------------------


def two_material_item(client) -> dict:
    """An item filed without pre-review that asks for at least two materials."""
    for summary in client.get("/api/v1/items").json()["items"]:
        if summary["prereview"] or not summary["online"]:
            continue
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        if sum(m["required"] for m in item["materials"]) >= 2:
            return item
    raise AssertionError("the catalogue has no such item")


def cst_at(day: date, hour: int = 10) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00+08:00"


def request_correction(client, case_no, code, *, day=None, due=None):
    data = {"comment": "材料不符合法定形式", "materials": [{"code": code, "comment": "请加盖公章"}]}
    if due:
        data["due_date"] = due
    body = envelope(case_no, "correction.requested", data, occurred_at=cst_at(day or today_cst()))
    return send(client, body)


# --- items with a property; 容缺受理 ------------------------------------------------------


def item_with(client, predicate) -> dict:
    for summary in client.get("/api/v1/items").json()["items"]:
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        if summary["online"] and predicate(item):
            return item
    raise AssertionError("the catalogue has no such item")


def deferrable_item(client) -> dict:
    return item_with(
        client, lambda i: any(m["deferrable"] and m["required"] for m in i["materials"])
    )


def ready_for_formal(client, auth, item, *, skip_deferrable=True) -> str:
    """A case with everything but its deferrable materials, past pre-review if it has one."""
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no, skip_deferrable=skip_deferrable)
    if item["prereview"]:
        assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
        assert send(client, envelope(case_no, "prereview.passed", {})).status_code == 200
    return case_no


def sent_data(db, type_: str, case_no: str) -> list[dict]:
    """The `data` of a case's outbox messages of a type, oldest first."""
    with db.session() as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == type_, OutboxMessage.case_no == case_no)
            .order_by(OutboxMessage.id)
        ).all()
        return [json.loads(r.payload)["data"] for r in rows]


# --- 预约 -------------------------------------------------------------------------------


def visit_item(client) -> dict:
    for summary in client.get("/api/v1/items").json()["items"]:
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        if summary["visits"] > 0 and item["halls"]:
            return item
    raise AssertionError("no item needs a visit")


def handled_case(db, account_id: int, item_code: str, status: str = "submitted") -> str:
    """A case the bureau is handling (factory: straight into the database)."""
    with db.session(write=True) as s, s.begin():
        case_no = next_case_no(s)
        s.add(
            Case(
                case_no=case_no,
                account_id=account_id,
                item_code=item_code,
                status=status,
                submitted_at=utcnow(),
            )
        )
    return case_no


def visit_window(db, item: dict) -> tuple[str, dict]:
    with db.session() as s:
        for code in (h["code"] for h in item["halls"]):
            hall = s.get(Hall, code)
            for window in hall.windows:
                if window["purpose"] == "visit":
                    return code, window
    raise AssertionError("no visit window")


def first_day(client, auth, case_no) -> str:
    options = client.get(f"/api/v1/cases/{case_no}/appointment-options", headers=auth).json()
    return options["days"][0]["date"]


def book(client, auth, case_no, hall, window, day, period="am", purpose="visit"):
    return client.post(
        f"/api/v1/cases/{case_no}/appointments",
        json={"purpose": purpose, "hall": hall, "window": window, "date": day, "period": period},
        headers=auth,
    )


# --- a case approved with a licence file ----------------------------------------------


def licence_item(client) -> dict:
    """An item whose licence another item asks for as a material (e.g. 营业执照)."""
    for summary in client.get("/api/v1/items").json()["items"]:
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        if item["licence_name"] == "营业执照" and summary["online"]:
            return item
    raise AssertionError("no item issues a 营业执照")


def approved_with_licence(client, auth, app, item, *, valid_to, number) -> str:
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    if item["prereview"]:
        client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth)
        send(client, envelope(case_no, "prereview.passed", {}))
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    send(client, envelope(case_no, "case.accepted", {"acceptance_no": f"SL-{number}"}))
    content = PDF_BYTES + f"%licence {number}".encode()
    sha = hashlib.sha256(content).hexdigest()
    licence = {
        "name": "营业执照",
        "number": number,
        "valid_from": "2020-01-01",
        "filename": f"{number}.pdf",
        "content_type": "application/pdf",
        "sha256": sha,
    }
    if valid_to:
        licence["valid_to"] = valid_to
    answer = send(
        client,
        envelope(case_no, "case.approved", {"decision_no": f"D-{number}", "licence": licence}),
    )
    assert answer.status_code == 200, answer.text
    # What the dispatcher does once it has fetched the file from the bureau.
    store_licence(app.state.db, app.state.store, case_no=case_no, sha256=sha, content=content)
    return case_no


# --- 食品经营许可 and its later applications ------------------------------------------------

FOOD = "SC0004"


def true_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def licence_data(number: str, valid_to: date, name: str = "食品经营许可证") -> dict:
    content = PDF_BYTES + f"%licence {number} {valid_to}".encode()
    return {
        "name": name,
        "number": number,
        "valid_from": "2026-01-05",
        "valid_to": valid_to.isoformat(),
        "filename": f"{number}.pdf",
        "content_type": "application/pdf",
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def approve_licence(client, case_no: str, number: str, valid_to: date):
    licence = licence_data(number, valid_to)
    answer = send(
        client,
        envelope(case_no, "case.approved", {"decision_no": f"D-{case_no}", "licence": licence}),
    )
    assert answer.status_code == 200, answer.text


def issue_food_licence(client, auth, number: str, valid_to: date) -> dict:
    """A 食品经营许可 applied for, passed, accepted and approved through the portal."""
    item = client.get(f"/api/v1/items/{FOOD}").json()
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
    send(client, envelope(case_no, "prereview.passed", {}))
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    send(client, envelope(case_no, "case.accepted", {"acceptance_no": f"SL-{number}"}))
    approve_licence(client, case_no, number, valid_to)
    return {"item": item, "case_no": case_no, "form": valid_form(item)}


def apply(client, auth, number: str, kind: str):
    return client.post(f"/api/v1/licences/{number}/applications", json={"kind": kind}, headers=auth)


# --- 咨询 -------------------------------------------------------------------------------


def ask(client, auth, **body):
    payload = {
        "kind": "consult",
        "subject": "能否网上办理",
        "body": "请问食品经营许可能否全程网上办理？",
    }
    payload.update(body)
    return client.post("/api/v1/consultations", json=payload, headers=auth)


def consultation_events(db) -> list[dict]:
    with db.session() as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == "consultation.submitted")
            .order_by(OutboxMessage.id)
        ).all()
        return [json.loads(r.payload) for r in rows]


# --- 一件事 bundles ----------------------------------------------------------------------

RESTAURANT = "kbcyd"  # 开办餐饮店, named by the issue


def items_of(client, bundle: dict) -> list[dict]:
    return [client.get(f"/api/v1/items/{code}").json() for code in bundle["items"]]


def shared_form(items: list[dict]) -> dict:
    values: dict = {}
    for item in items:
        for name, value in valid_form(item).items():
            values.setdefault(name, value)
    return values


def start_bundle(client, auth, code=RESTAURANT, form=None) -> dict:
    response = client.post(f"/api/v1/bundles/{code}/cases", json={"form": form or {}}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def upload_kind(client, auth, app_id, kind, content=PDF_BYTES, name="scan.pdf"):
    return client.post(
        f"/api/v1/bundle-applications/{app_id}/materials/{kind}/files",
        files={"file": (name, content, "application/pdf")},
        headers=auth,
    )


def fill_bundle(client, auth, application: dict, *, skip_deferrable=False) -> dict:
    """Answer every field and upload one file per required material type not shared inside."""
    bundle = client.get(f"/api/v1/bundles/{application['bundle']['code']}").json()
    app_id = application["id"]
    current = client.get(f"/api/v1/bundle-applications/{app_id}", headers=auth).json()
    asked = {f["name"] for f in current["fields"]}
    form = {k: v for k, v in shared_form(items_of(client, bundle)).items() if k in asked}
    response = client.patch(
        f"/api/v1/bundle-applications/{app_id}", json={"form": form}, headers=auth
    )
    assert response.status_code == 200, response.text
    for group in response.json()["materials"]:
        if not group["required"] or group["provided_by"]:
            continue
        if skip_deferrable and group["deferrable"]:
            continue
        content = PDF_BYTES + f"%{group['kind']}".encode()
        assert upload_kind(client, auth, app_id, group["kind"], content).status_code == 201
    return client.get(f"/api/v1/bundle-applications/{app_id}", headers=auth).json()


# --- an account, a case in a given status -----------------------------------------------


def make_account(
    client: TestClient, *, kind: str = "person", verified: bool = False, **overrides: Any
) -> dict[str, Any]:
    """A registered account through POST /api/v1/accounts, with `headers` to act as it.

    kind "person" (居民身份证号码) or "enterprise" (统一社会信用代码, with a 经办人);
    verified: the phone proven by a `register` SMS code read from the dev log, so the
    account's trust level is 1 (identity.md), whatever the deployment requires.
    """
    from tests.conftest import sms_code

    body: dict[str, Any] = {}
    if kind == "enterprise":
        body = {
            "kind": "enterprise",
            "name": "常州某某餐饮有限公司",
            "id_number": make_uscc(),
            "agent": {"name": "李经办", "id_number": make_ric()},
        }
    body |= overrides
    if verified and "code" not in body:
        body["phone"] = body.get("phone") or make_phone()
        body["code"] = sms_code(client, body["phone"], "register")
    account = register(client, **body)
    return {**account, "headers": bearer(client, account)}


# What the bureau says to move a case on, as the reference bureau's callbacks carry it.
_BUREAU_STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "prereview_passed": ("prereview.passed", {"comment": "材料齐全"}),
    "accepted": ("case.accepted", {"acceptance_no": "SL-1", "due_date": "2030-01-10"}),
    "rejected": ("case.rejected", {"reason": "不属于本机关职权范围"}),
    "approved": ("case.approved", {"decision_no": "决-1", "licence": LICENCE}),
    "denied": ("case.denied", {"reason": "不符合法定条件"}),
}
# The road to each status from a filled draft: (who, what) steps in order.
_ROADS: dict[str, list[str]] = {
    "draft": [],
    "withdrawn": ["withdraw_draft"],
    "prereview": ["prereview"],
    "returned": ["prereview", "returned"],
    "prereview_passed": ["prereview", "prereview_passed"],
    "submitted": ["submit"],
    "correction_required": ["submit", "correction_required"],
    "accepted": ["submit", "accepted"],
    "rejected": ["submit", "rejected"],
    "approved": ["submit", "accepted", "approved"],
    "denied": ["submit", "accepted", "denied"],
}
CASE_STATUSES = tuple(_ROADS)


def make_case(
    client: TestClient,
    auth: dict[str, str],
    status: str = "draft",
    *,
    item: dict | None = None,
    prereview: bool | None = None,
    express: bool | None = None,
) -> dict[str, Any]:
    """A case of `item` (or the first item with these properties) brought to `status`.

    The citizen's steps go through the JSON API (a draft with every field and required
    file, pre-review, the formal submission); the bureau's through signed callbacks, as
    the reference bureau sends them. Statuses before the formal submission on the way
    (pre-review) are taken when the item has them. Returns {"case_no", "item", "status"}
    with the status the portal reports, which the caller may assert on.
    """
    if status not in _ROADS:
        raise ValueError(f"no road to {status!r}; known: {', '.join(CASE_STATUSES)}")
    road = _ROADS[status]
    if item is None:
        if road[:1] == ["prereview"]:
            prereview = True
        item = pick_item(client, prereview=prereview, express=express)
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    if road[:1] == ["submit"] and item["prereview"]:
        road = ["prereview", "prereview_passed", *road]
    for step in road:
        if step == "withdraw_draft":
            answer = client.post(
                f"/api/v1/cases/{case_no}/withdrawal", json={"reason": "不办了"}, headers=auth
            )
            assert answer.status_code == 200, answer.text
        elif step == "prereview":
            answer = client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth)
            assert answer.status_code == 202, answer.text
        elif step == "submit":
            answer = client.post(f"/api/v1/cases/{case_no}/submission", headers=auth)
            assert answer.status_code == 202, answer.text
        elif step == "returned":
            code = next(m["code"] for m in item["materials"] if m["required"])
            bureau(
                client,
                case_no,
                "prereview.returned",
                {"comment": "请补正", "materials": [{"code": code, "comment": "请盖章"}]},
            )
        elif step == "correction_required":
            code = next(m["code"] for m in item["materials"] if m["required"])
            answer = request_correction(client, case_no, code)
            assert answer.status_code == 200, answer.text
        else:
            bureau(client, case_no, *_BUREAU_STEPS[step])
    reached = status_of(client, auth, case_no)
    assert reached == status, f"{case_no} is {reached}, not {status}"
    return {"case_no": case_no, "item": item, "status": reached}


def status_of(client: TestClient, auth: dict[str, str], case_no: str) -> str:
    return status(client, auth, case_no)["status"]
