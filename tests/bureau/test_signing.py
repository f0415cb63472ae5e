"""The exchange signature, both directions: what the bureau accepts and what it sends."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest

from bureau import signing
from bureau.errors import InvalidSignature
from tests.bureau.bureau_testkit import SECRET, Bureau, signature, signature_ok


def _envelope(case_no: str = "WJ20261122999999") -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": "case.withdrawn",
            "occurred_at": "2026-11-22T10:00:00+08:00",
            "case_no": case_no,
            "data": {"reason": "不办了"},
        }
    ).encode()


def test_sign_matches_the_contract_formula() -> None:
    body = b'{"a":1}'
    header = signing.sign(SECRET, body, now=1_800_000_000)
    assert header == signature(body, t=1_800_000_000)
    signing.verify(SECRET, header, body, now=1_800_000_000)


def test_get_is_signed_over_the_empty_body() -> None:
    header = signing.sign(SECRET, b"")
    assert header.split("v1=")[1] == signing.mac(
        SECRET, int(header[2:].split(",")[0]), hashlib.sha256(b"").hexdigest()
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=abc,v1=" + "0" * 64,
        "t=1700000000",
        "v1=" + "0" * 64,
        "t=1700000000,v1=" + "A" * 64,  # upper-case hex is not the contract's form
        "t=1700000000,v1=abc",
    ],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        signing.verify(SECRET, header, b"{}", now=1_700_000_000)


def test_window_is_300_seconds_either_way() -> None:
    body = b"{}"
    now = 1_800_000_000
    signing.verify(SECRET, signature(body, t=now - 300), body, now=now)
    signing.verify(SECRET, signature(body, t=now + 300), body, now=now)
    for skew in (-301, 301):
        with pytest.raises(InvalidSignature, match="300"):
            signing.verify(SECRET, signature(body, t=now + skew), body, now=now)


def test_rotation_unknown_keys_and_spaces() -> None:
    body = b"{}"
    good = signature(body)
    t, mac = good.split(",")
    signing.verify(SECRET, f"{t}, v0=xyz, v1={'0' * 64}, {mac}", body)
    with pytest.raises(InvalidSignature):
        signing.verify("other-secret", good, body)


def test_inbound_events_need_a_valid_signature(bureau: Bureau) -> None:
    body = _envelope()
    stale = signature(body, t=int(time.time()) - 310)
    future = signature(body, t=int(time.time()) + 310)
    wrong = signature(body, secret="not-the-secret")
    other_body = signature(b"{}")
    for header in (None, "t=1,v1=zz", stale, future, wrong, other_body):
        response = bureau.post_raw(body, header=header)
        assert response.status_code == 401, header
        error = response.json()["error"]
        assert error["code"] == "invalid_signature"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"])
    # Nothing was recorded by the refused requests.
    assert bureau.api("GET", "/received").json()["events"] == []


def test_callbacks_carry_a_valid_bureau_signature(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    bureau.act(case_no, "pass")
    [callback] = [c for c in bureau.portal.wait_for(1) if c]
    received = bureau.portal.received[0]
    assert received.signed
    assert received.headers["content-type"] == "application/json"
    # The signature covers the exact bytes sent.
    assert callback["type"] == "prereview.passed"
    assert signature_ok(received.headers["x-bureau-signature"], b"tampered") is False
