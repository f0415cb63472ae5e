"""Data the bench needs, made through the portal's own API and the back office's staff API."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
import random
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from stdnum.cn import ric

PASSWORD = "bench-pass-9!"
# A well-formed one-page PDF (the portal parses every upload); appended comments keep it so.
PDF = (
    b"%PDF-1.4\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n"
    b"2 0 obj\n<</Type/Pages/Kids[3 0 R]/Count 1>>\nendobj\n"
    b"3 0 obj\n<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>\nendobj\n"
    b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000054 00000 n \n"
    b"0000000105 00000 n \ntrailer\n<</Size 4/Root 1 0 R>>\nstartxref\n170\n%%EOF\n"
)
_serial = itertools.count(random.randint(100, 800))


def make_ric() -> str:
    body = f"320412199001{random.randint(1, 28):02d}{next(_serial) % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def make_phone() -> str:
    return f"139{random.randint(10000000, 99999999)}"


class Citizen:
    """A registered account using the JSON API (bearer token)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.phone = make_phone()
        person = {
            "kind": "person",
            "name": "王基准",
            "id_number": make_ric(),
            "phone": self.phone,
            "password": PASSWORD,
        }
        response = self.http.post("/api/v1/accounts", json=person)
        assert response.status_code == 201, response.text
        token = self.http.post(
            "/api/v1/tokens", json={"phone": self.phone, "password": PASSWORD}
        ).json()["token"]
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, **kw) -> httpx.Response:
        return self.http.post(path, headers=self.headers, **kw)

    def case(self, case_no: str) -> dict[str, Any]:
        return self.http.get(f"/api/v1/cases/{case_no}", headers=self.headers).json()


def choose_item(http: httpx.Client, *, prereview: bool) -> dict[str, Any]:
    for summary in http.get("/api/v1/items").json()["items"]:
        if summary["prereview"] == prereview and summary["online"]:
            item = http.get(f"/api/v1/items/{summary['code']}").json()
            if any(m["required"] for m in item["materials"]):
                return item
    raise RuntimeError("the catalogue has no online item with required materials")


def valid_form(item: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in item["fields"]:
        kind = f["type"]
        if kind == "select":
            values[f["name"]] = f["options"][0]
        elif kind == "checkbox":
            values[f["name"]] = True
        elif kind in ("number", "integer"):
            number = max(f.get("min") or 1, min(f.get("max") or 100, 100))
            values[f["name"]] = int(number) if kind == "integer" else number
        elif kind == "date":
            values[f["name"]] = "2027-03-01"
        elif kind == "phone":
            values[f["name"]] = "13912345678"
        elif kind == "ric":
            values[f["name"]] = "11010519491231002X"  # GB 11643's example, check digit X
        elif kind == "uscc":
            values[f["name"]] = "91350100M000100Y43"
        else:
            values[f["name"]] = "基准测试内容" + "样" * max(0, (f.get("min_length") or 0) - 6)
    return values


def draft(citizen: Citizen, item: dict[str, Any]) -> str:
    response = citizen.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": valid_form(item)}
    )
    assert response.status_code == 201, response.text
    return response.json()["case_no"]


def upload_path(case_no: str, item: dict[str, Any]) -> str:
    code = next(m["code"] for m in item["materials"] if m["required"])
    return f"/api/v1/cases/{case_no}/materials/{code}/files"


def filed_case(citizen: Citizen, item: dict[str, Any]) -> str:
    case_no = draft(citizen, item)
    for m in item["materials"]:
        if m["required"]:
            response = citizen.post(
                f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                files={"file": ("材料.pdf", PDF + f"%{m['code']}".encode(), "application/pdf")},
            )
            assert response.status_code == 201, response.text
    return case_no


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class Bureau:
    def __init__(self, base_url: str, auth: tuple[str, str]) -> None:
        self.http = httpx.Client(base_url=base_url, auth=auth, timeout=60)

    def status(self, case_no: str) -> str | None:
        response = self.http.get(f"/staff/api/v1/cases/{case_no}")
        return response.json()["status"] if response.status_code == 200 else None

    def act(self, case_no: str, action: str) -> None:
        response = self.http.post(f"/staff/api/v1/cases/{case_no}/{action}", json={})
        assert response.status_code == 200, response.text

    def received(self) -> list[dict[str, Any]]:
        return self.http.get("/staff/api/v1/received").json()["events"]


def accepted_case(citizen: Citizen, bureau: Bureau) -> str:
    """A case with a full timeline: pre-reviewed, passed, formally submitted, accepted."""
    item = choose_item(citizen.http, prereview=True)
    case_no = filed_case(citizen, item)
    assert citizen.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
    wait_for(lambda: bureau.status(case_no) == "prereview", 30, "the pre-review at the bureau")
    bureau.act(case_no, "pass")
    wait_for(lambda: citizen.case(case_no)["status"] == "prereview_passed", 30, "passed")
    assert citizen.post(f"/api/v1/cases/{case_no}/submission").status_code == 202
    wait_for(lambda: bureau.status(case_no) == "submitted", 30, "the formal submission")
    bureau.act(case_no, "accept")
    wait_for(lambda: citizen.case(case_no)["status"] == "accepted", 30, "accepted")
    return case_no


def web_session(base_url: str, phone: str) -> tuple[str, httpx.Client]:
    """Logs in through the login page; the `Cookie` header value a browser would send."""
    client = httpx.Client(base_url=base_url, timeout=30)
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "login page has no CSRF token"
    response = client.post(
        "/login", data={"phone": phone, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code in (200, 303), response.text
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return cookie, client


# --- the case page's context as plain data ---------------------------------------------------


def plain(value: Any) -> Any:
    """ORM rows become dicts of their columns (and properties); containers are copied through."""
    from sqlalchemy import inspect
    from sqlalchemy.orm import DeclarativeBase

    if isinstance(value, DeclarativeBase):
        state = inspect(value)
        out = {attr.key: plain(getattr(value, attr.key)) for attr in state.mapper.column_attrs}
        for name in dir(type(value)):
            if isinstance(getattr(type(value), name, None), property):
                try:
                    out[name] = plain(getattr(value, name))
                except Exception:  # a property that needs a lazy relationship: not shown
                    continue
        return out
    if isinstance(value, defaultdict):
        copy = defaultdict(value.default_factory)
        copy.update({k: plain(v) for k, v in value.items()})
        return copy
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, set | frozenset):
        return type(value)(plain(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def capture_context(database_url: str, case_no: str, max_upload_mb: int, out: Path) -> Path:
    """The dict the case page is rendered from, as plain data, pickled for the bare apps."""
    from markupsafe import Markup

    from portal.cases import pages
    from portal.cases.models import Case
    from portal.catalogue.models import Item
    from portal.db import Database
    from portal.notifications.service import unread_count

    db = Database(database_url)
    try:
        with db.session() as session:
            from sqlalchemy import select

            case = session.scalar(select(Case).where(Case.case_no == case_no))
            assert case is not None
            from portal.accounts.models import Account

            account = session.get(Account, case.account_id)
            item = session.get(Item, case.item_code)
            context = pages.case_context(session, case=case, item=item, account=account)
            context = plain(context)
            context["account"] = plain(account)
            context["unread"] = unread_count(session, account=account)
    finally:
        db.dispose()
    # What portal.web.render adds; the token is a fixed stand-in of the same length.
    token = "b" * 43
    context.update(
        csrf_token=token,
        csrf_input=Markup(f'<input type="hidden" name="csrf_token" value="{token}">'),
        flashes=[],
        max_upload_mb=max_upload_mb,
        errors={},
        values={},
    )
    out.write_bytes(pickle.dumps(context))
    return out
