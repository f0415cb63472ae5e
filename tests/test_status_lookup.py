"""Status without logging in: the lookup page and API, throttling, the signed link, the receipt."""

from __future__ import annotations

import base64
import re
import time

import pytest
from fastapi.testclient import TestClient

from portal.status.service import qr_svg, status_path
from tests.conftest import csrf_of, pick_item, web_login
from tests.factories import GOOD_ADDRESS, accept, approve, new_case, submitted_case


def lookup(client, case_no, last4):
    return client.get("/api/v1/status", params={"case_no": case_no, "phone_last4": last4})


@pytest.fixture
def other_client(app):
    """Another visitor, from another address."""
    with TestClient(app, base_url="http://testserver", client=("203.0.113.9", 40000)) as c:
        yield c


def test_lookup_answers_status_due_date_and_timeline_with_nothing_personal(client, auth, person):
    item, case_no = submitted_case(client, auth)
    client.put(
        f"/api/v1/cases/{case_no}/delivery",
        json={"method": "express", "address": GOOD_ADDRESS},
        headers=auth,
    )
    accept(client, case_no)
    response = client.get(
        "/api/v1/status", params={"case_no": case_no.lower(), "phone_last4": person["phone"][-4:]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "case_no",
        "item_name",
        "status",
        "status_label",
        "due_date",
        "due_date_provisional",
        "timeline",
    }
    assert body["case_no"] == case_no and body["item_name"] == item["name"]
    assert body["status"] == "accepted" and body["status_label"] == "已受理，正在审查"
    assert body["due_date"] == "2030-01-10"
    assert [e["type"] for e in body["timeline"]][:2] == ["case.accepted", "delivery.selected"]
    assert all(set(e) == {"at", "type", "label"} for e in body["timeline"])
    text = response.text
    for secret in (
        person["phone"],
        person["id_number"],
        person["name"],
        "李经办",
        "湖塘镇",
        "SL-1",
    ):
        assert secret not in text
    # No token needed, and no session either.
    assert "set-cookie" not in response.headers


def test_wrong_last4_answers_exactly_like_an_unknown_case(client, auth, person):
    _, case_no = submitted_case(client, auth)
    right = person["phone"][-4:]
    wrong = "0000" if right != "0000" else "1111"
    bad_pair = lookup(client, case_no, wrong)
    unknown = lookup(client, "WJ20000101000001", right)
    assert bad_pair.status_code == unknown.status_code == 404
    assert bad_pair.json() == unknown.json()
    assert bad_pair.json()["error"]["message"].startswith("没有找到相符的办件")
    # A draft has no public status: the same answer again.
    draft = new_case(client, auth, pick_item(client, prereview=False))["case_no"]
    assert lookup(client, draft, right).json() == unknown.json()
    # The pages give the same answer too.
    page_pair = client.get("/status", params={"case_no": case_no, "phone_last4": wrong})
    page_unknown = client.get(
        "/status", params={"case_no": "WJ20000101000002", "phone_last4": right}
    )
    assert page_pair.status_code == page_unknown.status_code == 404
    assert "没有找到相符的办件" in page_pair.text
    strip = lambda html: re.sub(r'value="[^"]*"|name="csrf_token"[^>]*', "", html)  # noqa: E731
    assert strip(page_pair.text).replace(case_no, "X") == strip(page_unknown.text).replace(
        "WJ20000101000002", "X"
    )


def test_bad_input_is_422_in_chinese(client):
    for params in ({}, {"case_no": "WJ1"}, {"case_no": "WJ1", "phone_last4": "12a4"}):
        response = client.get("/api/v1/status", params=params)
        assert response.status_code == 422
        assert response.json()["error"]["fields"]
    response = client.get("/api/v1/status", params={"case_no": "WJ<script>", "phone_last4": "1234"})
    assert response.status_code == 422 and "case_no" in response.json()["error"]["fields"]
    page = client.get("/status", params={"case_no": "", "phone_last4": "12"})
    assert page.status_code == 422
    assert 'href="#f-case_no"' in page.text and 'id="f-phone_last4-error"' in page.text


def test_throttled_per_case_number_after_repeated_wrong_guesses(client, auth, person, other_client):
    _, case_no = submitted_case(client, auth)
    right = person["phone"][-4:]
    guesses = [f"{n:04d}" for n in range(10000) if f"{n:04d}" != right]
    answers = [lookup(client, case_no, g).status_code for g in guesses[:5]]
    assert answers == [404, 404, 404, 404, 429]
    # Now locked for everybody, the right pair included, from any address.
    locked = lookup(other_client, case_no, right)
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert "分钟后再试" in locked.json()["error"]["message"]
    page = other_client.get("/status", params={"case_no": case_no, "phone_last4": right})
    assert page.status_code == 429 and "分钟后再试" in page.text


def test_throttled_per_address_across_case_numbers(client, auth, person, other_client):
    _, case_no = submitted_case(client, auth)
    answers = [lookup(client, f"WJ20000101{n:06d}", "1234").status_code for n in range(1, 11)]
    assert answers == [404] * 9 + [429]
    assert lookup(client, case_no, person["phone"][-4:]).status_code == 429
    # Another address is not affected.
    assert lookup(other_client, case_no, person["phone"][-4:]).status_code == 200


def test_public_page_shows_masked_applicant_and_timeline(client, auth, person):
    _, case_no = submitted_case(client, auth)
    approve(client, case_no)
    form = client.get("/status")
    assert form.status_code == 200 and 'action="/status"' in form.text
    page = client.get("/status", params={"case_no": case_no, "phone_last4": person["phone"][-4:]})
    assert page.status_code == 200
    assert case_no in page.text and "已办结：准予许可" in page.text
    assert "张*" in page.text and person["name"] not in page.text
    assert "准予许可，已办结" in page.text and "决-1" not in page.text
    assert person["phone"] not in page.text and person["id_number"] not in page.text
    assert page.headers["x-robots-tag"].startswith("noindex")


def _receipt_link(client, case_no):
    receipt = client.get(f"/cases/{case_no}/receipt")
    assert receipt.status_code == 200
    match = re.search(r'class="status-link" href="([^"]+)"', receipt.text)
    assert match, "the receipt shows the status link"
    return receipt, match.group(1)


def test_receipt_with_qr_of_the_signed_link_that_works_without_login(client, auth, person, app):
    _, case_no = submitted_case(client, auth)
    web_login(client, person)
    receipt, url = _receipt_link(client, case_no)
    assert url.startswith("http://127.0.0.1:8000/status/link/")  # PORTAL_PUBLIC_URL
    assert case_no in receipt.text and "办件回执" in receipt.text
    assert person["id_number"] not in receipt.text and person["phone"] not in receipt.text
    assert "data-print" in receipt.text and "js/print.js" in receipt.text
    # The QR code encodes exactly the link printed next to it.
    data_uri = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', receipt.text).group(1)
    assert base64.b64decode(data_uri) == qr_svg(url)
    # The confirmation page shows it as an image served by the portal itself.
    submitted = client.get(f"/cases/{case_no}/submitted").text
    assert case_no in submitted and f'src="/cases/{case_no}/status-qr.svg"' in submitted
    assert f'href="/cases/{case_no}/receipt"' in submitted
    svg = client.get(f"/cases/{case_no}/status-qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.content.startswith(b"<svg")

    path = url.removeprefix("http://127.0.0.1:8000")
    with TestClient(app, base_url="http://testserver") as anonymous:
        page = anonymous.get(path)
        assert page.status_code == 200
        assert case_no in page.text and "已提交，等待受理" in page.text
        tampered = anonymous.get(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
        assert tampered.status_code == 404 and "链接无效" in tampered.text
        # The owner's shortcut leads to a fresh signed link; strangers are sent to log in.
        assert (
            anonymous.get(f"/cases/{case_no}/status-link", follow_redirects=False).status_code
            == 303
        )
        assert (
            anonymous.get(f"/cases/{case_no}/status-qr.svg", follow_redirects=False)
            .headers["location"]
            .startswith("/login")
        )
    shortcut = client.get(f"/cases/{case_no}/status-link", follow_redirects=False)
    assert shortcut.status_code == 303 and shortcut.headers["location"].startswith("/status/link/")


def test_expired_link_gives_a_clear_page(client, auth, settings, monkeypatch):
    _, case_no = submitted_case(client, auth)
    real_time = time.time
    with monkeypatch.context() as m:  # a link signed 91 days ago
        m.setattr(time, "time", lambda: real_time() - 91 * 24 * 3600)
        old = status_path(settings, case_no)
    assert client.get(status_path(settings, case_no)).status_code == 200
    page = client.get(old)
    assert page.status_code == 410
    assert "已过期" in page.text and "90 天" in page.text
    assert 'action="/status"' in page.text  # the way forward: case number + last 4
    assert case_no not in page.text


def test_receipt_only_for_submitted_own_cases(client, auth, person):
    draft = new_case(client, auth, pick_item(client, prereview=False))["case_no"]
    web_login(client, person)
    assert client.get(f"/cases/{draft}/receipt").status_code == 409
    assert client.get(f"/cases/{draft}/status-qr.svg").status_code == 409
    assert client.get("/cases/WJ20000101000001/receipt").status_code == 404
    page = client.get(f"/cases/{draft}")
    assert f"/cases/{draft}/receipt" not in page.text
    assert csrf_of(page.text)
