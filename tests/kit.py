"""Test helpers that are not about building cases (tests/factories.py is): throttle
buckets, check-digit oracles, aged rows and files, the CLI, SSO stacks, hostile files.

Shared here so no test module imports another test module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from portal.accounts.models import Account
from portal.cases.models import Case
from portal.clock import utcnow
from portal.exchange.models import OutboxMessage
from portal.settings import Settings
from tests.conftest import DEV_CODES, PASSWORD, csrf_of, make_phone, make_ric
from tests.idp.flow import sign_in
from tests.live import ThreadServer

# --- throttle buckets -----------------------------------------------------------------


def expire_blocks(db, prefix: str) -> None:
    """Move the throttle buckets of `prefix` into the past, as if their time had gone by."""
    from portal.accounts.models import ThrottleBucket

    with db.session(write=True) as session, session.begin():
        for bucket in session.scalars(
            select(ThrottleBucket).where(ThrottleBucket.key.startswith(prefix))
        ):
            bucket.blocked_until = None
            bucket.window_start -= timedelta(hours=2)


# --- check digits computed from the standards (the oracles) ---------------------------

RIC_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2


USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z


USCC_WEIGHTS = [3**i % 31 for i in range(17)]  # 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28


def ric_check(body: str) -> str:
    """GB 11643-1999: the 18th character of a 居民身份证号码 from its first 17 digits."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, RIC_WEIGHTS, strict=True)) % 11]


def uscc_check(body: str) -> str:
    """GB 32100-2015: the 18th character of a 统一社会信用代码 from its first 17."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


# --- rows and files made old ----------------------------------------------------------


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def age(db, case_no: str, *, updated_days: int | None = None, finished_days: int | None = None):
    values = {}
    if updated_days is not None:
        values["updated_at"] = utcnow() - timedelta(days=updated_days)
    if finished_days is not None:
        values["finished_at"] = utcnow() - timedelta(days=finished_days)
    with db.session(write=True) as session, session.begin():
        session.execute(update(Case).where(Case.case_no == case_no).values(**values))


def age_files(app, days: int = 2) -> None:
    """Every stored file last touched `days` ago, as its rows are aged: a file an upload
    touched within a day stays (portal.materials.storage, "Why touch")."""
    store = app.state.store
    then = time.time() - days * 86_400
    for sha256, _ in list(store.stored()):
        os.utime(store.path(sha256), (then, then))


def forget_in_library(client, auth, content: bytes) -> None:
    """The citizen deletes a document from their 材料库 (every upload lands there)."""
    for doc in client.get("/api/v1/library", headers=auth).json()["documents"]:
        if doc["sha256"] == sha(content):
            assert client.delete(f"/api/v1/library/{doc['id']}", headers=auth).status_code == 204


# --- the portal's CLI -----------------------------------------------------------------


def portal_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- items with given fields ----------------------------------------------------------


def items(client) -> list[dict]:
    out = []
    for summary in client.get("/api/v1/items").json()["items"]:
        if summary["online"]:
            out.append(client.get(f"/api/v1/items/{summary['code']}").json())
    return out


def field(item: dict, name: str) -> dict | None:
    return next((f for f in item["fields"] if f["name"] == name), None)


def an_item(client, *, has: tuple[str, ...], proposed: bool | None = None) -> dict:
    """An online item with all these fields; `proposed`: whose 法定代表人 is 拟任 or not."""
    for item in items(client):
        if not all(field(item, n) for n in has):
            continue
        rep = field(item, "legal_rep_name")
        if proposed is not None and (rep is None or rep["label"].startswith("拟") != proposed):
            continue
        return item
    raise AssertionError(f"the catalogue has no online item with {has}")


# --- a token by SMS code on a live server ---------------------------------------------


def code_token(on, phone: str) -> str:
    """A bearer token by a `login` SMS code (an account made by SSO has no password)."""
    before = len(DEV_CODES.codes)
    sent = httpx.post(f"{on.url}/api/v1/verifications", json={"phone": phone, "purpose": "login"})
    assert sent.status_code == 202
    # The code leaves right after the answer (a real server): read it from the dev log.
    answer = httpx.post(
        f"{on.url}/api/v1/tokens", json={"phone": phone, "code": DEV_CODES.after(before)}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


# --- 统一身份认证: the portal and the identity platform as servers --------------------------


class Stack:
    def __init__(self, portal: ThreadServer, idp: ThreadServer, app) -> None:
        self.portal, self.idp, self.app = portal, idp, app
        self.url = portal.url

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=True, timeout=30)

    def accounts(self) -> list[Account]:
        with self.app.state.db.session() as s:
            return list(s.scalars(select(Account).order_by(Account.id)))

    def account(self, account_id: int) -> Account:
        with self.app.state.db.session() as s:
            account = s.get(Account, account_id)
            assert account is not None
            return account

    def register(self, **body: Any) -> dict[str, Any]:
        person = {
            "kind": "person",
            "name": "吴测试",
            "id_number": make_ric(),
            "phone": make_phone(),
            "password": PASSWORD,
            **body,
        }
        answer = httpx.post(f"{self.url}/api/v1/accounts", json=person)
        assert answer.status_code == 201, answer.text
        return {**person, "account_id": answer.json()["account_id"]}

    def token(self, phone: str, password: str = PASSWORD) -> httpx.Response:
        return httpx.post(f"{self.url}/api/v1/tokens", json={"phone": phone, "password": password})

    def me(self, phone: str, password: str = PASSWORD) -> dict[str, Any]:
        token = self.token(phone, password).json()["token"]
        answer = httpx.get(f"{self.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return answer.json()


def portal_settings(tmp_path, database_url, port: int, **sso: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "portal",
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        bureau_url="http://bureau.invalid",
        bureau_secret="test-bureau-secret",
        public_url=f"http://127.0.0.1:{port}",
        dispatcher=False,
        **sso,
    ).prepare()


def to_platform(stack: Stack, browser: httpx.Client, next: str = "/account") -> httpx.Response:
    """The portal's SSO link, followed to the platform's login page."""
    page = browser.get("/login/sso", params={"next": next})
    assert page.status_code == 200, page.text[:300]
    assert str(page.url).startswith(stack.idp.url + "/authorize?")
    assert page.url.params["code_challenge_method"] == "S256"
    assert page.url.params["state"] and page.url.params["nonce"]
    return page


def sso_login(stack: Stack, key: str, browser: httpx.Client | None = None, next="/account"):
    """Sign in at the platform; on a first sign-in, agree on the portal's consent page."""
    browser = browser or stack.browser()
    answer = sign_in(browser, to_platform(stack, browser, next), key)
    if answer.url.path == "/login/sso/consent":
        answer = browser.post(
            "/login/sso/consent",
            data={"csrf_token": csrf_of(answer.text), "privacy_consent": "true", "action": "agree"},
        )
    return browser, answer


def sso_api(stack: Stack, token: str):
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=stack.url, headers=headers, timeout=30)


def sso_fill(api: httpx.Client, case_no: str, item: dict) -> None:
    """Every field and every required file of the case in."""
    from tests.conftest import PDF_BYTES, valid_form

    assert api.patch(f"/api/v1/cases/{case_no}", json={"form": valid_form(item)}).status_code == 200
    for m in item["materials"]:
        if m["required"]:
            answer = api.post(
                f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                files={"file": ("扫描件.pdf", PDF_BYTES, "application/pdf")},
            )
            assert answer.status_code == 201, answer.text


def sso_submitted_events(stack: Stack, case_no: str) -> list[dict]:
    with stack.app.state.db.session() as s:
        rows = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.case_no == case_no, OutboxMessage.event_type == "case.submitted"
            )
        ).all()
        return [json.loads(r.payload) for r in rows]


# --- hostile files and clear refusals -------------------------------------------------

CJK = re.compile(r"[\u4e00-\u9fff]")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of all zeros: tiny on disk, enormous once decoded."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def assert_clear_refusal(response, status: int | tuple[int, ...]) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    if response.headers["content-type"].startswith("application/json"):
        message = response.json()["error"]["message"]
    else:
        message = response.text
    assert CJK.search(message), message


def stored_files_of(client, auth, url) -> list[dict]:
    case_no = url.split("/")[4]
    case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    return [f for m in case["materials"] for f in m["files"]]
