"""Helpers for the back office's tests: the contract's signature written independently of
bureau.signing, a stub portal behind httpx.MockTransport, and a harness around TestClient.

A module of its own (not conftest) so tests can import it by a name no other conftest has.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from bureau.settings import Settings

SECRET = "test-shared-secret"
STAFF_USER = "clerk"
STAFF_PASSWORD = "correct-horse-battery"
_case_numbers = itertools.count(1)

PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


# -- the contract's signature, written independently of bureau.signing --------------------


def signature(body: bytes, *, secret: str = SECRET, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    digest = hashlib.sha256(body).hexdigest()
    mac = hmac.new(secret.encode(), f"{t}.{digest}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signature_ok(header: str | None, body: bytes, *, secret: str = SECRET) -> bool:
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    if abs(time.time() - t) > 300:
        return False
    return hmac.compare_digest(signature(body, secret=secret, t=t), header)


def new_case_no() -> str:
    return f"WJ20261122{next(_case_numbers):06d}"


# -- the stub portal -------------------------------------------------------------------------


@dataclass
class Callback:
    event: dict[str, Any]
    signed: bool
    headers: dict[str, str]


@dataclass
class StubPortal:
    """Receives the bureau's callbacks; `script` decides the next answers (then 200).

    A script entry is an httpx.Response to answer with, or an exception to raise (as a
    refused connection or a timeout would). `delay` makes every answer slow.
    """

    received: list[Callback] = field(default_factory=list)
    attempts: list[tuple[float, str]] = field(default_factory=list)
    script: list[httpx.Response | Exception] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/bureau/v1/events"
        body = await request.aread()
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.attempts.append((time.monotonic(), json.loads(body)["type"]))
            if self.script:
                answer = self.script.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                return answer
            self.received.append(
                Callback(
                    event=json.loads(body),
                    signed=signature_ok(request.headers.get("X-Bureau-Signature"), body),
                    headers=dict(request.headers),
                )
            )
        return httpx.Response(200, json={"status": "ok"})

    def events(self, case_no: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                c.event for c in self.received if case_no is None or c.event["case_no"] == case_no
            ]

    def wait_for(self, count: int, *, case_no: str | None = None, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(case_no)
            if len(events) >= count:
                return events
            time.sleep(0.02)
        raise AssertionError(f"expected {count} callbacks, got {self.events(case_no)}")


# -- the harness --------------------------------------------------------------------------------


@dataclass
class Bureau:
    client: TestClient
    portal: StubPortal
    settings: Settings

    # Portal -> bureau, signed as the contract says.
    def post_event(
        self,
        event_type: str,
        case_no: str | None,
        data: dict[str, Any],
        *,
        event_id: str | None = None,
        occurred_at: str = "2026-11-22T10:00:00+08:00",
    ) -> httpx.Response:
        envelope = {
            "event_id": event_id or str(uuid.uuid4()),
            "type": event_type,
            "occurred_at": occurred_at,
            "case_no": case_no,
            "data": data,
        }
        return self.post_raw(json.dumps(envelope, ensure_ascii=False).encode())

    def post_raw(self, body: bytes, header: str | None = "sign") -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if header == "sign":
            headers["X-Portal-Signature"] = signature(body)
        elif header is not None:
            headers["X-Portal-Signature"] = header
        return self.client.post("/v1/events", content=body, headers=headers)

    def put_blob(self, content: bytes, content_type: str = "application/pdf") -> dict[str, Any]:
        sha = hashlib.sha256(content).hexdigest()
        response = self.client.put(
            f"/v1/blobs/{sha}",
            content=content,
            headers={"Content-Type": content_type, "X-Portal-Signature": signature(content)},
        )
        assert response.status_code in (200, 201), response.text
        return {"filename": "f", "content_type": content_type, "size": len(content), "sha256": sha}

    def get_blob(self, sha: str) -> httpx.Response:
        return self.client.get(f"/v1/blobs/{sha}", headers={"X-Portal-Signature": signature(b"")})

    # Staff API.
    def api(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.request(
            method,
            f"/staff/api/v1{path}",
            json=body,
            auth=(STAFF_USER, STAFF_PASSWORD),
            **kwargs,
        )

    def act(self, case_no: str, action: str, body: dict[str, Any] | None = None) -> dict:
        response = self.api("POST", f"/cases/{case_no}/{action}", body or {})
        assert response.status_code == 200, response.text
        return response.json()

    def case(self, case_no: str) -> dict[str, Any]:
        response = self.api("GET", f"/cases/{case_no}")
        assert response.status_code == 200, response.text
        return response.json()

    # Building blocks.
    def submitted_data(self, *, stage: str = "prereview", round: int = 1, **extra: Any) -> dict:
        licence_scan = self.put_blob(PDF_BYTES + uuid.uuid4().bytes, "application/pdf")
        photo = self.put_blob(PNG_BYTES, "image/png")
        data = {
            "stage": stage,
            "round": round,
            "item": {"code": "320412-FOOD-01", "name": "食品经营许可（新办）"},
            "applicant": {
                "kind": "person",
                "name": "张三",
                "id_type": "RIC",
                "id_number": "32041219900101123X",
                "phone": "13800138000",
            },
            "form": {"shop_name": "张三小吃店", "area": 45, "online": True},
            "materials": [
                {"code": "M01", "name": "营业执照", "deferred": False, "files": [licence_scan]},
                {"code": "M02", "name": "场所照片", "deferred": False, "files": [photo]},
            ],
        }
        data.update(extra)
        return data

    def new_case(self, *, stage: str = "prereview", **extra: Any) -> str:
        case_no = new_case_no()
        response = self.post_event(
            "case.submitted", case_no, self.submitted_data(stage=stage, **extra)
        )
        assert response.status_code == 200, response.text
        return case_no

    def accepted_case(self) -> str:
        case_no = self.new_case(stage="formal")
        self.act(case_no, "accept")
        return case_no

    def approved_case(self, **licence: Any) -> str:
        case_no = self.accepted_case()
        self.act(case_no, "approve", licence)
        return case_no


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'bureau.db'}",
        "secret": SECRET,
        "staff_user": STAFF_USER,
        "staff_password": STAFF_PASSWORD,
        "portal_url": "http://portal.test",
        "public_url": "http://bureau.test",
        "retry_first_seconds": 0.05,
        "retry_max_seconds": 1.0,
        "dispatcher": True,
    }
    values.update(overrides)
    return Settings(**values)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


# --- the staff console's sign-in ------------------------------------------------------


def staff_login(bureau: Bureau) -> None:
    page = bureau.client.get("/staff/login")
    response = bureau.client.post(
        "/staff/login",
        data={
            "username": STAFF_USER,
            "password": STAFF_PASSWORD,
            "next": "/staff/",
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/staff/"
