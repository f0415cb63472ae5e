"""Hostile limits: bodies counted as they arrive, and no 500 on a public endpoint.

Item 4 of the security review: a chunked body has no Content-Length, so only counting
its bytes as they arrive bounds memory before authentication. Those tests run the portal
as a real uvicorn process (tests/e2e/harness.py), send 256 MiB chunked, and read the
server's own memory from /proc. Item 6: digits that are not ASCII in the status lookup,
a multipart boundary longer than the parser takes, JSON nested deeper than the parser's
recursion: each a 4xx, the same for a case that exists and one that does not.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from portal.exchange import signing
from tests.conftest import PDF_BYTES, pick_item, web_login
from tests.factories import SECRET as TEST_SECRET
from tests.factories import envelope, new_case, start_bundle, submitted_case

MiB = 1024 * 1024
HUGE = 256 * MiB  # what the review sent
CHUNK = 64 * 1024
UNKNOWN_CASE = "WJ20990101000001"


# --- item 4: through real sockets ---------------------------------------------------------


def memory_mib(pid: int) -> dict[str, float]:
    """The server's resident memory now (VmRSS) and at its peak so far (VmHWM), in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


class Sender:
    """A chunked body (no Content-Length) of `total` bytes, counting what was handed over."""

    def __init__(self, total: int, head: bytes = b"", filler: bytes = b"x", tail: bytes = b""):
        self.total, self.head, self.filler, self.tail = total, head, filler, tail
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            self.sent += len(self.head)
            yield self.head
        chunk = self.filler * (CHUNK // len(self.filler))
        while self.sent < self.total:
            self.sent += len(chunk)
            yield chunk
        if self.tail:
            self.sent += len(self.tail)
            yield self.tail


def post_chunked(url: str, body: Sender, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    # httpx sends an iterator as Transfer-Encoding: chunked; when the server answers and
    # closes early, httpcore stops writing and reads the answer.
    response = httpx.post(url, content=iter(body), headers=headers, timeout=60)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    return response, time.monotonic() - started


def assert_cut_off(response: httpx.Response, body: Sender, seconds: float, *, api: bool) -> None:
    assert response.status_code == 413, response.text[:300]
    assert seconds < 5, f"the 413 took {seconds:.1f}s"
    # The answer came long before the body was sent: only what the sockets buffer went out.
    assert body.sent < 32 * MiB, f"{body.sent / MiB:.1f} MiB were sent before the answer"
    assert response.headers["connection"] == "close"
    if api:
        error = response.json()["error"]
        assert error["code"] == "too_large"
        assert re.search(r"[\u4e00-\u9fff]", error["message"]), error
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert "过大" in response.text


@pytest.mark.e2e
def test_chunked_text_bodies_are_cut_off_at_1_mib_with_memory_bounded(system):
    portal = system.start_portal(PORTAL_DISPATCHER="off")
    pid = system.portal_server.proc.pid
    url = portal.server.url
    before = memory_mib(pid)
    json_type = {"Content-Type": "application/json"}

    # The review's case: 256 MiB chunked to the token endpoint, before any password check.
    body = Sender(HUGE)
    response, seconds = post_chunked(url + "/api/v1/tokens", body, json_type)
    assert_cut_off(response, body, seconds, api=True)
    figures = [f"/api/v1/tokens: 413 after {seconds * 1000:.0f} ms, {body.sent / MiB:.1f} MiB sent"]

    # Four unsigned 256 MiB bodies at once to the bureau callback: 413, not a 401 after
    # reading a gigabyte (the signature cannot be checked before the whole body is in).
    results: list[tuple[httpx.Response, Sender, float]] = []

    def unsigned() -> None:
        sender = Sender(HUGE)
        headers = {**json_type, signing.BUREAU_HEADER: "t=1,v1=" + "0" * 64}
        answer, took = post_chunked(url + "/api/bureau/v1/events", sender, headers)
        results.append((answer, sender, took))

    threads = [threading.Thread(target=unsigned) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4
    for answer, sender, took in results:
        assert_cut_off(answer, sender, took, api=True)
    slowest = max(took for _, _, took in results)
    figures.append(f"4 x /api/bureau/v1/events at once: 413, slowest after {slowest * 1000:.0f} ms")

    # A page: the same limit, answered with the error page.
    body = Sender(HUGE, filler=b"phone=1")
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    response, seconds = post_chunked(url + "/login", body, form_type)
    assert_cut_off(response, body, seconds, api=False)
    figures.append(f"/login: 413 page after {seconds * 1000:.0f} ms")

    after = memory_mib(pid)
    figures.append(
        f"server RSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MiB, "
        f"peak {before['VmHWM']:.0f} -> {after['VmHWM']:.0f} MiB"
    )
    print("\n".join(figures))
    # 6 x 256 MiB were offered; the peak may not move by more than a few buffers.
    assert after["VmHWM"] - before["VmHWM"] < 48, figures[-1]
    assert after["VmRSS"] - before["VmRSS"] < 48, figures[-1]

    # Under the limit nothing changed, chunked or not, and the server is fine.
    small = httpx.post(
        url + "/api/v1/tokens",
        content=iter([b'{"phone": "13900000000", ', b'"password": "wrong-password-1"}']),
        headers=json_type,
    )
    assert small.status_code == 401, small.text
    assert httpx.get(url + "/healthz").status_code == 200


def multipart_head(
    boundary: str, filename: str = "scan.pdf", content: bytes = PDF_BYTES, kind="application/pdf"
) -> bytes:
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {kind}\r\n\r\n"
    ).encode() + content


def noise_png(size: int) -> bytes:
    """A real photo-sized PNG of about `size` bytes (noise does not compress)."""
    import io
    import os

    from PIL import Image

    side = int((size / 3) ** 0.5) + 1
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.e2e
def test_a_chunked_upload_without_content_length_stops_at_the_upload_limit(system):
    portal = system.start_portal(PORTAL_DISPATCHER="off", PORTAL_MAX_UPLOAD_MB="2")
    pid = system.portal_server.proc.pid
    portal.register()
    item = pick_item(portal.http, prereview=True)
    case = new_case(portal.http, portal.headers, item)
    target = f"{portal.server.url}/api/v1/cases/{case['case_no']}/materials/"
    target += f"{item['materials'][0]['code']}/files"
    boundary = "b" + uuid.uuid4().hex
    headers = {**portal.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    tail = f"\r\n%%EOF\r\n--{boundary}--\r\n".encode()
    before = memory_mib(pid)

    # 1.5 MiB, chunked: over the 1 MiB of text bodies, under the 2 MB upload limit — kept.
    photo = multipart_head(boundary, "photo.png", noise_png(int(1.5 * MiB)), "image/png")
    fits = Sender(0, head=photo, tail=f"\r\n--{boundary}--\r\n".encode())
    response, _ = post_chunked(target, fits, headers)
    assert response.status_code == 201, response.text
    assert response.json()["size"] > MiB

    # 256 MiB, chunked: cut off once past the upload limit, nothing stored.
    huge = Sender(HUGE, head=multipart_head(boundary) + b"%", filler=b"0", tail=tail)
    response, seconds = post_chunked(target, huge, headers)
    assert_cut_off(response, huge, seconds, api=True)
    assert "2 MB" in response.json()["error"]["message"]
    after = memory_mib(pid)
    print(
        f"upload: 413 after {seconds * 1000:.0f} ms, {huge.sent / MiB:.1f} MiB sent; "
        f"RSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MiB, "
        f"peak {before['VmHWM']:.0f} -> {after['VmHWM']:.0f} MiB"
    )
    assert after["VmHWM"] - before["VmHWM"] < 48
    files = portal.case(case["case_no"])["materials"]
    assert sum(len(m["files"]) for m in files) == 1  # only the one that fitted
    assert list((system.tmp / "portal" / "tmp").iterdir()) == [], "a temp file was left"


# --- item 4: in-process, every way a body is read ------------------------------------------


def chunks(total: int, filler: bytes = b"x") -> Iterator[bytes]:
    piece = filler * (CHUNK // len(filler))
    for _ in range(total // len(piece) + 1):
        yield piece


def test_every_reader_of_a_body_answers_the_413(app, client, auth):
    quiet = TestClient(app, raise_server_exceptions=False)
    json_type = {"Content-Type": "application/json"}
    # FastAPI reading a JSON body parameter (it would make the failure a 400).
    tokens = quiet.post("/api/v1/tokens", content=chunks(2 * MiB), headers=json_type)
    # A route without a body parameter: the NUL guard reads it.
    item = pick_item(client)
    case_no = new_case(client, auth, item)["case_no"]
    submission = quiet.post(
        f"/api/v1/cases/{case_no}/submission",
        content=chunks(2 * MiB),
        headers={**auth, **json_type},
    )
    # The callback endpoint reading the body itself, signed or not, and a declared length.
    raw = json.dumps(envelope(case_no, "case.accepted", {"pad": "x" * (2 * MiB)})).encode()
    signed = quiet.post(
        "/api/bureau/v1/events",
        content=raw,
        headers={**json_type, signing.BUREAU_HEADER: signing.sign(TEST_SECRET, raw)},
    )
    unsigned = quiet.post("/api/bureau/v1/events", content=chunks(2 * MiB), headers=json_type)
    for response in (tokens, submission, signed, unsigned):
        assert response.status_code == 413, response.text[:300]
        assert response.json() == {
            "error": {"code": "too_large", "message": response.json()["error"]["message"]}
        }
        assert "过大" in response.json()["error"]["message"]
    # A page form: the error page, in 中文.
    page = quiet.post(
        "/login",
        content=chunks(2 * MiB, b"a=1&"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status_code == 413 and "过大" in page.text
    assert page.headers["content-type"].startswith("text/html")


# --- item 6: odd digits in the status lookup -------------------------------------------------

ODD_DIGITS = ["٠١٢٣", "１２３４", "۱۲۳۴", "१२३४", "12３4", "١2 3"]


@pytest.mark.parametrize("last4", ODD_DIGITS)
def test_digits_other_than_ascii_are_a_422_the_same_for_an_existing_case(
    app, client, auth, person, last4
):
    quiet = TestClient(app, raise_server_exceptions=False)
    _, case_no = submitted_case(client, auth)
    answers = {}
    for number in (case_no, UNKNOWN_CASE):
        api = quiet.get("/api/v1/status", params={"case_no": number, "phone_last4": last4})
        page = quiet.get("/status", params={"case_no": number, "phone_last4": last4})
        assert api.status_code == 422, api.text
        assert set(api.json()["error"]["fields"]) == {"phone_last4"}
        assert "0–9" in api.json()["error"]["fields"]["phone_last4"]
        assert page.status_code == 422 and 'id="f-phone_last4-error"' in page.text
        answers[number] = (api.status_code, api.json(), page.status_code)
    assert answers[case_no] == answers[UNKNOWN_CASE]


def test_odd_digits_count_the_same_against_the_throttle_for_both(app, client, auth, person):
    quiet = TestClient(app, raise_server_exceptions=False)
    _, case_no = submitted_case(client, auth)
    # More odd attempts than either throttle allows (10 per address, 5 per case): they are
    # refused as malformed before any lookup, so none counts, for neither kind of number.
    for number in (case_no, UNKNOWN_CASE):
        statuses = {
            quiet.get(
                "/api/v1/status", params={"case_no": number, "phone_last4": "٠١٢٣"}
            ).status_code
            for _ in range(6)
        }
        assert statuses == {422}
    right = quiet.get(
        "/api/v1/status", params={"case_no": case_no, "phone_last4": person["phone"][-4:]}
    )
    assert right.status_code == 200, right.text
    unknown = quiet.get("/api/v1/status", params={"case_no": UNKNOWN_CASE, "phone_last4": "1234"})
    assert unknown.status_code == 404, unknown.text
    # Arabic-Indic digits in the case number are refused the same way.
    odd_number = quiet.get("/api/v1/status", params={"case_no": "WJ٢٠٢٦", "phone_last4": "1234"})
    assert odd_number.status_code == 422 and "case_no" in odd_number.json()["error"]["fields"]


# --- item 6: multipart boundaries the parser refuses -----------------------------------------


def long_boundary_upload(client, url: str, length: int, headers=None):
    boundary = "x" * length
    body = multipart_head(boundary) + f"\r\n--{boundary}--\r\n".encode()
    return client.post(
        url,
        content=body,
        headers={**(headers or {}), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def test_a_boundary_over_256_characters_is_a_400_on_every_upload_route(app, client, auth, person):
    quiet = TestClient(app, raise_server_exceptions=False)
    item = pick_item(client, prereview=True)
    code = item["materials"][0]["code"]
    case_no = new_case(client, auth, item)["case_no"]
    bundle = start_bundle(client, auth)
    kind = bundle["materials"][0]["kind"]
    api_routes = [
        f"/api/v1/cases/{case_no}/materials/{code}/files",
        f"/api/v1/bundle-applications/{bundle['id']}/materials/{kind}/files",
    ]
    page_routes = [
        f"/cases/{case_no}/materials/{code}/files",
        f"/bundle-applications/{bundle['id']}/materials/{kind}/files",
    ]
    web_login(quiet, person)
    for length in (257, 1000, 70_000):
        for url in api_routes:
            response = long_boundary_upload(quiet, url, length, auth)
            assert response.status_code == 400, (url, response.text[:300])
            assert response.json()["error"]["code"] == "bad_multipart"
        for url in page_routes:
            response = long_boundary_upload(quiet, url, length)
            assert response.status_code == 400, (url, response.text[:300])
            assert "格式有误" in response.text
    # 256 is the parser's own limit and still works; an empty boundary does not.
    assert long_boundary_upload(quiet, api_routes[0], 256, auth).status_code == 201
    assert long_boundary_upload(quiet, api_routes[0], 0, auth).status_code == 400


def test_a_long_boundary_is_never_a_500_on_any_route(app, client, auth, person):
    """Every route taking a body, with a valid-looking address: the guard is not only where
    we thought of it (ordinary forms parse multipart too)."""
    quiet = TestClient(app, raise_server_exceptions=False)
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    web_login(quiet, person)
    values = {"case_no": case_no, "material_code": item["materials"][0]["code"]}
    failures = []
    for route in app.routes:
        methods = (getattr(route, "methods", None) or set()) & {"POST", "PUT", "PATCH"}
        path = getattr(route, "path", "")
        for method in methods:
            url = re.sub(r"{(\w+)(:\w+)?}", lambda m: str(values.get(m.group(1), "1")), path)
            boundary = "x" * 300
            body = multipart_head(boundary) + f"\r\n--{boundary}--\r\n".encode()
            headers = {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
            response = quiet.request(method, url, content=body, headers=headers)
            if response.status_code >= 500:
                failures.append((method, path, response.status_code))
    assert failures == []


# --- item 6: deeply nested JSON in a signed callback ----------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [33, 3000, 200_000])
def test_deeply_nested_signed_json_is_422_invalid_event(app, client, auth, depth):
    quiet = TestClient(app, raise_server_exceptions=False)
    _, case_no = submitted_case(client, auth)
    answers = []
    for number in (case_no, UNKNOWN_CASE):
        for where in ("data", "top"):
            base = envelope(number, "case.accepted", {"acceptance_no": "SL-1"})
            raw = json.dumps(base)
            if where == "data":
                raw = raw.replace('"SL-1"}', f'"SL-1", "extra": {nested(depth)}}}')
            else:
                raw = raw[:-1] + f', "extra": {nested(depth)}}}'
            body = raw.encode()
            header = signing.sign(TEST_SECRET, body)
            response = quiet.post(
                "/api/bureau/v1/events",
                content=body,
                headers={"Content-Type": "application/json", signing.BUREAU_HEADER: header},
            )
            assert response.status_code == 422, (number, where, response.text[:300])
            error = response.json()["error"]
            assert set(error) == {"code", "message"} and error["code"] == "invalid_event"
            assert "嵌套过深" in error["message"]
            answers.append(response.json())
    assert all(answer == answers[0] for answer in answers)
    # Unsigned, it is the 401 as before: the signature comes first.
    raw = json.dumps(envelope(case_no, "case.accepted", {})).encode()[:-1] + b',"x":'
    unsigned = quiet.post(
        "/api/bureau/v1/events",
        content=raw + nested(depth).encode() + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert unsigned.status_code == 401


def test_deeply_nested_json_elsewhere_is_a_4xx(app, client, auth):
    quiet = TestClient(app, raise_server_exceptions=False)
    item = pick_item(client)
    case_no = new_case(client, auth, item)["case_no"]
    # With a NUL inside, so the NUL guard parses it too.
    body = ("[" * 100_000 + '"\\u0000"' + "]" * 100_000).encode()
    json_type = {**auth, "Content-Type": "application/json"}
    for method, url in (
        ("POST", f"/api/v1/cases/{case_no}/submission"),  # no body parameter
        ("PATCH", f"/api/v1/cases/{case_no}"),  # a pydantic body
        ("POST", "/api/v1/accounts"),
    ):
        response = quiet.request(method, url, content=body, headers=json_type)
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text[:200])


def test_the_413_wins_whoever_catches_the_failed_read():
    """BodyLimit on its own: an app that swallows the failed read and answers something
    else, or lets it escape, still answers 413 (JSON under /api/, a page elsewhere)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from portal.middleware import BodyLimit

    async def swallowing(request: Request):
        try:
            await request.body()
        except Exception:
            return PlainTextResponse("could not read", status_code=400)
        return PlainTextResponse("read")

    async def escaping(request: Request):
        await request.body()
        return PlainTextResponse("read")

    async def not_reading(request: Request):
        return PlainTextResponse("never read")

    routes = [
        Route(f"{prefix}/{name}", handler, methods=["POST"])
        for prefix in ("", "/api")
        for name, handler in (("swallow", swallowing), ("escape", escaping), ("skip", not_reading))
    ]
    app = BodyLimit(Starlette(routes=routes), upload_limit=3 * MiB, upload_message="文件太大")
    with TestClient(app, raise_server_exceptions=False) as quiet:
        for prefix in ("", "/api"):
            for name in ("swallow", "escape"):
                response = quiet.post(f"{prefix}/{name}", content=chunks(2 * MiB))
                assert response.status_code == 413, (prefix, name, response.text)
                assert response.headers["connection"] == "close"
                if prefix:
                    assert response.json()["error"]["code"] == "too_large"
                else:
                    assert "过大" in response.text
            # A declared length over the limit fails the first read, before any byte.
            declared = quiet.post(
                f"{prefix}/escape", content=b"x" * 10, headers={"Content-Length": str(2 * MiB)}
            )
            assert declared.status_code == 413
            # A route that never reads the body holds no memory for it: left alone.
            assert quiet.post(f"{prefix}/skip", content=chunks(2 * MiB)).status_code == 200
            # Multipart gets the upload limit: 2 MiB fits, 4 MiB does not.
            multipart = {"Content-Type": "multipart/form-data; boundary=x"}
            fits = quiet.post(f"{prefix}/escape", content=chunks(2 * MiB), headers=multipart)
            assert fits.status_code == 200
            over = quiet.post(f"{prefix}/escape", content=chunks(4 * MiB), headers=multipart)
            assert over.status_code == 413 and "文件太大" in over.text
